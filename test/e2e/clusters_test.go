package e2e

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	efv1 "github.com/edgefabric/edgefabric/pkg/apis/edgefabric/v1alpha1"
	"github.com/edgefabric/edgefabric/test/fabrictest"
	"github.com/edgefabric/edgefabric/test/ocitest"
)

// clustersHoldFor is how long TestClustersHold watches the fabric:
// EDGEFABRIC_CLUSTERS_HOLD (a Go duration) or two minutes, a dozen of the
// agents' LAN refresh periods as the test sets them and several of every
// other periodic refresh (peer probes, coordinates, the provider's retry
// loop, node leases).
func clustersHoldFor(t *testing.T) time.Duration {
	if s := os.Getenv("EDGEFABRIC_CLUSTERS_HOLD"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("EDGEFABRIC_CLUSTERS_HOLD: %v", err)
		}
		return d
	}
	return 2 * time.Minute
}

// TestClustersHold runs two LANs of two agents with pods on every node for
// minutes, while what the agents read about their LANs changes as it does on
// real LANs (the gateway appears in the neighbour table, a router is
// swapped for another with the same address) and an agent restarts. No node
// may be replaced and no pod moved or lost; no pod may restart but those on
// the restarted agent's device, whose WASM instances end with the agent and
// come back from its store once.
func TestClustersHold(t *testing.T) {
	fabrictest.NeedLANs(t)
	f := startFabric(t, 0)
	fast := []string{"--discovery-interval", "2s", "--probe-interval", "1s", "--lan-interval", "5s"}
	lan1, lan2 := f.StartLAN(), f.StartLAN()
	lan1.StartAgent("h1", fast...)
	lan1.StartAgent("h2", fast...)
	lan2.StartAgent("h3", fast...)
	restarted := lan2.StartAgent("h4", fast...)
	net1 := waitClusterNode(f, "network", account, "h1, h2", 2)
	net2 := waitClusterNode(f, "network", account, "h3, h4", 2)
	waitNode(f, nodeName, func(n *corev1.Node) bool { return fabrictest.ReadyDevices(n) == 4 })

	ref, _ := f.PushExample("hello", "hold", ocitest.Image)
	onNode := func(n string) func(*corev1.Pod) {
		return func(p *corev1.Pod) { p.Spec.NodeName = n }
	}
	pods := map[string]string{"hold-net1": net1, "hold-net2": net2, "hold-acct-a": nodeName, "hold-acct-b": nodeName}
	for name, n := range pods {
		f.Create(f.Pod(name, ref, fabrictest.Env("INTERVAL", "5s"), onNode(n)))
	}
	type placed struct {
		uid    string
		device string
	}
	want := map[string]placed{}
	for name := range pods {
		p := f.WaitPod(name, 90*time.Second, fabrictest.PodReady)
		want[name] = placed{string(p.UID), p.Annotations[efv1.AnnotationDevice]}
	}
	nodes := map[string]string{} // name → UID
	list, err := f.Client.CoreV1().Nodes().List(t.Context(), metav1.ListOptions{LabelSelector: efv1.LabelAccount + "=" + account})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range list.Items {
		nodes[n.Name] = string(n.UID)
	}
	if len(nodes) != 3 {
		t.Fatalf("nodes of account %s: %v, want the account's and one per LAN", account, slices.Sorted(maps.Keys(nodes)))
	}

	// Everything that happens to the account's nodes and the pods is
	// recorded from now on.
	var mu sync.Mutex
	var changes []string
	record := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		changes = append(changes, time.Now().Format("15:04:05.000")+" "+fmt.Sprintf(format, args...))
	}
	nw, err := f.Client.CoreV1().Nodes().Watch(t.Context(), metav1.ListOptions{LabelSelector: efv1.LabelAccount + "=" + account, ResourceVersion: list.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer nw.Stop()
	pl, err := f.Client.CoreV1().Pods(namespace).List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pw, err := f.Client.CoreV1().Pods(namespace).Watch(t.Context(), metav1.ListOptions{ResourceVersion: pl.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer pw.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		for ev := range nw.ResultChan() {
			n, ok := ev.Object.(*corev1.Node)
			if !ok {
				continue
			}
			switch {
			case ev.Type == watch.Added || ev.Type == watch.Deleted:
				record("node %s %s", n.Name, ev.Type)
			case !fabrictest.NodeReady(n):
				record("node %s NotReady: %s", n.Name, readyMessage(n))
			}
		}
	})
	wg.Go(func() {
		for ev := range pw.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			w, ours := want[p.Name]
			switch {
			case !ours:
			case ev.Type != watch.Modified:
				record("pod %s %s", p.Name, ev.Type)
			case p.DeletionTimestamp != nil || string(p.UID) != w.uid:
				record("pod %s deleted or replaced", p.Name)
			case p.Annotations[efv1.AnnotationDevice] != w.device:
				record("pod %s moved from %s to %s", p.Name, w.device, p.Annotations[efv1.AnnotationDevice])
			case w.device == restarted.ID && app(p).RestartCount <= 1:
				// Its agent restarted: the container did too, once.
			case app(p).RestartCount != 0 || p.Status.Phase != corev1.PodRunning:
				record("pod %s %s, %d restarts", p.Name, p.Status.Phase, app(p).RestartCount)
			}
		}
	})

	hold := clustersHoldFor(t)
	start := time.Now()
	steps := []struct {
		at time.Duration
		do func()
	}{
		// The gateway answers: its MAC appears in every agent's neighbour
		// table (what renamed every LAN's node a minute after start).
		{hold / 8, func() { lan1.SetGatewayMAC("02:00:00:00:01:01"); lan2.SetGatewayMAC("02:00:00:00:02:01") }},
		// LAN 1's router is swapped for another with the same address.
		{hold * 3 / 8, func() { lan1.SetGatewayMAC("02:00:00:00:01:99") }},
		// An agent restarts: it is "discovering" for a moment, then back.
		{hold / 2, func() {
			restarted.Stop(t, 15)
			lan2.RestartAgent(restarted)
		}},
	}
	for _, s := range steps {
		if d := time.Until(start.Add(s.at)); d > 0 {
			time.Sleep(d)
		}
		s.do()
	}
	time.Sleep(time.Until(start.Add(hold)))
	nw.Stop()
	pw.Stop()
	wg.Wait()

	after, err := f.Client.CoreV1().Nodes().List(t.Context(), metav1.ListOptions{LabelSelector: efv1.LabelAccount + "=" + account})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, n := range after.Items {
		got[n.Name] = string(n.UID)
	}
	if !maps.Equal(got, nodes) {
		t.Errorf("nodes after %v: %v, want the same as at the start: %v", hold, got, nodes)
	}
	allowed := func(device string) int32 {
		if device == restarted.ID {
			return 1
		}
		return 0
	}
	for name, w := range want {
		p, err := f.Client.CoreV1().Pods(namespace).Get(t.Context(), name, metav1.GetOptions{})
		switch {
		case err != nil:
			t.Errorf("pod %s: %v", name, err)
		case string(p.UID) != w.uid || p.Annotations[efv1.AnnotationDevice] != w.device || app(p).RestartCount > allowed(w.device) || !fabrictest.PodReady(p):
			t.Errorf("pod %s after %v: uid %s on %s, %d restarts, ready %v; want uid %s on %s, at most %d restarts", name, hold, p.UID, p.Annotations[efv1.AnnotationDevice], app(p).RestartCount, fabrictest.PodReady(p), w.uid, w.device, allowed(w.device))
		}
	}
	// The restarted agent's node may have shown 1/2 devices for a moment;
	// anything else is a change the fabric should not have made.
	mu.Lock()
	defer mu.Unlock()
	var unexpected []string
	for _, c := range changes {
		if !strings.Contains(c, "NotReady") {
			unexpected = append(unexpected, c)
		}
	}
	if len(unexpected) > 0 {
		t.Errorf("over %v:\n%s", hold, strings.Join(unexpected, "\n"))
	}
	t.Logf("over %v, %d changes seen, all expected: %v", hold, len(changes), changes)
}

// TestNoCapacityPromisedTwice creates, through kube-scheduler, more pods than
// one LAN's devices have room for. The devices back two nodes (the account's
// and the LAN's); each offers only what the other's pods leave free, so pods
// beyond the room never sit bound and stuck: those that fit all run, the
// rest stay unscheduled or are rejected as a kubelet rejects a pod it cannot
// admit.
func TestNoCapacityPromisedTwice(t *testing.T) {
	fabrictest.NeedLANs(t)
	f := startFabric(t, 0, fabrictest.WithScheduler())
	const perDevice, devices, total = 3, 3, 20
	lan := f.StartLAN()
	for i := range devices {
		lan.StartAgent(fmt.Sprintf("c%d", i), "--discovery-interval", "2s", "--probe-interval", "1s", "--pods", fmt.Sprint(perDevice))
	}
	netNode := waitClusterNode(f, "network", account, "c0, c1, c2", devices)
	for _, n := range []string{nodeName, netNode} {
		waitNode(f, n, func(n *corev1.Node) bool {
			return n.Status.Allocatable.Pods().Value() == perDevice*devices && !slices.ContainsFunc(n.Spec.Taints, func(t corev1.Taint) bool { return t.Key == corev1.TaintNodeNotReady })
		})
	}
	ref, _ := f.PushExample("hello", "room", ocitest.Image)
	for i := range total {
		f.Create(f.Pod(fmt.Sprintf("room-%02d", i), ref, fabrictest.Env("INTERVAL", "10s"), func(p *corev1.Pod) {
			p.Spec.NodeName = ""
			p.Spec.NodeSelector = map[string]string{"type": "virtual-kubelet"}
		}))
	}

	// Settled: every pod running, rejected or unscheduled, none bound and
	// waiting inside its node.
	var running, rejected, unbound int
	var stuck []string
	deadline := time.Now().Add(2 * time.Minute)
	for {
		running, rejected, unbound, stuck = 0, 0, 0, nil
		l, err := f.Client.CoreV1().Pods(namespace).List(t.Context(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range l.Items {
			switch {
			case fabrictest.PodReady(&p):
				running++
			case p.Status.Phase == corev1.PodFailed:
				rejected++
				if p.Status.Reason != efv1.ReasonOutOfPods {
					t.Errorf("pod %s failed with %s: %s, want %s", p.Name, p.Status.Reason, p.Status.Message, efv1.ReasonOutOfPods)
				}
			case p.Spec.NodeName == "":
				unbound++
			default:
				stuck = append(stuck, fmt.Sprintf("%s on %s: %s %s", p.Name, p.Spec.NodeName, p.Status.Phase, podMessage(&p)))
			}
		}
		if (running == perDevice*devices && len(stuck) == 0) || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("%d running, %d rejected, %d unscheduled", running, rejected, unbound)
	if running != perDevice*devices || len(stuck) > 0 || running+rejected+unbound != total {
		t.Fatalf("%d running (want %d, the devices' room), %d rejected, %d unscheduled, bound and not running: %v", running, perDevice*devices, rejected, unbound, stuck)
	}
	for _, n := range []string{nodeName, netNode} {
		got := waitNode(f, n, func(*corev1.Node) bool { return true })
		bound := 0
		l, _ := f.Client.CoreV1().Pods(namespace).List(t.Context(), metav1.ListOptions{FieldSelector: "spec.nodeName=" + n})
		for _, p := range l.Items {
			if p.Status.Phase != corev1.PodFailed {
				bound++
			}
		}
		if free := got.Status.Allocatable.Pods().Value() - int64(bound); free != 0 {
			t.Errorf("node %s offers %d more pods (allocatable %d, %d bound), want none: the devices are full", n, free, got.Status.Allocatable.Pods().Value(), bound)
		}
	}
}
