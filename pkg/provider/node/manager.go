// Package node publishes edge clusters as virtual-kubelet nodes. The Manager
// keeps one virtual node per account, serves each node's pods from the fabric
// (placing a pod on a device, sending it there, turning the device's reports
// into pod status and events), and answers the kubelet API for all of them.
// Run blocks until its context ends and every node has stopped.
package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	vknode "github.com/virtual-kubelet/virtual-kubelet/node"
	"github.com/virtual-kubelet/virtual-kubelet/node/api"
	"github.com/virtual-kubelet/virtual-kubelet/node/nodeutil"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/flowcontrol"
	"k8s.io/client-go/util/workqueue"

	hubv1 "github.com/edgefabric/edgefabric/pkg/apis/hub/v1"
	"github.com/edgefabric/edgefabric/pkg/provider/fabric"
)

// Well-known names on Kubernetes objects.
const (
	LabelAccount     = "edgefabric.io/account"
	LabelScope       = "edgefabric.io/scope"
	LabelCluster     = "edgefabric.io/cluster"
	AnnotationDevice = "edgefabric.io/device"
	TaintKey         = "virtual-kubelet.io/provider"
	TaintValue       = "edgefabric"
)

// Config configures the Manager.
type Config struct {
	// NodeIP is the address the API server reaches the kubelet API on; it is
	// published as each node's InternalIP. Required.
	NodeIP string
	// KubeletPort is the kubelet API's port published on each node; zero means 10250.
	KubeletPort int32
	// Workers is the number of pod sync workers per node; zero means 8.
	Workers int
	// Version is reported as the nodes' kubelet version.
	Version string
	// RetryInterval is how often pods that could not be placed or configured are
	// tried again, besides whenever devices change; zero means 5 s.
	RetryInterval time.Duration
	// EventQPS and EventBurst limit the rate of event writes, as the
	// kubelet's --event-qps and --event-burst do; zero means 50 and 100
	// (the kubelet's defaults).
	EventQPS   float32
	EventBurst int
	// PendingDelay is how long a placed pod waits for its device's first
	// report before it is marked ContainerCreating: a device that starts the
	// pod sooner saves that status write. Zero means 1 s.
	PendingDelay time.Duration
}

func (c *Config) defaults() {
	if c.KubeletPort == 0 {
		c.KubeletPort = 10250
	}
	if c.Workers == 0 {
		c.Workers = 8
	}
	if c.Version == "" {
		c.Version = "dev"
	}
	if c.RetryInterval == 0 {
		c.RetryInterval = 5 * time.Second
	}
	if c.EventQPS == 0 {
		c.EventQPS = 50
	}
	if c.EventBurst == 0 {
		c.EventBurst = 100
	}
	if c.PendingDelay == 0 {
		c.PendingDelay = time.Second
	}
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	if c.NodeIP == "" {
		return errors.New("node IP is required")
	}
	return nil
}

// NodeName is the name of account's virtual node.
func NodeName(account string) string { return "edge-" + account }

// Manager runs the virtual nodes.
type Manager struct {
	cfg    Config
	client kubernetes.Interface
	fab    *fabric.Fabric
	log    *slog.Logger

	scm         informers.SharedInformerFactory
	broadcaster record.EventBroadcaster

	mu      sync.Mutex
	ctx     context.Context // set by Run; nodes started later use it
	nodes   map[string]*accountNode
	byUID   map[string]*accountNode
	wg      sync.WaitGroup
	started chan struct{}
}

var _ fabric.Listener = (*Manager)(nil)

// NewManager returns a manager publishing fab's clusters through client.
func NewManager(cfg Config, client kubernetes.Interface, fab *fabric.Fabric, log *slog.Logger) (*Manager, error) {
	cfg.defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := &Manager{
		cfg:     cfg,
		client:  client,
		fab:     fab,
		log:     log,
		scm:     informers.NewSharedInformerFactory(client, 10*time.Minute),
		nodes:   map[string]*accountNode{},
		byUID:   map[string]*accountNode{},
		started: make(chan struct{}),
	}
	// Register the informers the pod controllers need before the factory starts.
	m.scm.Core().V1().Secrets().Informer()
	m.scm.Core().V1().ConfigMaps().Informer()
	m.scm.Core().V1().Services().Informer()
	fab.SetListener(m)
	return m, nil
}

// Run starts the shared informers, recovers the nodes and pods this provider
// served before it (re)started, marks the fabric ready and serves until ctx ends.
func (m *Manager) Run(ctx context.Context) error {
	m.broadcaster = record.NewBroadcaster(record.WithContext(ctx))
	m.broadcaster.StartRecordingToSink(&rateLimitedSink{
		ctx:     ctx,
		limiter: flowcontrol.NewTokenBucketRateLimiter(m.cfg.EventQPS, m.cfg.EventBurst),
		sink:    &typedcorev1.EventSinkImpl{Interface: m.client.CoreV1().Events("")},
	})
	defer m.broadcaster.Shutdown()

	m.scm.Start(ctx.Done())
	defer m.scm.Shutdown()
	for typ, ok := range m.scm.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("sync %v informer: %w", typ, ctx.Err())
		}
	}

	m.mu.Lock()
	m.ctx = ctx
	m.mu.Unlock()
	close(m.started)

	if err := m.recover(ctx); err != nil {
		return err
	}
	// Devices that connected while the informers synced have no node yet.
	for _, account := range m.fab.Accounts() {
		m.DevicesChanged(account)
	}
	m.fab.MarkReady()
	m.log.Info("virtual nodes ready")

	ticker := time.NewTicker(m.cfg.RetryInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			m.wg.Wait()
			return nil
		case <-ticker.C:
			for _, n := range m.allNodes() {
				n.retry()
				n.refreshVolumes()
			}
		}
	}
}

// recover rebuilds the fabric's desired state from the nodes and pods in
// Kubernetes, so devices that reconnect keep what they run.
func (m *Manager) recover(ctx context.Context) error {
	nodes, err := m.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: LabelAccount})
	if err != nil {
		return fmt.Errorf("list nodes: %w", err)
	}
	for _, n := range nodes.Items {
		account := n.Labels[LabelAccount]
		if n.Name != NodeName(account) {
			continue
		}
		an, err := m.ensureNode(account)
		if err != nil {
			return err
		}
		if err := an.recover(ctx); err != nil {
			return err
		}
	}
	return nil
}

func (m *Manager) allNodes() []*accountNode {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*accountNode, 0, len(m.nodes))
	for _, n := range m.nodes {
		out = append(out, n)
	}
	return out
}

// ensureNode returns account's node, starting it if it does not run yet.
func (m *Manager) ensureNode(account string) (*accountNode, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if n, ok := m.nodes[account]; ok {
		return n, nil
	}
	if m.ctx == nil {
		return nil, errors.New("manager not running")
	}
	n, err := newAccountNode(m, account)
	if err != nil {
		return nil, err
	}
	m.nodes[account] = n
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		if err := n.run(m.ctx); err != nil && m.ctx.Err() == nil {
			m.log.Error("virtual node stopped", "node", n.name, "err", err)
		}
	}()
	return n, nil
}

func (m *Manager) track(uid string, n *accountNode) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if n == nil {
		delete(m.byUID, uid)
		return
	}
	m.byUID[uid] = n
}

func (m *Manager) nodeOf(uid string) *accountNode {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.byUID[uid]
}

// DevicesChanged implements fabric.Listener.
func (m *Manager) DevicesChanged(account string) {
	select {
	case <-m.started:
	default:
		return // recover will create the nodes
	}
	n, err := m.ensureNode(account)
	if err != nil {
		m.log.Error("start virtual node", "account", account, "err", err)
		return
	}
	n.devicesChanged()
}

// WorkloadStatus implements fabric.Listener.
func (m *Manager) WorkloadStatus(uid string, st *hubv1.WorkloadStatus) {
	if n := m.nodeOf(uid); n != nil {
		n.workloadStatus(uid, st)
	}
}

// WorkloadEvent implements fabric.Listener.
func (m *Manager) WorkloadEvent(uid string, ev *hubv1.Event) {
	if n := m.nodeOf(uid); n != nil {
		n.workloadEvent(uid, ev)
	}
}

// Logs streams a container's logs from its device.
func (m *Manager) Logs(ctx context.Context, namespace, name, container string, opts api.ContainerLogOpts) (io.ReadCloser, error) {
	for _, n := range m.allNodes() {
		if rc, ok, err := n.logs(ctx, namespace, name, container, opts); ok {
			return rc, err
		}
	}
	return nil, notFound("pod %s/%s is not on an edgefabric node", namespace, name)
}

// Pods lists every pod the manager's nodes run.
func (m *Manager) Pods(context.Context) ([]*corev1.Pod, error) {
	var out []*corev1.Pod
	for _, n := range m.allNodes() {
		ps, _ := n.GetPods(context.Background())
		out = append(out, ps...)
	}
	return out, nil
}

func (m *Manager) newPodController(n *accountNode, pods informers.SharedInformerFactory) (*vknode.PodController, error) {
	fast := func() workqueue.TypedRateLimiter[any] {
		// The defaults cap a node at 10 pods/s behind a 5 ms first delay
		// (see docs/benchmarks.md); an edge cluster is one node for many
		// devices, so retry failures with back-off but let first tries through.
		return workqueue.NewTypedItemExponentialFailureRateLimiter[any](time.Millisecond, 30*time.Second)
	}
	return vknode.NewPodController(vknode.PodControllerConfig{
		PodClient:                            m.client.CoreV1(),
		PodInformer:                          pods.Core().V1().Pods(),
		EventRecorder:                        n.recorder,
		Provider:                             n,
		SecretInformer:                       m.scm.Core().V1().Secrets(),
		ConfigMapInformer:                    m.scm.Core().V1().ConfigMaps(),
		ServiceInformer:                      m.scm.Core().V1().Services(),
		SkipDownwardAPIResolution:            true,
		SyncPodsFromKubernetesRateLimiter:    fast(),
		SyncPodStatusFromProviderRateLimiter: fast(),
		DeletePodsFromKubernetesRateLimiter:  fast(),
	})
}

func (m *Manager) newNodeController(n *accountNode) (*vknode.NodeController, error) {
	return vknode.NewNodeController(n, n.initialNode(), m.client.CoreV1().Nodes(),
		vknode.WithNodeEnableLeaseV1(nodeutil.NodeLeaseV1Client(m.client), vknode.DefaultLeaseDuration),
	)
}

func (m *Manager) podsInformer(nodeName string) informers.SharedInformerFactory {
	return informers.NewSharedInformerFactoryWithOptions(m.client, 10*time.Minute, nodeutil.PodInformerFilter(nodeName))
}

func (m *Manager) recorderFor(nodeName string) record.EventRecorder {
	return m.broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "edgefabric", Host: nodeName})
}

func (m *Manager) listPods(ctx context.Context, nodeName string) ([]corev1.Pod, error) {
	l, err := m.client.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + nodeName})
	if err != nil {
		return nil, fmt.Errorf("list pods of %s: %w", nodeName, err)
	}
	return l.Items, nil
}

// removePod deletes a pod object whose containers have stopped, with no
// further grace and only if it is still the same pod.
func (m *Manager) removePod(pod *corev1.Pod) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	opts := metav1.DeleteOptions{GracePeriodSeconds: new(int64), Preconditions: metav1.NewUIDPreconditions(string(pod.UID))}
	err := m.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, opts)
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		m.log.Warn("remove stopped pod", "pod", pod.Namespace+"/"+pod.Name, "err", err)
	}
}

// envSource resolves env references through the shared informers.
type envSource struct{ m *Manager }

func (e envSource) ConfigMap(ns, name string) (*corev1.ConfigMap, error) {
	return e.m.scm.Core().V1().ConfigMaps().Lister().ConfigMaps(ns).Get(name)
}

func (e envSource) Secret(ns, name string) (*corev1.Secret, error) {
	return e.m.scm.Core().V1().Secrets().Lister().Secrets(ns).Get(name)
}
