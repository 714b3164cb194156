package node

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"
	clocktesting "k8s.io/utils/clock/testing"

	hubv1 "github.com/edgefabric/edgefabric/pkg/apis/hub/v1"
	"github.com/edgefabric/edgefabric/pkg/provider/fabric"
	"github.com/edgefabric/edgefabric/pkg/provider/node/lifecycle"
	"github.com/edgefabric/edgefabric/pkg/scopes"
)

// testNode is a node of account a with no controllers: the shell around the
// lifecycle, driven by hand, on a fake clock.
func testNode(t *testing.T) (*clusterNode, *clocktesting.FakeClock, *record.FakeRecorder) {
	t.Helper()
	clk := clocktesting.NewFakeClock(time.Unix(1_000_000, 0))
	client := fake.NewClientset(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}})
	log := slog.New(slog.DiscardHandler)
	m, err := NewManager(Config{NodeIP: "127.0.0.1", DeviceLossGrace: time.Minute, Clock: clk}, client, fabric.New(log), log)
	if err != nil {
		t.Fatal(err)
	}
	rec := record.NewFakeRecorder(100)
	n := &clusterNode{
		m: m, account: "a", key: fabric.ClusterKey{Account: "a", Scope: scopes.Account}, name: "edge-a", recorder: rec,
		byUID: map[string]lifecycle.Pod{}, byKey: map[string]string{},
		nodeChanged: make(chan struct{}, 1), retryNow: make(chan struct{}, 1), statusReady: make(chan struct{}, 1),
	}
	return n, clk, rec
}

// recoveredPod is a pod the provider placed on device d1 before it
// restarted.
func recoveredPod(n *clusterNode) string {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "p", UID: "uid-p"},
		Spec:       corev1.PodSpec{NodeName: n.name, Containers: []corev1.Container{{Name: "app", Image: "app:1"}}},
	}
	lifecycle.MarkPlaced(pod, "d1", 1, time.Unix(0, 0))
	n.m.track("uid-p", n)
	n.step(context.Background(), "uid-p", lifecycle.Recover{Pod: pod, Device: "d1", Epoch: 1, Workload: &hubv1.Workload{Uid: "uid-p", Name: "p", Namespace: "default"}})
	return "uid-p"
}

// TestStatusOffTheListener: a device's report is taken in the fabric's
// listener call, which must not block; virtual-kubelet's status callback
// may. The status is queued and given to the callback by its own goroutine.
func TestStatusOffTheListener(t *testing.T) {
	n, _, _ := testNode(t)
	uid := recoveredPod(n)
	release := make(chan struct{})
	got := make(chan *corev1.Pod, 1)
	n.NotifyPods(t.Context(), func(p *corev1.Pod) {
		got <- p
		<-release // a pod controller whose queue is full
	})
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() { n.sendPodStatuses(ctx) })
	defer func() {
		cancel()
		wg.Wait()
	}()

	running := &hubv1.WorkloadStatus{Uid: uid, Seq: 1, Phase: "Running", Containers: []*hubv1.ContainerStatus{
		{Name: "app", State: &hubv1.ContainerState{State: &hubv1.ContainerState_Running_{Running: &hubv1.ContainerState_Running{}}}},
	}}
	n.workloadStatus(uid, running) // the callback now blocks in sendPodStatuses
	if p := <-got; p.Status.Phase != corev1.PodRunning {
		t.Errorf("status given to virtual-kubelet: phase %q, want Running", p.Status.Phase)
	}
	// A second report while the callback is blocked returns at once.
	done := make(chan struct{})
	go func() {
		n.workloadStatus(uid, &hubv1.WorkloadStatus{Uid: uid, Seq: 2, Phase: "Succeeded", Containers: []*hubv1.ContainerStatus{
			{Name: "app", State: &hubv1.ContainerState{State: &hubv1.ContainerState_Terminated_{Terminated: &hubv1.ContainerState_Terminated{}}}},
		}})
		close(done)
	}()
	<-done
	close(release)
	if p := <-got; p.Status.Phase != corev1.PodSucceeded {
		t.Errorf("second status: phase %q, want Succeeded", p.Status.Phase)
	}
}

// TestDeviceLossOnTheClock: the node reads the time from its clock: a pod
// whose device has not been seen since the provider started is placed again
// once the clock passes the device-loss grace, not before.
func TestDeviceLossOnTheClock(t *testing.T) {
	n, clk, rec := testNode(t)
	uid := recoveredPod(n)

	clk.Step(time.Minute - time.Second)
	n.tick(t.Context(), "", "")
	if st := n.byUID[uid]; st.Device != "d1" || st.Phase != lifecycle.Running {
		t.Fatalf("before the grace: %s on %q, want running on d1", st.Phase, st.Device)
	}
	clk.Step(time.Second)
	n.tick(t.Context(), "", "")
	st := n.byUID[uid]
	if st.Device != "" || st.Phase != lifecycle.Waiting {
		t.Errorf("after the grace: %s on %q, want waiting on none (no device left)", st.Phase, st.Device)
	}
	var events []string
	for len(rec.Events) > 0 {
		events = append(events, <-rec.Events)
	}
	want := []string{
		"Warning DeviceLost Device d1 offline for 1m0s; placing the pod on another device",
		"Warning FailedScheduling 0/1 devices are available: 1 offline.",
	}
	if diff := cmp.Diff(want, events); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}
