package node

import (
	"context"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/virtual-kubelet/virtual-kubelet/errdefs"
	vknode "github.com/virtual-kubelet/virtual-kubelet/node"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	efv1 "github.com/edgefabric/edgefabric/pkg/apis/edgefabric/v1alpha1"
	"github.com/edgefabric/edgefabric/test/poll"
)

func TestOwnAnnotationsHidden(t *testing.T) {
	pod := func(annotations map[string]string, phase corev1.PodPhase) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", Annotations: annotations, ResourceVersion: string(phase)},
			Status:     corev1.PodStatus{Phase: phase},
		}
	}
	placed := map[string]string{"user": "x", efv1.AnnotationDevice: "dev-1", efv1.AnnotationFencingEpoch: "1"}
	tests := []struct {
		name     string
		old, new map[string]string
		hidden   bool // the handler gets an old pod with new's annotations
	}{
		{name: "device recorded", old: map[string]string{"user": "x"}, new: placed, hidden: true},
		{name: "device recorded on a pod without annotations", old: nil, new: map[string]string{efv1.AnnotationDevice: "dev-1"}, hidden: true},
		{name: "device moved", old: placed, new: map[string]string{"user": "x", efv1.AnnotationDevice: "dev-2", efv1.AnnotationFencingEpoch: "2"}, hidden: true},
		{name: "own annotation removed", old: placed, new: map[string]string{"user": "x"}, hidden: true},
		{name: "no annotation changed", old: placed, new: placed},
		{name: "user annotation changed", old: placed, new: map[string]string{"user": "y", efv1.AnnotationDevice: "dev-1", efv1.AnnotationFencingEpoch: "1"}},
		{name: "user annotation added with the device", old: nil, new: map[string]string{"user": "x", efv1.AnnotationDevice: "dev-1"}},
		{name: "user annotation removed with the device", old: map[string]string{"user": "x"}, new: map[string]string{efv1.AnnotationDevice: "dev-1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var gotOld, gotNew *corev1.Pod
			h := ownAnnotationsHidden{cache.ResourceEventHandlerFuncs{UpdateFunc: func(o, n any) {
				gotOld, gotNew = o.(*corev1.Pod), n.(*corev1.Pod)
			}}}
			oldPod, newPod := pod(tt.old, corev1.PodPending), pod(tt.new, corev1.PodRunning)
			h.OnUpdate(oldPod, newPod)
			if gotNew != newPod {
				t.Fatalf("the handler got another new pod: %v", gotNew)
			}
			if gotOld.Status.Phase != corev1.PodPending || gotOld.ResourceVersion != string(corev1.PodPending) {
				t.Errorf("old pod's status or version changed: %v %q", gotOld.Status.Phase, gotOld.ResourceVersion)
			}
			if len(oldPod.Annotations) != len(tt.old) {
				t.Errorf("the informer's old pod was modified: %v", oldPod.Annotations)
			}
			hidden := gotOld != oldPod
			if hidden != tt.hidden {
				t.Fatalf("old pod replaced: %v, want %v", hidden, tt.hidden)
			}
			if hidden && !maps.Equal(gotOld.Annotations, tt.new) {
				t.Errorf("old pod's annotations %v, want %v", gotOld.Annotations, tt.new)
			}
		})
	}
}

// countingProvider is a virtual-kubelet provider that keeps pods in memory
// and counts how often the pod controller asks it for one.
type countingProvider struct {
	mu     sync.Mutex
	pods   map[string]*corev1.Pod
	gets   int
	notify func(*corev1.Pod)
}

func (p *countingProvider) CreatePod(_ context.Context, pod *corev1.Pod) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pods[pod.Namespace+"/"+pod.Name] = pod.DeepCopy()
	return nil
}

func (p *countingProvider) UpdatePod(ctx context.Context, pod *corev1.Pod) error {
	return p.CreatePod(ctx, pod)
}

func (p *countingProvider) DeletePod(_ context.Context, pod *corev1.Pod) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.pods, pod.Namespace+"/"+pod.Name)
	return nil
}

func (p *countingProvider) GetPod(_ context.Context, namespace, name string) (*corev1.Pod, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.gets++
	pod, ok := p.pods[namespace+"/"+name]
	if !ok {
		return nil, errdefs.NotFoundf("pod %s/%s", namespace, name)
	}
	return pod.DeepCopy(), nil
}

func (p *countingProvider) GetPodStatus(ctx context.Context, namespace, name string) (*corev1.PodStatus, error) {
	pod, err := p.GetPod(ctx, namespace, name)
	if err != nil {
		return nil, err
	}
	return &pod.Status, nil
}

func (p *countingProvider) GetPods(context.Context) ([]*corev1.Pod, error) { return nil, nil }

func (p *countingProvider) NotifyPods(_ context.Context, cb func(*corev1.Pod)) { p.notify = cb }

func (p *countingProvider) getCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.gets
}

// TestPodControllerSkipsOwnAnnotations runs virtual-kubelet's pod controller
// as the manager does, with podInformer: a change of only the provider's own
// annotations does not make it resync the pod into the provider (ask it for
// the pod), and a change of another annotation still does. This would fail
// if a virtual-kubelet version registered its handler past the wrapper.
func TestPodControllerSkipsOwnAnnotations(t *testing.T) {
	client := fake.NewClientset()
	factory := informers.NewSharedInformerFactory(client, 0)
	provider := &countingProvider{pods: map[string]*corev1.Pod{}}
	pc, err := vknode.NewPodController(vknode.PodControllerConfig{
		PodClient:                            client.CoreV1(),
		PodInformer:                          podInformer{factory.Core().V1().Pods()},
		EventRecorder:                        record.NewFakeRecorder(100),
		Provider:                             provider,
		SecretInformer:                       factory.Core().V1().Secrets(),
		ConfigMapInformer:                    factory.Core().V1().ConfigMaps(),
		ServiceInformer:                      factory.Core().V1().Services(),
		SkipDownwardAPIResolution:            true,
		SyncPodsFromKubernetesRateLimiter:    PodQueueRateLimiter(),
		SyncPodStatusFromProviderRateLimiter: PodQueueRateLimiter(),
		DeletePodsFromKubernetesRateLimiter:  PodQueueRateLimiter(),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	factory.Start(ctx.Done())
	done := make(chan struct{})
	go func() { defer close(done); _ = pc.Run(ctx, 1) }()
	defer func() { cancel(); <-done; factory.Shutdown() }()
	select {
	case <-pc.Ready():
	case <-time.After(30 * time.Second):
		t.Fatal("pod controller not ready")
	}

	pods := client.CoreV1().Pods("ns")
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", Annotations: map[string]string{"user": "x"}},
		Spec:       corev1.PodSpec{NodeName: "edge-a", Containers: []corev1.Container{{Name: "app", Image: "img"}}},
	}
	if _, err := pods.Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 10*time.Second, func() bool { _, err := provider.GetPod(ctx, "ns", "p"); return err == nil })
	annotate := func(annotations map[string]string) {
		t.Helper()
		cur, err := pods.Get(ctx, "p", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cur.Annotations = annotations
		if _, err := pods.Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	before := provider.getCount()
	annotate(map[string]string{"user": "x", efv1.AnnotationDevice: "dev-1", efv1.AnnotationFencingEpoch: "1"})
	time.Sleep(500 * time.Millisecond)
	if got := provider.getCount(); got != before {
		t.Errorf("the pod controller asked the provider for the pod %d more times after only the device annotation changed, want none", got-before)
	}
	before = provider.getCount()
	annotate(map[string]string{"user": "y", efv1.AnnotationDevice: "dev-1", efv1.AnnotationFencingEpoch: "1"})
	poll.Until(t, 10*time.Second, func() bool { return provider.getCount() > before })
}
