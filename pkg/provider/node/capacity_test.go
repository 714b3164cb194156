package node_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	efv1 "github.com/edgefabric/edgefabric/pkg/apis/edgefabric/v1alpha1"
	hubv1 "github.com/edgefabric/edgefabric/pkg/apis/hub/v1"
	"github.com/edgefabric/edgefabric/pkg/identity"
	"github.com/edgefabric/edgefabric/pkg/provider/fabric"
	"github.com/edgefabric/edgefabric/pkg/provider/node"
	"github.com/edgefabric/edgefabric/test/kubetest"
)

// lanHello is the hello of a device of account acme on a LAN that claims
// network ID lan, with room for pods pods and the given LAN peers.
func lanHello(id, lan string, pods int64, peers ...string) *hubv1.Hello {
	sc := &hubv1.Scopes{Seq: uint64(time.Now().UnixNano()), NetworkId: lan}
	for _, p := range peers {
		sc.Peers = append(sc.Peers, &hubv1.LANPeer{DeviceId: p})
	}
	return &hubv1.Hello{
		DeviceId: id, Os: "linux", Arch: "arm64", Runtimes: []string{"wasm"},
		Capacity: &hubv1.Resources{CpuMillis: 4000, MemoryBytes: 4 << 30, Pods: pods}, Scopes: sc,
	}
}

// runManager runs a node manager over fab until the test ends or the
// returned function is called.
func runManager(t *testing.T, env *kubetest.Env, fab *fabric.Fabric, cfg node.Config) (stop func()) {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	if os.Getenv("EDGEFABRIC_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	cfg.NodeIP, cfg.KubeletPort = "127.0.0.1", 10250
	if cfg.RetryInterval == 0 {
		cfg.RetryInterval = 200 * time.Millisecond
	}
	cfg.ClusterDebounce = 20 * time.Millisecond
	m, err := node.NewManager(cfg, env.Client, fab, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := m.Run(ctx); err != nil {
			t.Errorf("manager: %v", err)
		}
	})
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(stop)
	return stop
}

func allocatablePods(n *corev1.Node) int64 { return n.Status.Allocatable.Pods().Value() }

// TestNodesShareTheirDevices runs two devices of one LAN, each with room for
// five pods, behind two nodes (the account's and the LAN's). Each node
// offers the scheduler what the other's pods leave free, and a pod bound to
// a node whose devices are full is rejected as a kubelet rejects a pod it
// cannot admit, instead of waiting on the node for ever.
func TestNodesShareTheirDevices(t *testing.T) {
	env := kubetest.Start(t, kubetest.Options{})
	fab := fabric.New(slog.New(slog.DiscardHandler))
	runManager(t, env, fab, node.Config{})
	dev := func(id string) identity.Device { return identity.Device{ID: id, Account: "acme"} }
	fab.Connect(dev("d1"), lanHello("d1", "lan1", 5, "d2"))
	fab.Connect(dev("d2"), lanHello("d2", "lan1", 5, "d1"))
	const lan = "edge-acme-net-lan1"
	waitNode(t, env, lan, func(n *corev1.Node) bool { return ready(n) && allocatablePods(n) == 10 })
	waitNode(t, env, "edge-acme", func(n *corev1.Node) bool { return ready(n) && allocatablePods(n) == 10 })

	onNode := func(name string) func(*corev1.Pod) {
		return func(p *corev1.Pod) { p.Spec.NodeName = name }
	}
	// Four pods on the account's node: the LAN's node offers six.
	for i := range 4 {
		createPod(t, env, fmt.Sprintf("acct-%d", i), onNode("edge-acme"))
	}
	for i := range 4 {
		waitPod(t, env, fmt.Sprintf("acct-%d", i), func(p *corev1.Pod) bool { return p.Annotations[efv1.AnnotationDevice] != "" })
	}
	n := waitNode(t, env, lan, func(n *corev1.Node) bool { return allocatablePods(n) == 6 })
	if got := n.Status.Capacity.Pods().Value(); got != 10 {
		t.Errorf("LAN node's pod capacity: got %d, want both devices' 10", got)
	}
	// Its own pods do not lower a node's allocatable: the scheduler counts them.
	waitNode(t, env, "edge-acme", func(n *corev1.Node) bool { return allocatablePods(n) == 10 })

	// Eight pods bound to the LAN's node, as a scheduler with a stale view
	// would: six fit, two are rejected.
	for i := range 8 {
		createPod(t, env, fmt.Sprintf("lan-%d", i), onNode(lan))
	}
	placed, rejected := 0, 0
	for i := range 8 {
		p := waitPod(t, env, fmt.Sprintf("lan-%d", i), func(p *corev1.Pod) bool {
			return p.Annotations[efv1.AnnotationDevice] != "" || p.Status.Phase == corev1.PodFailed
		})
		switch p.Status.Phase {
		case corev1.PodFailed:
			rejected++
			if p.Status.Reason != efv1.ReasonOutOfPods || !strings.HasPrefix(p.Status.Message, "Pod was rejected: Too many pods") {
				t.Errorf("pod %s rejected with %q: %q, want %s", p.Name, p.Status.Reason, p.Status.Message, efv1.ReasonOutOfPods)
			}
			waitEvent(t, env, p.Name, efv1.ReasonOutOfPods)
		default:
			placed++
		}
	}
	if placed != 6 || rejected != 2 {
		t.Errorf("pods bound to the LAN's node: %d placed and %d rejected, want 6 and 2", placed, rejected)
	}
	for _, d := range []string{"d1", "d2"} {
		got, _ := fab.Device("acme", d)
		if got.Allocated.Pods > got.Capacity.Pods {
			t.Errorf("device %s holds %d pods, room for %d", d, got.Allocated.Pods, got.Capacity.Pods)
		}
	}
	waitNode(t, env, lan, func(n *corev1.Node) bool { return allocatablePods(n) == 6 })
	waitNode(t, env, "edge-acme", func(n *corev1.Node) bool { return allocatablePods(n) == 4 })

	// A pod waiting for a device that is coming back is not rejected: d2
	// goes offline (its room stays its pods'), a pod that needs d2 waits.
	if err := env.Client.CoreV1().Pods("default").Delete(t.Context(), "acct-0", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	waitGone(t, env, "acct-0")
	_ = waitNode(t, env, lan, func(n *corev1.Node) bool { return allocatablePods(n) == 7 })
}

// TestClusterIDsSurviveProviderRestart runs two LANs whose devices claim the
// same network ID (two homes on 192.168.1.0/24 with the gateway at .1): they
// are two clusters, one named by the claim and the other by a hash. A
// restarted provider, to which the devices come back in another order and
// one at a time, names them as before.
func TestClusterIDsSurviveProviderRestart(t *testing.T) {
	env := kubetest.Start(t, kubetest.Options{})
	dev := func(id string) identity.Device { return identity.Device{ID: id, Account: "acme"} }
	networkNodes := func(want int) []string {
		t.Helper()
		var names []string
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
		defer cancel()
		for ctx.Err() == nil {
			l, err := env.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: efv1.LabelScope + "=network"})
			if err == nil {
				names = names[:0]
				for _, n := range l.Items {
					if ready(&n) {
						names = append(names, n.Name)
					}
				}
				if len(names) == want && len(l.Items) == want {
					slices.Sort(names)
					return names
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("network nodes: %v, want %d Ready", names, want)
		return nil
	}

	fab := fabric.New(slog.New(slog.DiscardHandler))
	stop := runManager(t, env, fab, node.Config{})
	fab.Connect(dev("a1"), lanHello("a1", "home", 10, "a2"))
	fab.Connect(dev("a2"), lanHello("a2", "home", 10, "a1"))
	fab.Connect(dev("b1"), lanHello("b1", "home", 10))
	before := networkNodes(2)
	if !slices.Contains(before, "edge-acme-net-home") {
		t.Fatalf("network nodes %v: want edge-acme-net-home for the LAN of two", before)
	}
	waitNode(t, env, "edge-acme-net-home", func(n *corev1.Node) bool { return n.Annotations[efv1.AnnotationClusterMembers] == "a1,a2" })
	stop()

	// The smaller LAN comes back first, and grows larger than the other.
	fab = fabric.New(slog.New(slog.DiscardHandler))
	runManager(t, env, fab, node.Config{})
	fab.Connect(dev("b1"), lanHello("b1", "home", 10, "b2", "b3"))
	fab.Connect(dev("b2"), lanHello("b2", "home", 10, "b1"))
	fab.Connect(dev("b3"), lanHello("b3", "home", 10, "b1"))
	fab.Connect(dev("a1"), lanHello("a1", "home", 10, "a2"))
	fab.Connect(dev("a2"), lanHello("a2", "home", 10, "a1"))
	after := networkNodes(2)
	if !slices.Equal(before, after) {
		t.Errorf("network nodes after the provider restarted: %v, want %v", after, before)
	}
	waitNode(t, env, "edge-acme-net-home", func(n *corev1.Node) bool { return n.Annotations[efv1.AnnotationClusterMembers] == "a1,a2" })
	// The devices' own reports settle it: wait for the second LAN's node to
	// say it has three devices, then check the names once more.
	for _, name := range after {
		if name != "edge-acme-net-home" {
			waitNode(t, env, name, func(n *corev1.Node) bool { return readyMessage(n) == "3/3 devices ready: b1, b2, b3" })
		}
	}
	if again := networkNodes(2); !slices.Equal(before, again) {
		t.Errorf("network nodes once every device reported: %v, want %v", again, before)
	}
}

// TestClusterChanges moves pods whose device left their node's cluster to
// a member after their device-loss grace, and evicts the pods of a cluster
// that dissolved, so none stays bound to a node that will be deleted.
func TestClusterChanges(t *testing.T) {
	env := kubetest.Start(t, kubetest.Options{})
	fab := fabric.New(slog.New(slog.DiscardHandler))
	runManager(t, env, fab, node.Config{DeviceLossGrace: time.Second, DissolveGrace: time.Hour})
	dev := func(id string) identity.Device { return identity.Device{ID: id, Account: "acme"} }
	fab.Connect(dev("d1"), lanHello("d1", "lan1", 10, "d2"))
	fab.Connect(dev("d2"), lanHello("d2", "lan1", 10, "d1"))
	fab.Connect(dev("d3"), lanHello("d3", "lan2", 10))
	const lan1, lan2 = "edge-acme-net-lan1", "edge-acme-net-lan2"
	waitNode(t, env, lan1, func(n *corev1.Node) bool { return ready(n) && readyMessage(n) == "2/2 devices ready: d1, d2" })
	waitNode(t, env, lan2, ready)

	onDevice := func(nodeName, device string) func(*corev1.Pod) {
		return func(p *corev1.Pod) {
			p.Spec.NodeName = nodeName
			p.Annotations = map[string]string{efv1.AnnotationDeviceSelector: "kubernetes.io/hostname=" + device}
		}
	}
	for _, d := range []string{"d1", "d2", "d3"} {
		fab.Connect(dev(d), func() *hubv1.Hello {
			peers := map[string][]string{"d1": {"d2"}, "d2": {"d1"}}[d]
			lan := map[string]string{"d1": "lan1", "d2": "lan1", "d3": "lan2"}[d]
			h := lanHello(d, lan, 10, peers...)
			h.Labels = map[string]string{"kubernetes.io/hostname": d}
			return h
		}())
	}
	createPod(t, env, "on-d2", onDevice(lan1, "d2"))
	createPod(t, env, "on-d3", onDevice(lan2, "d3"))
	waitPod(t, env, "on-d2", func(p *corev1.Pod) bool { return p.Annotations[efv1.AnnotationDevice] == "d2" })
	waitPod(t, env, "on-d3", func(p *corev1.Pod) bool { return p.Annotations[efv1.AnnotationDevice] == "d3" })

	// d2 moves to LAN 2 and d3 now sees it: LAN 1 is d1 alone, LAN 2 is d2
	// and d3. on-d2's device left lan1: after its grace the pod is taken
	// off d2 (its selector then fits no member: it waits).
	fab.ReportScopes(dev("d1"), lanHello("d1", "lan1", 10).GetScopes())
	fab.ReportScopes(dev("d2"), lanHello("d2", "lan2", 10, "d3").GetScopes())
	waitNode(t, env, lan1, func(n *corev1.Node) bool { return readyMessage(n) == "1/1 devices ready: d1" })
	waitNode(t, env, lan2, func(n *corev1.Node) bool { return readyMessage(n) == "2/2 devices ready: d2, d3" })
	waitEvent(t, env, "on-d2", efv1.ReasonDeviceLeftCluster)
	waitPod(t, env, "on-d2", func(p *corev1.Pod) bool { return waitingReason(p) == efv1.ReasonUnschedulable })
	if got, _ := fab.Device("acme", "d2"); got.Workloads != 0 {
		t.Errorf("d2 still holds %d workloads after leaving lan1", got.Workloads)
	}

	// LAN 2's devices join LAN 1's: lan2 dissolves, and after the pods'
	// grace on-d3 is evicted from it.
	fab.ReportScopes(dev("d1"), lanHello("d1", "lan1", 10, "d2", "d3").GetScopes())
	fab.ReportScopes(dev("d2"), lanHello("d2", "lan1", 10, "d1").GetScopes())
	fab.ReportScopes(dev("d3"), lanHello("d3", "lan1", 10, "d1").GetScopes())
	waitNode(t, env, lan2, func(n *corev1.Node) bool { return !ready(n) })
	waitEvent(t, env, "on-d3", efv1.ReasonClusterDissolved)
	waitPod(t, env, "on-d3", func(p *corev1.Pod) bool { return p.DeletionTimestamp != nil })
	// on-d2 fits on d2 again, a member of lan1 once more.
	waitPod(t, env, "on-d2", func(p *corev1.Pod) bool {
		return p.Annotations[efv1.AnnotationDevice] == "d2" && waitingReason(p) != efv1.ReasonUnschedulable
	})
}
