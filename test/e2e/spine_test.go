package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/edgefabric/edgefabric/test/fabrictest"

	corev1 "k8s.io/api/core/v1"

	efv1 "github.com/edgefabric/edgefabric/pkg/apis/edgefabric/v1alpha1"
	"github.com/edgefabric/edgefabric/test/ocitest"
)

func TestSpine(t *testing.T) {
	f := startFabric(t, 3)
	node := f.WaitNode(func(n *corev1.Node) bool { return fabrictest.ReadyDevices(n) == 3 })
	if got := node.Status.Capacity.Cpu().MilliValue(); got != 6000 {
		t.Errorf("node cpu capacity: got %dm, want 6000m (3 devices x 2000m)", got)
	}
	ref, imageID := f.PushExample("hello", "v1", ocitest.Image)
	f.Create(f.Pod("hello", ref, func(p *corev1.Pod) {
		p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "INTERVAL", Value: "200ms"}}
	}))
	p := f.WaitPod("hello", 60*time.Second, fabrictest.PodReady)
	dev := p.Annotations[efv1.AnnotationDevice]
	if f.Agent(dev) == nil {
		t.Fatalf("pod annotated with device %q, not one of the agents", dev)
	}
	cs := p.Status.ContainerStatuses[0]
	if !strings.HasSuffix(cs.ImageID, imageID) {
		t.Errorf("imageID: got %q, want %q", cs.ImageID, imageID)
	}
	if p.Status.PodIP != "127.0.0.1" || p.Status.HostIP != "127.0.0.1" {
		t.Errorf("pod/host IP: got %q/%q", p.Status.PodIP, p.Status.HostIP)
	}
	deadline := time.Now().Add(20 * time.Second)
	var out string
	for {
		var err error
		out, err = f.Kubectl("logs", "hello", "--tail=3")
		if err == nil && len(fabrictest.Lines(out)) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("kubectl logs --tail=3: got %q, %v", out, err)
		}
		time.Sleep(300 * time.Millisecond)
	}
	t.Logf("logs:\n%s", out)

	start := time.Now()
	if _, err := f.Kubectl("delete", "pod", "hello", "--wait=true", "--timeout=30s"); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("delete took %s", d)
	}
}
