package node_test

import (
	"log/slog"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	efv1 "github.com/edgefabric/edgefabric/pkg/apis/edgefabric/v1alpha1"
	hubv1 "github.com/edgefabric/edgefabric/pkg/apis/hub/v1"
	"github.com/edgefabric/edgefabric/pkg/identity"
	"github.com/edgefabric/edgefabric/pkg/provider/fabric"
	"github.com/edgefabric/edgefabric/pkg/provider/node"
	"github.com/edgefabric/edgefabric/test/kubetest"
)

// TestClusterNodesOnRealAPIServer checks the nodes of network clusters: one
// per LAN from what devices report, labels and capacity of the members only,
// NotReady when the members are offline, and a dissolved cluster's node
// NotReady, then deleted after the grace once no pod is left on it.
func TestClusterNodesOnRealAPIServer(t *testing.T) {
	env := kubetest.Start(t, kubetest.Options{})
	fab := fabric.New(slog.New(slog.DiscardHandler))
	runManager(t, env, fab, node.Config{DissolveGrace: time.Second})

	seq := uint64(0)
	hello := func(id, lan, arch string, peers ...string) *hubv1.Hello {
		seq++
		sc := &hubv1.Scopes{Seq: seq, NetworkId: lan}
		for _, p := range peers {
			sc.Peers = append(sc.Peers, &hubv1.LANPeer{DeviceId: p})
		}
		return &hubv1.Hello{
			DeviceId: id, Os: "linux", Arch: arch, Runtimes: []string{"wasm"},
			Capacity: &hubv1.Resources{CpuMillis: 1000, MemoryBytes: 1 << 30, Pods: 10}, Scopes: sc,
		}
	}
	dev := func(id string) identity.Device { return identity.Device{ID: id, Account: "acme"} }
	fab.Connect(dev("d1"), hello("d1", "lan1aaaaaa", "arm64", "d2"))
	fab.Connect(dev("d2"), hello("d2", "lan1aaaaaa", "arm64", "d1"))
	s3 := fab.Connect(dev("d3"), hello("d3", "lan2bbbbbb", "amd64"))

	lan1 := waitNode(t, env, "edge-acme-net-lan1aaaaaa", func(n *corev1.Node) bool { return ready(n) && readyMessage(n) == "2/2 devices ready: d1, d2" })
	for k, v := range map[string]string{
		efv1.LabelScope: "network", efv1.LabelCluster: "lan1aaaaaa", efv1.LabelAccount: "acme",
		"type": "virtual-kubelet", "kubernetes.io/arch": "arm64", "kubernetes.io/os": "linux",
	} {
		if lan1.Labels[k] != v {
			t.Errorf("label %s: got %q, want %q", k, lan1.Labels[k], v)
		}
	}
	if got := lan1.Status.Allocatable.Cpu().MilliValue(); got != 2000 {
		t.Errorf("allocatable cpu: got %d, want the sum over d1 and d2, 2000", got)
	}
	waitNode(t, env, "edge-acme-net-lan2bbbbbb", func(n *corev1.Node) bool { return ready(n) && readyMessage(n) == "1/1 devices ready: d3" })
	// The node's labels and its status are written separately: wait for
	// both. Its devices disagree on arch, so it must lose the label.
	waitNode(t, env, "edge-acme", func(n *corev1.Node) bool {
		_, arch := n.Labels["kubernetes.io/arch"]
		return ready(n) && readyMessage(n) == "3/3 devices ready: d1, d2, d3" && !arch
	})

	// LAN 2's only device goes away: its node goes NotReady at once; once
	// the device has been gone longer than the grace (1s), the cluster
	// dissolves and, with no pods on it, its node is deleted.
	fab.Disconnect(s3)
	gone := time.Now()
	waitNode(t, env, "edge-acme-net-lan2bbbbbb", func(n *corev1.Node) bool { return !ready(n) })
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := env.Client.CoreV1().Nodes().Get(t.Context(), "edge-acme-net-lan2bbbbbb", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the dissolved cluster's node is still there 30s later: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if since := time.Since(gone); since < 2*time.Second {
		t.Errorf("the node went %v after its only device, before the device's grace and the node's (1s each)", since)
	}

	// d3 comes back on LAN 1: LAN 1's node keeps its name and grows.
	fab.Connect(dev("d3"), hello("d3", "lan1aaaaaa", "amd64", "d1"))
	fab.ReportScopes(dev("d1"), hello("d1", "lan1aaaaaa", "arm64", "d2", "d3").GetScopes())
	n := waitNode(t, env, "edge-acme-net-lan1aaaaaa", func(n *corev1.Node) bool { return ready(n) && readyMessage(n) == "3/3 devices ready: d1, d2, d3" })
	if _, ok := n.Labels["kubernetes.io/arch"]; ok {
		t.Errorf("LAN 1's node keeps an arch label though its devices now disagree: %v", n.Labels)
	}
}

func readyMessage(n *corev1.Node) string {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Message
		}
	}
	return ""
}
