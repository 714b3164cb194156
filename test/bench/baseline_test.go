package bench

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/edgefabric/edgefabric/pkg/provider/node"
	"github.com/edgefabric/edgefabric/test/fabrictest"

	"github.com/virtual-kubelet/virtual-kubelet/errdefs"
	vknode "github.com/virtual-kubelet/virtual-kubelet/node"
	"github.com/virtual-kubelet/virtual-kubelet/node/nodeutil"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/record"

	"github.com/edgefabric/edgefabric/pkg/apis/hub/v1/reasons"
)

// The baseline is configured as the provider is by default, so that the two
// differ only in what happens between CreatePod and the pod's Ready status:
// keep these in step with cmd/provider (--kube-api-qps, --kube-api-burst,
// --workers) and pkg/provider/node (newPodController).
const (
	baselineNode    = "vk-baseline"
	baselineQPS     = 200
	baselineBurst   = 400
	baselineWorkers = 8
)

// baselineProvider is the least a virtual-kubelet provider can do: CreatePod
// marks the pod Running and Ready at once and tells the pod controller from
// another goroutine (an async PodNotifier).
type baselineProvider struct {
	mu     sync.Mutex
	pods   map[string]*corev1.Pod // namespace/name
	notify func(*corev1.Pod)

	created sync.Map // namespace/name → time CreatePod was called
}

var (
	_ vknode.PodLifecycleHandler = (*baselineProvider)(nil)
	_ vknode.PodNotifier         = (*baselineProvider)(nil)
	_ vknode.NodeProvider        = (*baselineProvider)(nil)
)

func (p *baselineProvider) CreatePod(_ context.Context, pod *corev1.Pod) error {
	p.created.LoadOrStore(pod.Namespace+"/"+pod.Name, time.Now())
	pod = pod.DeepCopy()
	now := metav1.Now()
	pod.Status.Phase = corev1.PodRunning
	pod.Status.HostIP, pod.Status.PodIP = "127.0.0.1", "127.0.0.1"
	pod.Status.StartTime = &now
	for _, t := range []corev1.PodConditionType{corev1.PodScheduled, corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady} {
		pod.Status.Conditions = append(pod.Status.Conditions, corev1.PodCondition{Type: t, Status: corev1.ConditionTrue, LastTransitionTime: now})
	}
	pod.Status.ContainerStatuses = nil
	for _, c := range pod.Spec.Containers {
		pod.Status.ContainerStatuses = append(pod.Status.ContainerStatuses, corev1.ContainerStatus{
			Name: c.Name, Image: c.Image, Ready: true, Started: new(true),
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
		})
	}
	p.mu.Lock()
	p.pods[pod.Namespace+"/"+pod.Name] = pod
	cb := p.notify
	p.mu.Unlock()
	if cb != nil {
		go cb(pod.DeepCopy())
	}
	return nil
}

func (p *baselineProvider) UpdatePod(_ context.Context, pod *corev1.Pod) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if old, ok := p.pods[pod.Namespace+"/"+pod.Name]; ok {
		status := old.Status
		old = pod.DeepCopy()
		old.Status = status
		p.pods[pod.Namespace+"/"+pod.Name] = old
	}
	return nil
}

func (p *baselineProvider) DeletePod(_ context.Context, pod *corev1.Pod) error {
	key := pod.Namespace + "/" + pod.Name
	p.mu.Lock()
	old, ok := p.pods[key]
	delete(p.pods, key)
	cb := p.notify
	p.mu.Unlock()
	p.created.Delete(key)
	if !ok {
		return errdefs.NotFoundf("pod %s not found", key)
	}
	now := metav1.Now()
	old = old.DeepCopy()
	old.Status.Phase = corev1.PodSucceeded
	for i := range old.Status.ContainerStatuses {
		cs := &old.Status.ContainerStatuses[i]
		cs.Ready = false
		cs.State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: reasons.Completed, StartedAt: now, FinishedAt: now}}
	}
	if cb != nil {
		go cb(old)
	}
	return nil
}

func (p *baselineProvider) GetPod(_ context.Context, namespace, name string) (*corev1.Pod, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pod, ok := p.pods[namespace+"/"+name]
	if !ok {
		return nil, errdefs.NotFoundf("pod %s/%s not found", namespace, name)
	}
	return pod.DeepCopy(), nil
}

func (p *baselineProvider) GetPodStatus(ctx context.Context, namespace, name string) (*corev1.PodStatus, error) {
	pod, err := p.GetPod(ctx, namespace, name)
	if err != nil {
		return nil, err
	}
	return &pod.Status, nil
}

func (p *baselineProvider) GetPods(context.Context) ([]*corev1.Pod, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]*corev1.Pod, 0, len(p.pods))
	for _, pod := range p.pods {
		out = append(out, pod.DeepCopy())
	}
	return out, nil
}

func (p *baselineProvider) NotifyPods(_ context.Context, cb func(*corev1.Pod)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.notify = cb
}

func (p *baselineProvider) Ping(ctx context.Context) error { return ctx.Err() }

func (p *baselineProvider) NotifyNodeStatus(context.Context, func(*corev1.Node)) {}

// createdAt is when CreatePod was called for the pod.
func (p *baselineProvider) createdAt(namespace, name string) (time.Time, bool) {
	v, ok := p.created.Load(namespace + "/" + name)
	if !ok {
		return time.Time{}, false
	}
	return v.(time.Time), true
}

// startBaseline runs the baseline virtual node in this process against the
// API server of cfg until the benchmark ends, and waits until it is Ready.
func startBaseline(tb testing.TB, cfg *rest.Config) *baselineProvider {
	tb.Helper()
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = baselineQPS, baselineBurst
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &baselineProvider{pods: map[string]*corev1.Pod{}}

	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	recorder := broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "baseline", Host: baselineNode})
	scm := informers.NewSharedInformerFactory(client, 10*time.Minute)
	pods := informers.NewSharedInformerFactoryWithOptions(client, 10*time.Minute, nodeutil.PodInformerFilter(baselineNode))
	pc, err := vknode.NewPodController(vknode.PodControllerConfig{
		PodClient:                 client.CoreV1(),
		PodInformer:               pods.Core().V1().Pods(),
		EventRecorder:             recorder,
		Provider:                  p,
		SecretInformer:            scm.Core().V1().Secrets(),
		ConfigMapInformer:         scm.Core().V1().ConfigMaps(),
		ServiceInformer:           scm.Core().V1().Services(),
		SkipDownwardAPIResolution: true,
		// The provider's limiter on all three queues.
		SyncPodsFromKubernetesRateLimiter:    node.PodQueueRateLimiter(),
		SyncPodStatusFromProviderRateLimiter: node.PodQueueRateLimiter(),
		DeletePodsFromKubernetesRateLimiter:  node.PodQueueRateLimiter(),
	})
	if err != nil {
		tb.Fatal(err)
	}
	nc, err := vknode.NewNodeController(p, baselineNodeObject(), client.CoreV1().Nodes(),
		vknode.WithNodeEnableLeaseV1(nodeutil.NodeLeaseV1Client(client), vknode.DefaultLeaseDuration),
	)
	if err != nil {
		tb.Fatal(err)
	}
	scm.Start(ctx.Done())
	pods.Start(ctx.Done())
	errc := make(chan error, 2)
	go func() { errc <- nc.Run(ctx) }()
	go func() { errc <- pc.Run(ctx, baselineWorkers) }()
	tb.Cleanup(func() {
		cancel()
		for range 2 {
			if err := <-errc; err != nil {
				tb.Logf("baseline node: %v", err)
			}
		}
		scm.Shutdown()
		pods.Shutdown()
		broadcaster.Shutdown()
	})
	select {
	case <-pc.Ready():
	case err := <-errc:
		tb.Fatalf("baseline node stopped: %v", err)
	case <-time.After(time.Minute):
		tb.Fatal("baseline pod controller not ready within a minute")
	}
	waitNodeNamed(tb, client, baselineNode, fabrictest.NodeReady)
	return p
}

func baselineNodeObject() *corev1.Node {
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("100"),
		corev1.ResourceMemory: resource.MustParse("100Gi"),
		corev1.ResourcePods:   resource.MustParse("1000"),
	}
	now := metav1.Now()
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: baselineNode, Labels: map[string]string{"type": "virtual-kubelet", "kubernetes.io/role": "agent"}},
		Spec: corev1.NodeSpec{
			Taints: []corev1.Taint{{Key: "virtual-kubelet.io/provider", Value: "baseline", Effect: corev1.TaintEffectNoSchedule}},
		},
		Status: corev1.NodeStatus{
			Phase:       corev1.NodeRunning,
			Capacity:    capacity,
			Allocatable: capacity.DeepCopy(),
			Conditions: []corev1.NodeCondition{
				{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", LastHeartbeatTime: now, LastTransitionTime: now},
			},
			Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}},
		},
	}
}
