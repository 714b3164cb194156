package e2e

import (
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/tools/cache"

	"github.com/edgefabric/edgefabric/pkg/agent/logs"
	efv1 "github.com/edgefabric/edgefabric/pkg/apis/edgefabric/v1alpha1"
	"github.com/edgefabric/edgefabric/test/fabrictest"
	"github.com/edgefabric/edgefabric/test/kubetest"
	"github.com/edgefabric/edgefabric/test/ocitest"
)

// TestScopes runs two LANs of three agents of one account, plus an agent of
// another account on LAN 1, each agent in its own network namespace, and
// checks that the agents form one network cluster per LAN and account (a
// virtual node each), that pods land on the devices of their cluster, that a
// lost device's pods move after their grace and its stale copy stops when it
// comes back, and that a LAN cut off the hub keeps its cluster and its pods.
func TestScopes(t *testing.T) {
	fabrictest.NeedLANs(t)
	f := startFabric(t, 0, fabrictest.WithProviderArgs("--scopes", "network,account,proximity", "--proximity-km", "100"))
	const other = "other"
	otherToken := "other-account-token-0123456789"
	f.CreateToken("bootstrap-token-"+other, otherToken, other, "")
	fast := []string{"--discovery-interval", "2s", "--probe-interval", "1s"}
	lan1, lan2 := f.StartLAN(), f.StartLAN()
	berlin := append([]string{"--location", "52.52,13.405"}, fast...)
	paris := append([]string{"--location", "48.857,2.352"}, fast...)
	lan1.StartAgent("a1", berlin...)
	lan1.StartAgent("a2", append([]string{"--labels", "role=camera"}, berlin...)...)
	lan1.StartAgent("a3", berlin...)
	lan2.StartAgent("a4", paris...)
	lan2.StartAgent("a5", paris...)
	lan2.StartAgent("a6", paris...)
	lan1.StartAgent("b1", append([]string{"--token-file", f.TokenFile(otherToken)}, fast...)...)

	// One network node per LAN for the account, one for the other account.
	net1 := waitClusterNode(f, "network", account, "a1, a2, a3", 3)
	net2 := waitClusterNode(f, "network", account, "a4, a5, a6", 3)
	netB := waitClusterNode(f, "network", other, "b1", 1)
	// Proximity by --location, radius 100 km: Berlin and Paris apart; b1
	// gave no location and is in no proximity cluster.
	prox1 := waitClusterNode(f, "proximity", account, "a1, a2, a3", 3)
	prox2 := waitClusterNode(f, "proximity", account, "a4, a5, a6", 3)
	if !strings.HasPrefix(prox1, "edge-"+account+"-prox-") || prox1 == prox2 {
		t.Fatalf("proximity nodes %s, %s: want two of account %s", prox1, prox2, account)
	}
	if net1 == net2 || !strings.HasPrefix(net1, "edge-"+account+"-net-") || !strings.HasPrefix(netB, "edge-"+other+"-net-") {
		t.Fatalf("network nodes %s, %s, %s: want two of account %s and one of %s", net1, net2, netB, account, other)
	}
	nodes, err := f.Client.CoreV1().Nodes().List(t.Context(), metav1.ListOptions{LabelSelector: efv1.LabelScope + "=network"})
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes.Items) != 3 {
		var names []string
		for _, n := range nodes.Items {
			names = append(names, n.Name+" ("+readyMessage(&n)+")")
		}
		t.Fatalf("network nodes: got %v, want 3", names)
	}

	t.Run("fleet view", func(t *testing.T) {
		f := f.For(t)
		want := map[string]string{}
		for _, id := range []string{"a1", "a2", "a3"} {
			want[account+"."+id] = "Online edge-" + account + "," + net1 + "," + prox1
		}
		for _, id := range []string{"a4", "a5", "a6"} {
			want[account+"."+id] = "Online edge-" + account + "," + net2 + "," + prox2
		}
		want[other+".b1"] = "Online edge-" + other + "," + netB
		var got map[string]string
		deadline := time.Now().Add(30 * time.Second)
		for {
			out, err := f.Kubectl("get", "edgedevices", "--no-headers", "-o", "custom-columns=NAME:.metadata.name,PHASE:.status.phase,NODES:.status.nodes")
			got = map[string]string{}
			for _, l := range fabrictest.Lines(out) {
				if fs := strings.Fields(l); len(fs) == 3 {
					got[fs[0]] = fs[1] + " " + fs[2]
				}
			}
			if err == nil && fmt.Sprint(got) == fmt.Sprint(want) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("kubectl get edgedevices: got %v (%v), want %v", got, err, want)
			}
			time.Sleep(500 * time.Millisecond)
		}
		out, err := f.Kubectl("get", "edgedevices")
		if err != nil || !strings.Contains(fabrictest.Lines(out)[0], "ACCOUNT") || !strings.Contains(out, "linux") {
			t.Errorf("kubectl get edgedevices prints no useful columns: %v\n%s", err, out)
		}
		t.Logf("kubectl get edgedevices:\n%s", out)
	})

	ref, _ := f.PushExample("hello", "scopes", ocitest.Image)
	on := func(node string) func(*corev1.Pod) { return func(p *corev1.Pod) { p.Spec.NodeName = node } }
	annotate := func(k, v string) func(*corev1.Pod) {
		return func(p *corev1.Pod) {
			if p.Annotations == nil {
				p.Annotations = map[string]string{}
			}
			p.Annotations[k] = v
		}
	}
	interval := fabrictest.Env("INTERVAL", "200ms")

	t.Run("pods land on their cluster's devices", func(t *testing.T) {
		f := f.For(t)
		f.Create(f.Pod("camera", ref, on(net1), interval, annotate(efv1.AnnotationDeviceSelector, "role=camera")))
		f.Create(f.Pod("lan2", ref, on(net2), interval))
		if p := f.WaitPod("camera", 90*time.Second, fabrictest.PodReady); p.Annotations[efv1.AnnotationDevice] != "a2" {
			t.Errorf("pod camera with selector role=camera runs on %q, want a2", p.Annotations[efv1.AnnotationDevice])
		}
		if p := f.WaitPod("lan2", 90*time.Second, fabrictest.PodReady); !slices.Contains([]string{"a4", "a5", "a6"}, p.Annotations[efv1.AnnotationDevice]) {
			t.Errorf("pod lan2 runs on %q, want a device of LAN 2", p.Annotations[efv1.AnnotationDevice])
		}
		f.Create(f.Pod("nowhere", ref, on(net1), annotate(efv1.AnnotationDeviceSelector, "role=drone")))
		p := f.WaitPod("nowhere", 30*time.Second, func(p *corev1.Pod) bool {
			return strings.Contains(podMessage(p), "didn't match the device selector")
		})
		if p.Status.Phase != corev1.PodPending {
			t.Errorf("pod nowhere: phase %s, want Pending", p.Status.Phase)
		}
	})

	t.Run("accounts kept apart", func(t *testing.T) {
		f := f.For(t)
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "tenant-" + other, Labels: map[string]string{efv1.LabelAccount: other}}}
		if _, err := f.Client.CoreV1().Namespaces().Create(t.Context(), ns, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		p := f.Pod("intruder", ref, on(net1))
		p.Namespace = ns.Name
		f.Create(p)
		lw := cache.NewListWatchFromClient(f.Client.CoreV1().RESTClient(), "pods", ns.Name, fields.OneTermEqualSelector("metadata.name", "intruder"))
		got := kubetest.Until(t, 60*time.Second, lw, &corev1.Pod{}, func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
		if got.Status.Reason != efv1.ReasonAccountMismatch || !strings.Contains(got.Status.Message, "belongs to account "+other) {
			t.Errorf("intruder: reason %q message %q, want AccountMismatch naming account %s", got.Status.Reason, got.Status.Message, other)
		}
		if d := got.Annotations[efv1.AnnotationDevice]; d != "" {
			t.Errorf("intruder was placed on device %s", d)
		}
	})

	t.Run("device lost, pods move, stale copy stops", func(t *testing.T) {
		f := f.For(t)
		f.Create(f.Pod("mover", ref, on(net1), interval, annotate(efv1.AnnotationDeviceLossGrace, "3s"),
			annotate(efv1.AnnotationDeviceSelector, "role!=camera")))
		p := f.WaitPod("mover", 90*time.Second, fabrictest.PodReady)
		lost := f.DeviceOf(p)
		epoch := p.Annotations[efv1.AnnotationFencingEpoch]
		lost.Stop(t, syscall.SIGKILL)
		killed := time.Now()
		moved := f.WaitPod("mover", 90*time.Second, func(q *corev1.Pod) bool {
			d := q.Annotations[efv1.AnnotationDevice]
			return d != "" && d != lost.ID && fabrictest.PodReady(q)
		})
		took := time.Since(killed)
		if d := moved.Annotations[efv1.AnnotationDevice]; !slices.Contains([]string{"a1", "a3"}, d) {
			t.Errorf("mover moved to %s, want the other LAN 1 device without role=camera", d)
		}
		if took < 3*time.Second {
			t.Errorf("mover moved %v after its device was killed, before its 3s grace", took)
		}
		if e, _ := strconv.Atoi(epoch); moved.Annotations[efv1.AnnotationFencingEpoch] != strconv.Itoa(e+1) {
			t.Errorf("fencing epoch: got %q, want %d", moved.Annotations[efv1.AnnotationFencingEpoch], e+1)
		}
		f.WaitEvent("mover", efv1.ReasonDeviceLost, 10*time.Second)
		t.Logf("pod Running on %s %v after %s was killed (grace 3s)", moved.Annotations[efv1.AnnotationDevice], took.Round(100*time.Millisecond), lost.ID)

		// The lost device comes back: its stale copy is stopped.
		staleLog := newestLog(t, lost.Logs(p, "app"))
		lan1.RestartAgent(lost)
		waitClusterNode(f, "network", account, "a1, a2, a3", 3)
		f.WaitFileStops(staleLog, 30*time.Second)
		// Still one copy: the pod runs where it moved.
		if q := f.WaitPod("mover", 10*time.Second, fabrictest.PodReady); q.Annotations[efv1.AnnotationDevice] != moved.Annotations[efv1.AnnotationDevice] {
			t.Errorf("mover went back to %s", q.Annotations[efv1.AnnotationDevice])
		}
	})

	t.Run("uplink cut", func(t *testing.T) {
		f := f.For(t)
		p := f.WaitPod("lan2", 10*time.Second, fabrictest.PodReady)
		dev := f.DeviceOf(p)
		logFile := newestLog(t, dev.Logs(p, "app"))
		lan2.CutUplink()
		cut := time.Now()
		waitNode(f, net2, func(n *corev1.Node) bool { return !fabrictest.NodeReady(n) })
		// The LAN keeps serving: the pod keeps running, nothing moves.
		size := fabrictest.FileSize(logFile)
		f.WaitFileGrows(logFile, size, 10*time.Second)
		q, err := f.Client.CoreV1().Pods(fabrictest.Namespace).Get(t.Context(), "lan2", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if q.Annotations[efv1.AnnotationDevice] != dev.ID || q.DeletionTimestamp != nil {
			t.Errorf("pod lan2 moved or evicted %v after the cut (grace 60s): device %s", time.Since(cut), q.Annotations[efv1.AnnotationDevice])
		}
		// The agents of LAN 2 still count each other as peers, and say so.
		deadline := time.Now().Add(30 * time.Second)
		for {
			out, err := exec.Command(f.AgentBin(), "status", "--data-dir", f.Agent("a4").DataDir).CombinedOutput()
			if err == nil && strings.Contains(string(out), "disconnected") && strings.Contains(string(out), "(2 LAN peers: a5, a6)") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("edgeagent status of a4 while its uplink is cut: %v\n%s", err, out)
			}
			time.Sleep(500 * time.Millisecond)
		}
		time.Sleep(3 * time.Second)
		for _, id := range []string{"a4", "a5", "a6"} {
			if out := f.Agent(id).Output(); strings.Contains(out, "change=departed") {
				t.Errorf("agent %s lost a LAN peer while the uplink was cut:\n%s", id, fabrictest.Tail(out, 20))
			}
		}
		lan2.RestoreUplink()
		if got := waitClusterNode(f, "network", account, "a4, a5, a6", 3); got != net2 {
			t.Errorf("LAN 2's node after the uplink came back: %s, want %s", got, net2)
		}
	})
	f.CheckAlive()
}

// waitClusterNode waits for a Ready node of a cluster of scope and account
// whose devices are exactly members ("a1, a2, a3") and returns its name.
func waitClusterNode(f *fabrictest.Fabric, scope, account, members string, ready int) string {
	f.T().Helper()
	lw := cache.NewFilteredListWatchFromClient(f.Client.CoreV1().RESTClient(), "nodes", "", func(o *metav1.ListOptions) {
		o.LabelSelector = efv1.LabelScope + "=" + scope + "," + efv1.LabelAccount + "=" + account
	})
	n := kubetest.Until(f.T(), 90*time.Second, lw, &corev1.Node{}, func(n *corev1.Node) bool {
		return fabrictest.NodeReady(n) && readyMessage(n) == fmt.Sprintf("%d/%d devices ready: %s", ready, ready, members)
	})
	return n.Name
}

func waitNode(f *fabrictest.Fabric, name string, cond func(*corev1.Node) bool) *corev1.Node {
	f.T().Helper()
	lw := cache.NewListWatchFromClient(f.Client.CoreV1().RESTClient(), "nodes", "", fields.OneTermEqualSelector("metadata.name", name))
	return kubetest.Until(f.T(), 90*time.Second, lw, &corev1.Node{}, cond)
}

func readyMessage(n *corev1.Node) string {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Message
		}
	}
	return ""
}

// podMessage is the pod's status message and its containers' waiting messages.
func podMessage(p *corev1.Pod) string {
	msg := p.Status.Message
	for _, c := range p.Status.Conditions {
		msg += " " + c.Message
	}
	for _, c := range p.Status.ContainerStatuses {
		if c.State.Waiting != nil {
			msg += " " + c.State.Waiting.Message
		}
	}
	return msg
}

// newestLog is the log file of a container's latest attempt.
func newestLog(t *testing.T, lf logs.Files) string {
	t.Helper()
	atts, err := lf.Attempts()
	if err != nil {
		t.Fatal(err)
	}
	if len(atts) == 0 {
		t.Fatalf("no log file %s", lf)
	}
	return lf.Current(atts[len(atts)-1])
}
