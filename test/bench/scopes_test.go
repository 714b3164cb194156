package bench

import (
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	efv1 "github.com/edgefabric/edgefabric/pkg/apis/edgefabric/v1alpha1"
	"github.com/edgefabric/edgefabric/test/fabrictest"
	"github.com/edgefabric/edgefabric/test/kubetest"
)

// convergenceAgents is how many agents BenchmarkScopesConvergence starts.
const convergenceAgents = 30

// BenchmarkScopesConvergence starts 30 agents together on one LAN (each in its
// own network namespace, needs root) with the shipped defaults and measures,
// from the moment the processes start, the time until the first network node
// appears and until the LAN's network node is Ready with all 30 devices and
// their full capacity (target under 3 s).
func BenchmarkScopesConvergence(b *testing.B) {
	fabrictest.NeedLANs(b)
	var first, full, account time.Duration
	for range b.N {
		f := startFabric(b, 0)
		lan := f.StartLAN()
		agents := make([]*fabrictest.Agent, convergenceAgents)
		for i := range agents {
			agents[i] = lan.PrepareAgent(fmt.Sprintf("c%02d", i))
		}
		wantCPU := resource.NewMilliQuantity(2000*convergenceAgents, resource.DecimalSI)

		var mu sync.Mutex
		var firstAt, fullAt time.Time
		done := make(chan struct{})
		go func() {
			defer close(done)
			lw := cache.NewFilteredListWatchFromClient(f.Client.CoreV1().RESTClient(), "nodes", "", func(o *metav1.ListOptions) {
				o.LabelSelector = efv1.LabelScope + "=network"
			})
			kubetest.Until(b, 2*time.Minute, lw, &corev1.Node{}, func(n *corev1.Node) bool {
				now := time.Now()
				mu.Lock()
				defer mu.Unlock()
				if firstAt.IsZero() {
					firstAt = now
				}
				cpu := n.Status.Allocatable[corev1.ResourceCPU]
				if fabrictest.ReadyDevices(n) == convergenceAgents && cpu.Cmp(*wantCPU) == 0 {
					fullAt = now
					return true
				}
				return false
			})
		}()
		start := time.Now()
		for _, a := range agents {
			lan.RestartAgent(a)
		}
		f.WaitNode(func(n *corev1.Node) bool { return fabrictest.ReadyDevices(n) == convergenceAgents })
		accountAt := time.Now()
		<-done
		first, full, account = firstAt.Sub(start), fullAt.Sub(start), accountAt.Sub(start)

		nodes, err := f.Client.CoreV1().Nodes().List(b.Context(), metav1.ListOptions{LabelSelector: efv1.LabelScope + "=network"})
		if err != nil {
			b.Fatal(err)
		}
		var names []string
		for _, n := range nodes.Items {
			names = append(names, n.Name)
		}
		report(b, "%d agents started together on one LAN (shipped defaults):\n"+
			"  first network node      %v\n  network node full       %v (target < 3s)\n  account node full       %v\n  network nodes at the end: %s",
			convergenceAgents, first.Round(time.Millisecond), full.Round(time.Millisecond), account.Round(time.Millisecond), strings.Join(names, ", "))
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(first.Seconds(), "first-node-s")
	b.ReportMetric(full.Seconds(), "full-capacity-s")
}

// BenchmarkScopesFailover runs a pod with a 5 s device-loss grace on a LAN of
// three agents, kills the pod's device (SIGKILL) and measures the time until
// the pod is Running on another device (target under 10 s).
func BenchmarkScopesFailover(b *testing.B) {
	fabrictest.NeedLANs(b)
	var took time.Duration
	for range b.N {
		f := startFabric(b, 0)
		lan := f.StartLAN()
		for i := range 3 {
			lan.StartAgent(fmt.Sprintf("f%d", i))
		}
		var node string
		lw := cache.NewFilteredListWatchFromClient(f.Client.CoreV1().RESTClient(), "nodes", "", func(o *metav1.ListOptions) {
			o.LabelSelector = efv1.LabelScope + "=network"
		})
		node = kubetest.Until(b, 2*time.Minute, lw, &corev1.Node{}, func(n *corev1.Node) bool {
			return fabrictest.ReadyDevices(n) == 3
		}).Name
		ref := pushHello(f)
		f.Create(f.Pod("failover", ref, func(p *corev1.Pod) {
			p.Spec.NodeName = node
			p.Annotations = map[string]string{efv1.AnnotationDeviceLossGrace: "5s"}
		}))
		p := f.WaitPod("failover", 2*time.Minute, fabrictest.PodReady)
		lost := f.DeviceOf(p)
		lost.Stop(b, syscall.SIGKILL)
		start := time.Now()
		moved := f.WaitPod("failover", 2*time.Minute, func(q *corev1.Pod) bool {
			d := q.Annotations[efv1.AnnotationDevice]
			return d != "" && d != lost.ID && fabrictest.PodReady(q)
		})
		took = time.Since(start)
		report(b, "device %s killed, grace 5s: pod Running on %s after %v (target < 10s)",
			lost.ID, moved.Annotations[efv1.AnnotationDevice], took.Round(time.Millisecond))
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(took.Seconds(), "failover-s")
}
