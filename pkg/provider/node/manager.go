// Package node publishes edge clusters as virtual-kubelet nodes. The Manager
// keeps one virtual node per cluster of an account's devices (the account
// cluster edge-<account>, and the network and proximity clusters the
// configured scopes form, see fabric.Clusters), serves each node's pods from the fabric
// (placing a pod on a device, sending it there, turning the device's reports
// into pod status and events), and answers the kubelet API for all of them.
// Run blocks until its context ends and every node has stopped.
package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	vknode "github.com/virtual-kubelet/virtual-kubelet/node"
	"github.com/virtual-kubelet/virtual-kubelet/node/api"
	"github.com/virtual-kubelet/virtual-kubelet/node/nodeutil"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/flowcontrol"

	efv1 "github.com/edgefabric/edgefabric/pkg/apis/edgefabric/v1alpha1"
	hubv1 "github.com/edgefabric/edgefabric/pkg/apis/hub/v1"
	"github.com/edgefabric/edgefabric/pkg/provider/fabric"
	"github.com/edgefabric/edgefabric/pkg/provider/kubeletapi"
	"github.com/edgefabric/edgefabric/pkg/scopes"
)

// Config configures the Manager.
type Config struct {
	// NodeIP is the address the API server reaches the kubelet API on; it is
	// published as each node's InternalIP. Required.
	NodeIP string
	// KubeletPort is the provider's shared kubelet API port, which answers
	// for every node; zero means 10250. Nodes publish it unless KubeletTLS
	// gives them ports of their own.
	KubeletPort int32
	// KubeletTLS, if set, gives every node a kubelet API server of its own
	// on KubeletHost (empty: every interface) and a port the system picks,
	// which the node publishes: it answers for that node's pods only, so
	// that the API server's node proxy (/stats/summary, /metrics/resource,
	// metrics-server, kubectl top) sees each node's own.
	KubeletTLS  *tls.Config
	KubeletHost string
	// KubeletGuard authenticates and authorizes the requests to each node's
	// own kubelet API, for that node's name. Nil serves them to anyone.
	KubeletGuard *kubeletapi.Guard
	// Workers is the number of pod sync workers per node; zero means 8.
	Workers int
	// Version is reported as the nodes' kubelet version.
	Version string
	// RetryInterval is how often pods that could not be placed or configured are
	// tried again, besides whenever devices change; zero means 5 s.
	RetryInterval time.Duration
	// Clusters says which scopes publish nodes (nil Scopes: network and
	// account) and the proximity radius.
	Clusters fabric.ClusterConfig
	// ClusterDebounce is how long after a change of devices clusters are
	// formed again, so that a burst of changes costs one recomputation; zero
	// means 200 ms.
	ClusterDebounce time.Duration
	// DissolveGrace is how long the node of a cluster that no longer forms
	// stays (NotReady) before it is deleted, once no pods are left on it;
	// zero means 5 minutes.
	DissolveGrace time.Duration
	// DeviceLossGrace is how long a pod's device may be offline before the
	// pod is placed again on another device of its cluster, unless the pod's
	// edgefabric.io/device-loss-grace annotation says otherwise; zero means
	// 60 s.
	DeviceLossGrace time.Duration
	// Changed is called (it must not block) when devices or clusters may
	// have changed, for the fleet view; nil means no calls.
	Changed func()
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
	if c.ClusterDebounce == 0 {
		c.ClusterDebounce = 200 * time.Millisecond
	}
	if c.DissolveGrace == 0 {
		c.DissolveGrace = 5 * time.Minute
	}
	if c.DeviceLossGrace == 0 {
		c.DeviceLossGrace = 60 * time.Second
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
	return c.Clusters.Validate()
}

// NodeName is the name of account's virtual node: edge-<account>, unless
// that could name another cluster's node (scopes.NodeName).
func NodeName(account string) string { return scopes.NodeName(account, scopes.Account, "") }

// Manager runs the virtual nodes.
type Manager struct {
	cfg    Config
	client kubernetes.Interface
	fab    *fabric.Fabric
	log    *slog.Logger

	scm         informers.SharedInformerFactory
	broadcaster record.EventBroadcaster

	mu      sync.Mutex
	ctx     context.Context         // set by Run; nodes started later use it
	nodes   map[string]*accountNode // by node name
	byUID   map[string]*accountNode
	wg      sync.WaitGroup
	started chan struct{}

	platformsMu    sync.Mutex
	imagePlatforms map[string][]string // image ref → os/arch platforms, learnt from devices

	// recompute asks for clusters to be formed again (capacity 1).
	recompute  chan struct{}
	startedAt  time.Time // devices not seen since count as lost from then
	clustersMu sync.Mutex
	clusters   []fabric.Cluster // the last result of fabric.Clusters
	// recovered are the network and proximity clusters of the nodes found
	// at start, by node name (guarded by mu): their nodes start with them.
	recovered map[string]fabric.Cluster
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

		recovered: map[string]fabric.Cluster{},

		recompute: make(chan struct{}, 1),
		startedAt: time.Now(),
	}
	// Register the informers the pod controllers need before the factory starts.
	m.scm.Core().V1().Secrets().Informer()
	m.scm.Core().V1().ConfigMaps().Informer()
	m.scm.Core().V1().Services().Informer()
	m.scm.Core().V1().Namespaces().Informer()
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
		if ctx.Err() != nil {
			m.wg.Wait()
			return nil // stopped while recovering
		}
		return err
	}
	// Devices that connected while the informers synced have no node yet.
	for _, account := range m.fab.Accounts() {
		m.DevicesChanged(account)
	}
	m.formClusters(time.Now())
	m.fab.MarkReady()
	m.log.Info("virtual nodes ready")

	ticker := time.NewTicker(m.cfg.RetryInterval)
	defer ticker.Stop()
	var debounce <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			m.wg.Wait()
			return nil
		case <-m.recompute:
			if debounce == nil {
				debounce = time.After(m.cfg.ClusterDebounce)
			}
		case <-debounce:
			debounce = nil
			m.formClusters(time.Now())
		case <-ticker.C:
			for _, n := range m.allNodes() {
				n.retry()
				n.refreshVolumes()
			}
			m.formClusters(time.Now()) // devices gone for good leave their clusters
			m.removeDissolved(ctx, time.Now())
		}
	}
}

// publishes reports whether the configured scopes include sc.
func (m *Manager) publishes(sc scopes.Scope) bool {
	if m.cfg.Clusters.Scopes == nil {
		return slices.Contains(fabric.DefaultScopes, sc)
	}
	return slices.Contains(m.cfg.Clusters.Scopes, sc)
}

// formClusters forms the network and proximity clusters from what the devices
// report, starts a node for each new one, gives each its members, and marks
// the nodes of clusters that no longer form as dissolved. The account nodes
// are kept by DevicesChanged.
func (m *Manager) formClusters(now time.Time) {
	cfg := m.cfg.Clusters
	cfg.Scopes = slices.DeleteFunc(slices.Clone(cfg.Scopes), func(sc scopes.Scope) bool { return sc == scopes.Account })
	if m.cfg.Clusters.Scopes == nil {
		cfg.Scopes = []scopes.Scope{scopes.Network}
	}
	if len(cfg.Scopes) == 0 {
		return
	}
	// A device gone for longer than the dissolve grace no longer holds its
	// cluster together: a LAN none of whose devices come back dissolves.
	devices := slices.DeleteFunc(m.fab.AllDevices(), func(d fabric.Device) bool {
		since := m.startedAt
		if d.LastSeen.After(since) {
			since = d.LastSeen
		}
		return !d.Online && now.Sub(since) >= m.cfg.DissolveGrace
	})
	// The clusters of nodes that are still there, formed or not, keep their
	// IDs for the devices that form them again.
	m.clustersMu.Lock()
	prev := slices.Clone(m.clusters)
	m.clustersMu.Unlock()
	known := map[fabric.ClusterKey]bool{}
	for _, c := range prev {
		known[c.ClusterKey] = true
	}
	for _, n := range m.allNodes() {
		if c, ok := n.cluster(); ok && !known[c.ClusterKey] {
			prev = append(prev, c)
		}
	}
	clusters := fabric.Clusters(devices, cfg, prev)
	formed := map[string]bool{}
	for _, c := range clusters {
		formed[c.NodeName()] = true
	}
	// A node recovered after a restart whose devices have not reported yet
	// is not dissolved for that: they may be cut off the provider. It keeps
	// its cluster until they report, or until they have been gone as long
	// as any device may be before its cluster dissolves.
	byID := map[string]fabric.Device{}
	for _, d := range m.fab.AllDevices() {
		byID[d.Account+"/"+d.ID] = d
	}
	for _, n := range m.allNodes() {
		c, ok := n.cluster()
		if !ok || formed[n.name] || len(c.Members) == 0 || now.Sub(m.startedAt) >= m.cfg.DissolveGrace {
			continue
		}
		unheard := !slices.ContainsFunc(c.Members, func(id string) bool {
			d, ok := byID[c.Account+"/"+id]
			return ok && (d.Online || d.Scopes != nil)
		})
		if unheard {
			clusters = append(clusters, c)
			formed[n.name] = true
		}
	}
	m.clustersMu.Lock()
	m.clusters = clusters
	m.clustersMu.Unlock()
	if m.cfg.Changed != nil {
		defer m.cfg.Changed()
	}
	for _, c := range clusters {
		n, err := m.ensureNode(c.ClusterKey)
		if err != nil {
			m.log.Error("start virtual node", "cluster", c.NodeName(), "err", err)
			continue
		}
		if n.setMembers(c.Members, c.Claim, false, now) {
			m.log.Info("cluster formed", "node", n.name, "scope", string(c.Scope), "account", c.Account, "members", len(c.Members))
		}
		n.devicesChanged()
	}
	for _, n := range m.allNodes() {
		if n.key.Scope == scopes.Account || formed[n.name] {
			continue
		}
		if n.setMembers(nil, "", true, now) {
			m.log.Info("cluster dissolved", "node", n.name)
		}
		n.devicesChanged()
	}
}

// Clusters returns every cluster devices belong to: the network and
// proximity clusters last formed, and each account's cluster.
func (m *Manager) Clusters() []fabric.Cluster {
	m.clustersMu.Lock()
	out := slices.Clone(m.clusters)
	m.clustersMu.Unlock()
	for _, account := range m.fab.Accounts() {
		c := fabric.Cluster{ClusterKey: fabric.ClusterKey{Account: account, Scope: scopes.Account}}
		for _, d := range m.fab.Devices(account) {
			c.Members = append(c.Members, d.ID)
		}
		out = append(out, c)
	}
	return out
}

// NodeOf returns the name of the virtual node of a cluster, "" if none is
// published.
func (m *Manager) NodeOf(key fabric.ClusterKey) string {
	name := NodeName(key.Account)
	if key.Scope != scopes.Account {
		name = key.NodeName()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.nodes[name]; ok {
		return name
	}
	return ""
}

// removeDissolved stops and deletes the nodes whose cluster dissolved longer
// than DissolveGrace ago and that have no pods left.
func (m *Manager) removeDissolved(ctx context.Context, now time.Time) {
	for _, n := range m.allNodes() {
		n.mu.Lock()
		gone := !n.dissolved.IsZero() && now.Sub(n.dissolved) >= m.cfg.DissolveGrace && len(n.byUID) == 0
		stop := n.stop
		n.mu.Unlock()
		if !gone {
			continue
		}
		pods, err := m.listPods(ctx, n.name)
		if err != nil || len(pods) > 0 {
			continue
		}
		m.mu.Lock()
		delete(m.nodes, n.name)
		m.mu.Unlock()
		stop()
		err = m.client.CoreV1().Nodes().Delete(ctx, n.name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			m.log.Warn("delete dissolved node", "node", n.name, "err", err)
			continue
		}
		m.log.Info("dissolved cluster's node deleted", "node", n.name)
	}
}

// recover rebuilds the fabric's desired state from the nodes and pods in
// Kubernetes, so devices that reconnect keep what they run.
func (m *Manager) recover(ctx context.Context) error {
	nodes, err := m.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: efv1.LabelAccount})
	if err != nil {
		return fmt.Errorf("list nodes: %w", err)
	}
	for _, n := range nodes.Items {
		account := n.Labels[efv1.LabelAccount]
		key := fabric.ClusterKey{Account: account, Scope: scopes.Scope(n.Labels[efv1.LabelScope]), ID: n.Labels[efv1.LabelCluster]}
		switch key.Scope {
		case scopes.Network, scopes.Proximity:
			if n.Name != key.NodeName() {
				continue
			}
		default:
			if n.Name != NodeName(account) {
				continue
			}
			key = fabric.ClusterKey{Account: account, Scope: scopes.Account}
		}
		if key.Scope != scopes.Account {
			// Its members as last published, until the clusters form again.
			c := fabric.Cluster{ClusterKey: key, Claim: n.Annotations[efv1.AnnotationClusterClaim]}
			if s := n.Annotations[efv1.AnnotationClusterMembers]; s != "" {
				c.Members = strings.Split(s, ",")
				slices.Sort(c.Members)
			}
			m.mu.Lock()
			m.recovered[n.Name] = c
			m.mu.Unlock()
		}
		an, err := m.ensureNode(key)
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

// ensureNode returns the cluster's node, starting it if it does not run yet.
// A network or proximity node starts with no members until formClusters
// gives it some.
func (m *Manager) ensureNode(key fabric.ClusterKey) (*accountNode, error) {
	name := NodeName(key.Account)
	if key.Scope != scopes.Account {
		name = key.NodeName()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if n, ok := m.nodes[name]; ok {
		return n, nil
	}
	if m.ctx == nil {
		return nil, errors.New("manager not running")
	}
	recovered := m.recovered[name]
	n, err := newAccountNode(m, key, recovered.Members, recovered.Claim)
	if err != nil {
		return nil, err
	}
	ctx, stop := context.WithCancel(m.ctx)
	n.stop = stop
	m.nodes[name] = n
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer stop()
		if err := n.run(ctx); err != nil && ctx.Err() == nil {
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
	select {
	case m.recompute <- struct{}{}:
	default:
	}
	if m.cfg.Changed != nil {
		m.cfg.Changed()
	}
	if m.publishes(scopes.Account) {
		n, err := m.ensureNode(fabric.ClusterKey{Account: account, Scope: scopes.Account})
		if err != nil {
			m.log.Error("start virtual node", "account", account, "err", err)
			return
		}
		n.devicesChanged()
	}
	// Whether a member went offline shows on its cluster nodes at once;
	// who is a member is settled by formClusters.
	for _, n := range m.allNodes() {
		if n.account == account && n.key.Scope != scopes.Account {
			n.devicesChanged()
		}
	}
}

// DeviceRemoved places again at once the pods of device id of account,
// which the fabric dropped (fabric.Drop): no device-loss grace applies. why
// says what happened to the device ("was decommissioned"), for the pods'
// events.
func (m *Manager) DeviceRemoved(account, id, why string) {
	for _, n := range m.allNodes() {
		if n.account == account {
			n.moveFrom(time.Now(), id, why)
		}
	}
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
	return vknode.NewPodController(vknode.PodControllerConfig{
		PodClient:                            m.client.CoreV1(),
		PodInformer:                          podInformer{pods.Core().V1().Pods()},
		EventRecorder:                        n.recorder,
		Provider:                             n,
		SecretInformer:                       m.scm.Core().V1().Secrets(),
		ConfigMapInformer:                    m.scm.Core().V1().ConfigMaps(),
		ServiceInformer:                      m.scm.Core().V1().Services(),
		SkipDownwardAPIResolution:            true,
		SyncPodsFromKubernetesRateLimiter:    PodQueueRateLimiter(),
		SyncPodStatusFromProviderRateLimiter: PodQueueRateLimiter(),
		DeletePodsFromKubernetesRateLimiter:  PodQueueRateLimiter(),
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

// tenancy says why a pod of namespace ns may not run on account's devices, or
// "" if it may. A namespace labelled edgefabric.io/account=<a> runs pods on
// a's devices only; once any namespace is labelled for an account, that
// account's devices run pods of its labelled namespaces only. Accounts no
// namespace is labelled for take pods from any unlabelled namespace. A
// namespace not in the informer's cache yet (just made) is read from the API
// server; an error means tenancy could not be told, and the pod must wait.
func (m *Manager) tenancy(ctx context.Context, ns, account string) (string, error) {
	lister := m.scm.Core().V1().Namespaces().Lister()
	nsObj, err := lister.Get(ns)
	if apierrors.IsNotFound(err) {
		nsObj, err = m.client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	}
	if err != nil {
		return "", fmt.Errorf("read namespace %s for its account: %w", ns, err)
	}
	if a := nsObj.Labels[efv1.LabelAccount]; a != "" {
		if a != account {
			return fmt.Sprintf("namespace %s belongs to account %s (label %s); its pods may not run on the devices of account %s", ns, a, efv1.LabelAccount, account), nil
		}
		return "", nil
	}
	all, err := lister.List(labels.SelectorFromSet(labels.Set{efv1.LabelAccount: account}))
	if err == nil && len(all) > 0 {
		return fmt.Sprintf("the devices of account %s run pods of namespaces labelled %s=%s only (e.g. %s); namespace %s is not", account, efv1.LabelAccount, account, all[0].Name, ns), nil
	}
	return "", nil
}

// envSource resolves env references through the shared informers.
type envSource struct{ m *Manager }

func (e envSource) ConfigMap(ns, name string) (*corev1.ConfigMap, error) {
	return e.m.scm.Core().V1().ConfigMaps().Lister().ConfigMaps(ns).Get(name)
}

func (e envSource) Secret(ns, name string) (*corev1.Secret, error) {
	return e.m.scm.Core().V1().Secrets().Lister().Secrets(ns).Get(name)
}

// setImagePlatforms remembers the os/arch platforms of an image, as a device
// that could not pull it reported them.
func (m *Manager) setImagePlatforms(ref string, platforms []string) {
	m.platformsMu.Lock()
	defer m.platformsMu.Unlock()
	if m.imagePlatforms == nil {
		m.imagePlatforms = map[string][]string{}
	}
	m.imagePlatforms[ref] = slices.Clone(platforms)
}

// podPlatforms are the os/arch platforms every image of the pod is known to
// have (nil: none known, any device may try). WASM images run anywhere and
// are never known here: only a device's failed pull teaches an image's
// platforms.
func (m *Manager) podPlatforms(pod *corev1.Pod) []string {
	m.platformsMu.Lock()
	defer m.platformsMu.Unlock()
	var out []string
	known := false
	for _, c := range append(slices.Clone(pod.Spec.InitContainers), pod.Spec.Containers...) {
		ps, ok := m.imagePlatforms[c.Image]
		if !ok {
			continue
		}
		if !known {
			out, known = slices.Clone(ps), true
			continue
		}
		out = slices.DeleteFunc(out, func(p string) bool { return !slices.Contains(ps, p) })
	}
	if known && out == nil {
		out = []string{} // known, and no platform has them all
	}
	return out
}
