package e2e

import (
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/edgefabric/edgefabric/test/fabrictest"
)

// The account of every e2e fabric, its node, and where the pods live.
const (
	account   = "e2e"
	nodeName  = "edge-" + account
	namespace = fabrictest.Namespace
)

func TestMain(m *testing.M) { fabrictest.Main(m) }

// startFabric starts a fabric of n agents of the e2e account.
func startFabric(t *testing.T, n int, opts ...fabrictest.FabricOption) *fabrictest.Fabric {
	t.Helper()
	return fabrictest.StartFabric(t, n, append([]fabrictest.FabricOption{fabrictest.WithAccount(account)}, opts...)...)
}

// app is the status of the pod's only container, "app", or a zero status.
func app(p *corev1.Pod) corev1.ContainerStatus {
	if cs := fabrictest.Container(p, "app"); cs != nil {
		return *cs
	}
	return corev1.ContainerStatus{}
}

// eventReasons is "reason: message" of each event, for failure messages.
func eventReasons(evs []corev1.Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Reason+": "+e.Message)
	}
	return out
}
