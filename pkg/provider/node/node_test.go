package node_test

import (
	"context"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"

	vklog "github.com/virtual-kubelet/virtual-kubelet/log"
	vkslog "github.com/virtual-kubelet/virtual-kubelet/log/slog"

	efv1 "github.com/edgefabric/edgefabric/pkg/apis/edgefabric/v1alpha1"
	hubv1 "github.com/edgefabric/edgefabric/pkg/apis/hub/v1"
	"github.com/edgefabric/edgefabric/pkg/apis/hub/v1/reasons"
	"github.com/edgefabric/edgefabric/pkg/identity"
	"github.com/edgefabric/edgefabric/pkg/provider/fabric"
	"github.com/edgefabric/edgefabric/pkg/provider/node"
	"github.com/edgefabric/edgefabric/test/kubetest"
)

// TestManagerOnRealAPIServer drives the node manager against a real API server
// with devices simulated at the fabric's edge (sessions, reports): no hub, no
// agents, so every step's effect on Kubernetes objects is checked directly.
func TestManagerOnRealAPIServer(t *testing.T) {
	env := kubetest.Start(t, kubetest.Options{})
	log := slog.New(slog.DiscardHandler)
	if os.Getenv("EDGEFABRIC_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
		vklog.L = vkslog.FromSlog(log)
	}
	fab := fabric.New(log)
	startManager := func() context.CancelFunc {
		m, err := node.NewManager(node.Config{NodeIP: "127.0.0.1", KubeletPort: 10250, RetryInterval: 200 * time.Millisecond}, env.Client, fab, log)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := m.Run(ctx); err != nil {
				t.Errorf("manager: %v", err)
			}
		}()
		return func() { cancel(); wg.Wait() }
	}
	stop := startManager()
	defer func() { stop() }()

	dev := identity.Device{ID: "pi-1", Account: "acme"}
	sess := fab.Connect(dev, &hubv1.Hello{
		DeviceId: "pi-1", Os: "linux", Arch: "arm64", Runtimes: []string{"wasm"}, Addresses: []string{"10.1.2.3"},
		Capacity: &hubv1.Resources{CpuMillis: 4000, MemoryBytes: 2 << 30, Pods: 20},
	})

	n := waitNode(t, env, "edge-acme", func(n *corev1.Node) bool { return ready(n) })
	for k, v := range map[string]string{"type": "virtual-kubelet", efv1.LabelAccount: "acme", efv1.LabelScope: "account", "kubernetes.io/arch": "arm64"} {
		if n.Labels[k] != v {
			t.Errorf("node label %s: got %q, want %q", k, n.Labels[k], v)
		}
	}
	if !slices.ContainsFunc(n.Spec.Taints, func(t corev1.Taint) bool {
		return t.Key == "virtual-kubelet.io/provider" && t.Value == "edgefabric" && t.Effect == corev1.TaintEffectNoSchedule
	}) {
		t.Errorf("taints: got %v", n.Spec.Taints)
	}
	if got := n.Status.Capacity.Cpu().MilliValue(); got != 4000 {
		t.Errorf("cpu capacity: got %d", got)
	}

	t.Run("pod is placed, sent, and reported", func(t *testing.T) {
		p := createPod(t, env, "web")
		w := nextUpsert(t, sess)
		if w.GetUid() != string(p.UID) || w.GetContainers()[0].GetImage() != "reg/x:1" {
			t.Fatalf("workload: got %v", w)
		}
		// A device that has not reported within the pending delay leaves the
		// pod ContainerCreating, recorded on its device.
		got := waitPod(t, env, "web", func(p *corev1.Pod) bool { return p.Annotations[efv1.AnnotationDevice] == "pi-1" })
		if got.Status.Phase != corev1.PodPending || waitingReason(got) != reasons.ContainerCreating {
			t.Errorf("before any report: phase %s, waiting %q", got.Status.Phase, waitingReason(got))
		}
		started := timestamppb.New(time.Now().Add(-time.Second))
		fab.Report(dev, &hubv1.StatusReport{Statuses: []*hubv1.WorkloadStatus{{
			Uid: w.GetUid(), Seq: 2, PodIp: "10.1.2.3",
			Containers: []*hubv1.ContainerStatus{{Name: "app", Ready: true, ImageId: "sha256:abc", State: &hubv1.ContainerState{
				State: &hubv1.ContainerState_Running_{Running: &hubv1.ContainerState_Running{StartedAt: started}},
			}}},
		}}, Events: []*hubv1.Event{{WorkloadUid: w.GetUid(), Type: "Normal", Reason: reasons.Started, Message: "Started container app"}}})
		got = waitPod(t, env, "web", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
		if got.Status.PodIP != "10.1.2.3" || got.Status.ContainerStatuses[0].ImageID != "sha256:abc" {
			t.Errorf("status: got %+v", got.Status)
		}
		waitEvent(t, env, "web", efv1.ReasonScheduled)
		waitEvent(t, env, "web", reasons.Started)

		// Delete: the device is told, and the pod goes once it confirms.
		if err := env.Client.CoreV1().Pods("default").Delete(t.Context(), "web", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		d := nextDelta(t, sess)
		if d.GetDeleteUid() != w.GetUid() {
			t.Fatalf("delete delta: got %v", d)
		}
		fab.Report(dev, &hubv1.StatusReport{Statuses: []*hubv1.WorkloadStatus{{
			Uid: w.GetUid(), Seq: 3, Phase: "Failed",
			Containers: []*hubv1.ContainerStatus{{Name: "app", State: &hubv1.ContainerState{
				State: &hubv1.ContainerState_Terminated_{Terminated: &hubv1.ContainerState_Terminated{ExitCode: 137, Reason: reasons.Killed}},
			}}},
		}}})
		waitGone(t, env, "web")
	})

	t.Run("a pod IP that is not the device's own is not published", func(t *testing.T) {
		createPod(t, env, "spoof")
		w := nextUpsert(t, sess)
		// A device claims the pod is served at another machine's address (a
		// Service's endpoints would follow it there).
		fab.Report(dev, &hubv1.StatusReport{Statuses: []*hubv1.WorkloadStatus{{
			Uid: w.GetUid(), Seq: 1, PodIp: "10.96.0.1",
			Containers: []*hubv1.ContainerStatus{{Name: "app", Ready: true, State: &hubv1.ContainerState{
				State: &hubv1.ContainerState_Running_{Running: &hubv1.ContainerState_Running{StartedAt: timestamppb.Now()}},
			}}},
		}}})
		got := waitPod(t, env, "spoof", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
		if got.Status.PodIP != "10.1.2.3" || got.Status.HostIP != "10.1.2.3" {
			t.Errorf("pod IP %q, host IP %q; want the device's address 10.1.2.3 for both", got.Status.PodIP, got.Status.HostIP)
		}
		waitEvent(t, env, "spoof", efv1.ReasonPodIPRejected)
		deletePod(t, env, fab, sess, dev, w.GetUid(), "spoof")
	})

	t.Run("a user's device annotation does not bypass placement", func(t *testing.T) {
		forged := func(device string) func(*corev1.Pod) {
			return func(p *corev1.Pod) {
				p.Annotations = map[string]string{efv1.AnnotationDevice: device, efv1.AnnotationFencingEpoch: "7"}
				// A status sent with the pod is not the provider's record.
				p.Status.HostIP = "10.1.2.3"
				p.Status.Conditions = []corev1.PodCondition{{Type: efv1.ConditionPlaced, Status: corev1.ConditionTrue, Reason: efv1.ReasonPlaced, Message: "device " + device + ", fencing epoch 7"}}
			}
		}
		// A device that is not in the cluster: the pod goes where placement puts it.
		p := createPod(t, env, "forged", forged("elsewhere"))
		if w := nextUpsert(t, sess); w.GetUid() != string(p.UID) {
			t.Fatalf("workload sent to pi-1: got %v", w)
		}
		got := waitPod(t, env, "forged", func(p *corev1.Pod) bool { return p.Annotations[efv1.AnnotationDevice] == "pi-1" })
		if e := got.Annotations[efv1.AnnotationFencingEpoch]; e != "1" {
			t.Errorf("fencing epoch %q, want 1 (the pod's first assignment)", e)
		}
		deletePod(t, env, fab, sess, dev, string(p.UID), "forged")

		// A device that is in the cluster but has no room: the pod is
		// rejected for want of room, as any pod that never ran there.
		createPod(t, env, "forged-big", forged("pi-1"), func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceMemory: *resourceQuantity("64Gi")}
		})
		waitEvent(t, env, "forged-big", efv1.ReasonOutOfMemory)
		if err := env.Client.CoreV1().Pods("default").Delete(t.Context(), "forged-big", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("a device that reports at once saves the pending write", func(t *testing.T) {
		createPod(t, env, "quick")
		w := nextUpsert(t, sess)
		fab.Report(dev, &hubv1.StatusReport{Statuses: []*hubv1.WorkloadStatus{{
			Uid: w.GetUid(), Seq: 1, PodIp: "10.1.2.3",
			Containers: []*hubv1.ContainerStatus{{Name: "app", Ready: true, State: &hubv1.ContainerState{
				State: &hubv1.ContainerState_Running_{Running: &hubv1.ContainerState_Running{StartedAt: timestamppb.Now()}},
			}}},
		}}})
		var seen []string
		got := waitPod(t, env, "quick", func(p *corev1.Pod) bool {
			seen = append(seen, string(p.Status.Phase)+"/"+waitingReason(p))
			return p.Status.Phase == corev1.PodRunning
		})
		if got.Annotations[efv1.AnnotationDevice] != "pi-1" {
			t.Errorf("device annotation: got %q", got.Annotations[efv1.AnnotationDevice])
		}
		if slices.Contains(seen, "Pending/ContainerCreating") {
			t.Errorf("pod was written ContainerCreating although its device reported at once: %v", seen)
		}
		// Nor is it written later, once the delay has passed.
		time.Sleep(1500 * time.Millisecond)
		if p, err := env.Client.CoreV1().Pods("default").Get(t.Context(), "quick", metav1.GetOptions{}); err != nil || p.Status.Phase != corev1.PodRunning {
			t.Errorf("after the pending delay: %v, %v", p.Status.Phase, err)
		}
		deletePod(t, env, fab, sess, dev, w.GetUid(), "quick")
	})

	creatingReport := func(uid string, seq uint64) *hubv1.StatusReport {
		return &hubv1.StatusReport{Statuses: []*hubv1.WorkloadStatus{{
			Uid: uid, Seq: seq,
			Containers: []*hubv1.ContainerStatus{{Name: "app", State: &hubv1.ContainerState{
				State: &hubv1.ContainerState_Waiting_{Waiting: &hubv1.ContainerState_Waiting{Reason: reasons.ContainerCreating}},
			}}},
		}}}
	}

	t.Run("a device's creating report, then Running within the delay, is one write", func(t *testing.T) {
		p := createPod(t, env, "twostep")
		// Every write of the pod from here on, seen through a watch.
		watch, err := env.Client.CoreV1().Pods("default").Watch(t.Context(), metav1.ListOptions{
			FieldSelector: "metadata.name=twostep", ResourceVersion: p.ResourceVersion,
		})
		if err != nil {
			t.Fatal(err)
		}
		defer watch.Stop()
		w := nextUpsert(t, sess)
		fab.Report(dev, creatingReport(w.GetUid(), 1))
		time.Sleep(300 * time.Millisecond) // time enough for a write, within the delay
		fab.Report(dev, &hubv1.StatusReport{Statuses: []*hubv1.WorkloadStatus{{
			Uid: w.GetUid(), Seq: 2, PodIp: "10.1.2.3",
			Containers: []*hubv1.ContainerStatus{{Name: "app", Ready: true, State: &hubv1.ContainerState{
				State: &hubv1.ContainerState_Running_{Running: &hubv1.ContainerState_Running{StartedAt: timestamppb.Now()}},
			}}},
		}}})
		var seen []string
		timeout := time.After(30 * time.Second)
		for running := false; !running; {
			select {
			case ev := <-watch.ResultChan():
				if p, ok := ev.Object.(*corev1.Pod); ok {
					seen = append(seen, string(p.Status.Phase)+"/"+waitingReason(p))
					running = p.Status.Phase == corev1.PodRunning
				}
			case <-timeout:
				t.Fatalf("pod not Running; writes seen: %v", seen)
			}
		}
		if slices.Contains(seen, "Pending/ContainerCreating") {
			t.Errorf("the creating report was written before Running: %v", seen)
		}
		time.Sleep(1500 * time.Millisecond) // the held report is not written late either
		if p, err := env.Client.CoreV1().Pods("default").Get(t.Context(), "twostep", metav1.GetOptions{}); err != nil || p.Status.Phase != corev1.PodRunning {
			t.Errorf("after the pending delay: %v, %v", p.Status.Phase, err)
		}
		deletePod(t, env, fab, sess, dev, w.GetUid(), "twostep")
	})

	t.Run("a device's creating report alone is written after the delay", func(t *testing.T) {
		createPod(t, env, "slowpull")
		w := nextUpsert(t, sess)
		fab.Report(dev, creatingReport(w.GetUid(), 1))
		got := waitPod(t, env, "slowpull", func(p *corev1.Pod) bool { return p.Annotations[efv1.AnnotationDevice] == "pi-1" })
		if got.Status.Phase != corev1.PodPending || waitingReason(got) != reasons.ContainerCreating {
			t.Errorf("phase %s, waiting %q; want Pending, ContainerCreating", got.Status.Phase, waitingReason(got))
		}
		deletePod(t, env, fab, sess, dev, w.GetUid(), "slowpull")
	})

	t.Run("unsupported pod fails with a reason", func(t *testing.T) {
		createPod(t, env, "hostnet", func(p *corev1.Pod) { p.Spec.HostNetwork = true })
		got := waitPod(t, env, "hostnet", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
		if got.Status.Reason != efv1.ReasonHostNetworkUnsupported {
			t.Errorf("reason: got %q (%s)", got.Status.Reason, got.Status.Message)
		}
		waitEvent(t, env, "hostnet", efv1.ReasonHostNetworkUnsupported)
	})

	t.Run("pod no device has room for is rejected, as a kubelet rejects it", func(t *testing.T) {
		createPod(t, env, "huge", func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceMemory: *resourceQuantity("64Gi")}
		})
		got := waitPod(t, env, "huge", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
		if got.Status.Reason != efv1.ReasonOutOfMemory || !strings.Contains(got.Status.Message, "Insufficient memory") {
			t.Errorf("status: %s: %s, want %s naming the memory", got.Status.Reason, got.Status.Message, efv1.ReasonOutOfMemory)
		}
		waitEvent(t, env, "huge", efv1.ReasonOutOfMemory)
	})

	t.Run("pod that no device matches waits and says why", func(t *testing.T) {
		createPod(t, env, "picky", func(p *corev1.Pod) {
			p.Annotations = map[string]string{efv1.AnnotationDeviceSelector: "camera=yes"}
		})
		got := waitPod(t, env, "picky", func(p *corev1.Pod) bool {
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.ContainersReady && c.Reason == efv1.ReasonUnschedulable {
					return true
				}
			}
			return false
		})
		t.Logf("status: %+v", got.Status.Conditions)
		waitEvent(t, env, "picky", efv1.ReasonFailedScheduling)
	})

	t.Run("an image for another platform moves the pod to a device that can run it", func(t *testing.T) {
		nuc := identity.Device{ID: "nuc-1", Account: "acme"}
		nucSess := fab.Connect(nuc, &hubv1.Hello{
			DeviceId: "nuc-1", Os: "linux", Arch: "amd64", Runtimes: []string{"wasm", "process"}, Addresses: []string{"10.1.2.4"},
			Capacity: &hubv1.Resources{CpuMillis: 4000, MemoryBytes: 2 << 30, Pods: 20},
		})
		devs := map[string]*fabric.Session{"pi-1": sess, "nuc-1": nucSess}
		platform := map[string]string{"pi-1": "linux/arm64", "nuc-1": "linux/amd64"}
		idOf := map[string]identity.Device{"pi-1": dev, "nuc-1": nuc}
		native := func(p *corev1.Pod) { p.Spec.Containers[0].Image = "reg/native:1" }

		p := createPod(t, env, "native", native)
		first, _ := upsertOn(t, string(p.UID), devs)
		other := "nuc-1"
		if first == "nuc-1" {
			other = "pi-1"
		}
		// The first device cannot pull it: the image is for the other's platform.
		fab.Report(idOf[first], &hubv1.StatusReport{Statuses: []*hubv1.WorkloadStatus{{
			Uid: string(p.UID), Seq: 1,
			Containers: []*hubv1.ContainerStatus{{Name: "app", Image: "reg/native:1", ImagePlatforms: []string{platform[other]},
				State: &hubv1.ContainerState{State: &hubv1.ContainerState_Waiting_{Waiting: &hubv1.ContainerState_Waiting{Reason: reasons.ErrImagePull, Message: "image is for " + platform[other]}}}}},
		}}})
		if got, _ := upsertOn(t, string(p.UID), map[string]*fabric.Session{other: devs[other]}); got != other {
			t.Fatalf("moved to %s, want %s", got, other)
		}
		waitEvent(t, env, "native", efv1.ReasonImagePlatform)
		waitPod(t, env, "native", func(p *corev1.Pod) bool { return p.Annotations[efv1.AnnotationDevice] == other })

		// The platform is known now: the next pod of that image goes
		// straight to a device that can run it.
		p2 := createPod(t, env, "native-2", native)
		if got, _ := upsertOn(t, string(p2.UID), devs); got != other {
			t.Errorf("second pod of the image placed on %s, want %s", got, other)
		}
		fab.Disconnect(nucSess)
	})

	t.Run("provider restart keeps placed pods on their device", func(t *testing.T) {
		p := createPod(t, env, "keep")
		w := nextUpsert(t, sess)
		waitPod(t, env, "keep", func(p *corev1.Pod) bool { return p.Annotations[efv1.AnnotationDevice] == "pi-1" })
		// A user moves another placed pod's annotation to a device of
		// their choosing: after the restart it is not taken as placed.
		createPod(t, env, "moved")
		nextUpsert(t, sess)
		moved := waitPod(t, env, "moved", func(p *corev1.Pod) bool { return p.Annotations[efv1.AnnotationDevice] == "pi-1" })
		moved.Annotations[efv1.AnnotationDevice] = "elsewhere"
		if _, err := env.Client.CoreV1().Pods("default").Update(t.Context(), moved, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		stop()
		fab2 := fabric.New(log)
		fab = fab2
		stop = startManager()
		sess2 := fab2.Connect(dev, &hubv1.Hello{DeviceId: "pi-1", Runtimes: []string{"wasm"}, Capacity: &hubv1.Resources{CpuMillis: 4000, MemoryBytes: 2 << 30, Pods: 20}})
		msgs, err := sess2.Next(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		full := msgs[0].GetDesired()
		found := false
		for _, x := range full.GetWorkloads() {
			found = found || (x.GetUid() == string(p.UID) && x.GetSpecHash() == w.GetSpecHash())
		}
		if !found {
			t.Errorf("full state after restart lacks the placed pod: %v", msgs)
		}
		waitPod(t, env, "moved", func(p *corev1.Pod) bool { return p.Annotations[efv1.AnnotationDevice] == "pi-1" })
		sess = sess2
	})

}

// upsertOn waits until one of the sessions (by device) is sent the workload
// uid and returns that device and the workload.
func upsertOn(t *testing.T, uid string, sessions map[string]*fabric.Session) (string, *hubv1.Workload) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	type hit struct {
		dev string
		w   *hubv1.Workload
	}
	found := make(chan hit, len(sessions))
	var wg sync.WaitGroup
	for dev, s := range sessions {
		wg.Go(func() {
			for {
				msgs, err := s.Next(ctx)
				if err != nil {
					return
				}
				for _, m := range msgs {
					if w := m.GetDelta().GetUpsert(); w.GetUid() == uid {
						found <- hit{dev, w}
						return
					}
					for _, w := range m.GetDesired().GetWorkloads() {
						if w.GetUid() == uid {
							found <- hit{dev, w}
							return
						}
					}
				}
			}
		})
	}
	defer wg.Wait()
	select {
	case h := <-found:
		cancel()
		return h.dev, h.w
	case <-ctx.Done():
		t.Fatalf("workload %s was sent to no device within 30s", uid)
		return "", nil
	}
}

func resourceQuantity(s string) *resource.Quantity { q := resource.MustParse(s); return &q }

func createPod(t *testing.T, env *kubetest.Env, name string, mutate ...func(*corev1.Pod)) *corev1.Pod {
	t.Helper()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.PodSpec{
			NodeName:   "edge-acme",
			Containers: []corev1.Container{{Name: "app", Image: "reg/x:1"}},
		},
	}
	for _, m := range mutate {
		m(p)
	}
	out, err := env.Client.CoreV1().Pods("default").Create(t.Context(), p, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func nextDelta(t *testing.T, s *fabric.Session) *hubv1.WorkloadDelta {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for {
		msgs, err := s.Next(ctx)
		if err != nil {
			t.Fatalf("waiting for a delta: %v", err)
		}
		for _, m := range msgs {
			if d := m.GetDelta(); d != nil {
				return d
			}
		}
	}
}

func nextUpsert(t *testing.T, s *fabric.Session) *hubv1.Workload {
	t.Helper()
	for {
		if w := nextDelta(t, s).GetUpsert(); w != nil {
			return w
		}
	}
}

func waitNode(t *testing.T, env *kubetest.Env, name string, cond func(*corev1.Node) bool) *corev1.Node {
	lw := cache.NewListWatchFromClient(env.Client.CoreV1().RESTClient(), "nodes", "", fields.OneTermEqualSelector("metadata.name", name))
	return kubetest.Until(t, 60*time.Second, lw, &corev1.Node{}, cond)
}

func waitPod(t *testing.T, env *kubetest.Env, name string, cond func(*corev1.Pod) bool) *corev1.Pod {
	lw := cache.NewListWatchFromClient(env.Client.CoreV1().RESTClient(), "pods", "default", fields.OneTermEqualSelector("metadata.name", name))
	return kubetest.Until(t, 60*time.Second, lw, &corev1.Pod{}, cond)
}

func waitEvent(t *testing.T, env *kubetest.Env, pod, reason string) {
	lw := cache.NewListWatchFromClient(env.Client.CoreV1().RESTClient(), "events", "default", fields.OneTermEqualSelector("involvedObject.name", pod))
	kubetest.Until(t, 60*time.Second, lw, &corev1.Event{}, func(e *corev1.Event) bool { return e.Reason == reason })
}

func waitGone(t *testing.T, env *kubetest.Env, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	w, err := env.Client.CoreV1().Pods("default").Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + name})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if _, err := env.Client.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{}); err != nil {
		return
	}
	for ev := range w.ResultChan() {
		if ev.Type == watch.Deleted {
			return
		}
	}
	t.Fatalf("pod %s not deleted within 30s", name)
}

func ready(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// waitingReason is the waiting reason of the pod's first container, or "".
func waitingReason(p *corev1.Pod) string {
	if len(p.Status.ContainerStatuses) == 0 || p.Status.ContainerStatuses[0].State.Waiting == nil {
		return ""
	}
	return p.Status.ContainerStatuses[0].State.Waiting.Reason
}

// deletePod deletes the pod and confirms, as its device would, that its
// workload stopped.
func deletePod(t *testing.T, env *kubetest.Env, fab *fabric.Fabric, sess *fabric.Session, dev identity.Device, uid, name string) {
	t.Helper()
	if err := env.Client.CoreV1().Pods("default").Delete(t.Context(), name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	for nextDelta(t, sess).GetDeleteUid() != uid {
	}
	fab.Report(dev, &hubv1.StatusReport{Statuses: []*hubv1.WorkloadStatus{{
		Uid: uid, Seq: 100, Phase: "Failed",
		Containers: []*hubv1.ContainerStatus{{Name: "app", State: &hubv1.ContainerState{
			State: &hubv1.ContainerState_Terminated_{Terminated: &hubv1.ContainerState_Terminated{ExitCode: 137, Reason: reasons.Killed}},
		}}},
	}}})
	waitGone(t, env, name)
}
