package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/virtual-kubelet/virtual-kubelet/errdefs"
	vknode "github.com/virtual-kubelet/virtual-kubelet/node"
	"github.com/virtual-kubelet/virtual-kubelet/node/api"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"

	efv1 "github.com/edgefabric/edgefabric/pkg/apis/edgefabric/v1alpha1"
	hubv1 "github.com/edgefabric/edgefabric/pkg/apis/hub/v1"
	"github.com/edgefabric/edgefabric/pkg/apis/hub/v1/reasons"
	"github.com/edgefabric/edgefabric/pkg/provider/fabric"
	"github.com/edgefabric/edgefabric/pkg/provider/placement"
	"github.com/edgefabric/edgefabric/pkg/provider/translate"
	"github.com/edgefabric/edgefabric/pkg/scopes"
)

// podState is what the node knows of one of its pods.
type podState struct {
	pod      *corev1.Pod // as last seen, with the status last reported
	device   string      // "" while not placed
	deleting bool
	// waiting is the reason the pod is not on a device yet ("" once placed):
	// Unschedulable or CreateContainerConfigError; such pods are retried.
	waiting string
	failed  bool // can never run (unsupported); not retried
	seq     uint64
	// epoch is the fencing epoch of the pod's current assignment (annotation
	// edgefabric.io/fencing-epoch); it grows each time the pod is placed
	// again after its device was lost.
	epoch uint64
	// sent is the workload last given to the fabric for the device.
	sent *hubv1.Workload
	// misplaced is the device the pod is on when that device reported it
	// cannot run the pod's image (not for its os/arch); the retry loop
	// places the pod again.
	misplaced string
	// creatingDue is set when the pod is placed and cleared by the creating
	// timer PendingDelay later; until then a device's report that the
	// pod's containers are being created is held (in held) rather than
	// written: most pods report Running within the delay, and that is then
	// their first status write, not their second.
	creatingDue bool
	held        *corev1.PodStatus
	// evicted is set once the pod was deleted because its cluster
	// dissolved, so that it is deleted, and its event recorded, once.
	evicted bool
}

// accountNode is the virtual node of one cluster of an account's devices:
// the account cluster (every device, node edge-<account>), or a network or
// proximity cluster whose members the manager sets as clusters form.
type accountNode struct {
	m        *Manager
	account  string
	key      fabric.ClusterKey
	name     string
	recorder record.EventRecorder
	pc       *vknode.PodController
	nc       *vknode.NodeController
	pods     informersFactory

	// Signals to run's goroutines, coalesced (capacity 1): the node's status
	// may have changed; waiting pods may fit now.
	nodeChanged chan struct{}
	retryNow    chan struct{}

	mu         sync.Mutex
	byUID      map[string]*podState
	byKey      map[string]string // namespace/name → uid
	notifyPod  func(*corev1.Pod)
	notifyNode func(*corev1.Node)
	lastNode   *corev1.Node // the status last given to notifyNode
	// members are the cluster's devices; nil means every device of the
	// account (the account scope).
	members []string
	// dissolved is when the cluster stopped being formed; zero while it is.
	dissolved time.Time
	// claim is what a network cluster's ID was chosen for (fabric.Cluster).
	claim string
	// left holds when each device that was a member stopped being one; a
	// pod on such a device is placed again after its device-loss grace, as
	// if the device were lost. A device that joins again is removed.
	left map[string]time.Time
	// stop ends run; set by the manager.
	stop context.CancelFunc
	// kubeletLis and kubeletPort are the node's own kubelet API, if it has
	// one (see Config.KubeletTLS).
	kubeletLis  net.Listener
	kubeletPort int32
}

type informersFactory interface {
	Start(stopCh <-chan struct{})
	Shutdown()
}

var (
	_ vknode.PodLifecycleHandler = (*accountNode)(nil)
	_ vknode.PodNotifier         = (*accountNode)(nil)
	_ vknode.NodeProvider        = (*accountNode)(nil)
)

// newAccountNode returns the node of a cluster. A network or proximity
// cluster's node starts with the given members (none if nil) and claim,
// as the node controller registers it with them.
func newAccountNode(m *Manager, key fabric.ClusterKey, members []string, claim string) (*accountNode, error) {
	name := NodeName(key.Account)
	if key.Scope != scopes.Account {
		name = key.NodeName()
	}
	n := &accountNode{
		m:        m,
		account:  key.Account,
		key:      key,
		name:     name,
		recorder: m.recorderFor(name),
		byUID:    map[string]*podState{},
		byKey:    map[string]string{},

		nodeChanged: make(chan struct{}, 1),
		retryNow:    make(chan struct{}, 1),
	}
	if key.Scope != scopes.Account {
		n.members, n.claim = append([]string{}, members...), claim
	}
	if err := n.listenKubelet(); err != nil {
		return nil, fmt.Errorf("kubelet API for %s: %w", n.name, err)
	}
	pods := m.podsInformer(n.name)
	pc, err := m.newPodController(n, pods)
	if err != nil {
		n.closeKubelet()
		return nil, fmt.Errorf("pod controller for %s: %w", n.name, err)
	}
	nc, err := m.newNodeController(n)
	if err != nil {
		n.closeKubelet()
		return nil, fmt.Errorf("node controller for %s: %w", n.name, err)
	}
	n.pc, n.nc, n.pods = pc, nc, pods
	return n, nil
}

// run runs the node's controllers, and the goroutines that send its status
// and place waiting pods again, until ctx ends or a controller fails.
func (n *accountNode) run(ctx context.Context) error {
	// The node controller's status callback blocks while the controller is
	// not running its loop, so the controllers get a context of their own
	// that ends only once the status sender has stopped.
	vkCtx, stopVK := context.WithCancel(context.WithoutCancel(ctx))
	defer stopVK()
	n.pods.Start(vkCtx.Done())
	defer n.pods.Shutdown()
	errc := make(chan error, 2)
	go func() { errc <- n.nc.Run(vkCtx) }()
	go func() { errc <- n.pc.Run(vkCtx, n.m.cfg.Workers) }()

	loopCtx, stopLoops := context.WithCancel(ctx)
	var loops sync.WaitGroup
	loops.Go(func() { n.sendNodeStatus(loopCtx) })
	loops.Go(func() { n.retryLoop(loopCtx) })
	loops.Go(func() {
		if err := n.serveKubelet(loopCtx); err != nil {
			n.m.log.Error("kubelet API stopped", "node", n.name, "err", err)
		}
	})

	var err error
	running := 2
	select {
	case <-ctx.Done():
	case err = <-errc:
		running--
	}
	stopLoops()
	loops.Wait()
	stopVK()
	for ; running > 0; running-- {
		// The first error ended run; if ctx did, what they stop with.
		if e := <-errc; err == nil {
			err = e
		}
	}
	return err
}

// sendNodeStatus gives the node controller the node's status whenever
// devicesChanged says it may have changed and it did, until ctx ends. The
// controller writes each one to the API server (a GET and a PATCH), one at a
// time: the status must not be sent on every change of the fabric, and never
// from a caller that holds up others (the fabric's listener calls, a pod
// sync worker).
func (n *accountNode) sendNodeStatus(ctx context.Context) {
	select {
	case <-n.nc.Ready(): // its loop takes what the callback sends from now on
	case <-ctx.Done():
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.nodeChanged:
		}
		node := n.nodeStatus()
		n.mu.Lock()
		cb, last := n.notifyNode, n.lastNode
		same := last != nil && sameNodeStatus(last, node)
		if !same {
			n.lastNode = node
		}
		n.mu.Unlock()
		if cb != nil && !same {
			// The controller writes heartbeat times into what it is given:
			// keep lastNode ours.
			cb(node.DeepCopy())
		}
		if !same && last != nil {
			n.dropLabels(ctx, last.Labels, node.Labels)
		}
		// Every pod placed signals a change (the fabric cannot tell what a
		// listener cares for): in a burst of pods, one status a
		// nodeStatusInterval instead of one per pod; the first change after a
		// quiet spell still goes out at once.
		select {
		case <-ctx.Done():
			return
		case <-time.After(nodeStatusInterval):
		}
	}
}

// nodeStatusInterval is the least time between two node statuses built by
// sendNodeStatus.
const nodeStatusInterval = 100 * time.Millisecond

// dropLabels removes from the node object the labels it had (in was) and
// should not have now (in now): os and arch, once its devices disagree.
// virtual-kubelet writes the labels it is given, but it removes a label only
// if its last write of the node's metadata had it, and the node's creation
// is not such a write: a label set at creation and dropped before the
// node's first status write would stay for ever.
func (n *accountNode) dropLabels(ctx context.Context, was, now map[string]string) {
	drop := map[string]any{}
	for _, k := range []string{"kubernetes.io/os", "kubernetes.io/arch"} {
		if _, ok := was[k]; ok {
			if _, still := now[k]; !still {
				drop[k] = nil
			}
		}
	}
	if len(drop) == 0 {
		return
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"labels": drop}})
	if err != nil {
		return
	}
	if _, err := n.m.client.CoreV1().Nodes().Patch(ctx, n.name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil && !apierrors.IsNotFound(err) {
		n.m.log.Warn("node labels not removed", "node", n.name, "labels", slices.Sorted(maps.Keys(drop)), "err", err)
	}
}

// retryLoop places waiting pods again whenever devicesChanged asks, and
// every second moves the pods of devices lost longer than their grace, until
// ctx ends.
func (n *accountNode) retryLoop(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.retryNow:
			n.moveMisplaced()
			n.retry()
		case <-t.C:
			n.moveLost(time.Now())
		}
	}
}

// lossGrace is the pod's device-loss grace.
func (n *accountNode) lossGrace(pod *corev1.Pod) time.Duration {
	if d, ok, err := translate.DeviceLossGrace(pod); ok && err == nil {
		return d
	}
	return n.m.cfg.DeviceLossGrace
}

// fenceGrace gives a workload that fences on partition its pod's effective
// device-loss grace: the device stops it before that has passed without
// word from the hub.
func (n *accountNode) fenceGrace(pod *corev1.Pod, w *hubv1.Workload) {
	if w.GetFenceOnPartition() {
		w.DeviceLossGraceMillis = n.lossGrace(pod).Milliseconds()
	}
}

// moveLost places again the pods whose device has been offline longer than
// their grace. The lost device's desired state no longer holds them, so when
// it comes back the first thing it is sent, the full desired state, stops
// its stale copies; their statuses are no longer taken from it.
func (n *accountNode) moveLost(now time.Time) { n.moveFrom(now, "", "") }

// moveFrom is moveLost that also places again at once, without waiting for
// any grace, every pod of device gone (if not empty), which was removed from
// the fleet: why says how, for the pods' events.
func (n *accountNode) moveFrom(now time.Time, gone, why string) {
	type lost struct {
		uid, device string
		pod         *corev1.Pod
		offline     time.Duration
		removed     bool
		left        bool // the device left the cluster
	}
	var moves []lost
	var evictions []*corev1.Pod
	devices := map[string]fabric.Device{}
	for _, d := range n.m.fab.Devices(n.account) {
		devices[d.ID] = d
	}
	n.mu.Lock()
	dissolved := n.dissolved
	for uid, st := range n.byUID {
		if !dissolved.IsZero() {
			// The node will be deleted: no pod may stay bound to it.
			if !st.deleting && !st.evicted && now.Sub(dissolved) >= n.lossGrace(st.pod) {
				st.evicted = true
				evictions = append(evictions, st.pod.DeepCopy())
			}
			continue
		}
		if st.device == "" || st.deleting || st.failed || st.waiting != "" {
			continue
		}
		if ph := st.pod.Status.Phase; ph == corev1.PodSucceeded || ph == corev1.PodFailed {
			continue
		}
		if gone != "" && st.device == gone {
			moves = append(moves, lost{uid: uid, device: st.device, pod: st.pod.DeepCopy(), removed: true})
			continue
		}
		if since, ok := n.left[st.device]; ok {
			if off := now.Sub(since); off >= n.lossGrace(st.pod) {
				moves = append(moves, lost{uid: uid, device: st.device, pod: st.pod.DeepCopy(), offline: off, left: true})
			}
			continue
		}
		d, ok := devices[st.device]
		if ok && d.Online {
			continue
		}
		since := n.m.startedAt
		if ok && d.LastSeen.After(since) {
			since = d.LastSeen
		}
		if off := now.Sub(since); off >= n.lossGrace(st.pod) {
			moves = append(moves, lost{uid: uid, device: st.device, pod: st.pod.DeepCopy(), offline: off})
		}
	}
	n.mu.Unlock()
	for _, pod := range evictions {
		n.evict(pod, now.Sub(dissolved))
	}
	for _, mv := range moves {
		if !n.unassign(mv.uid, mv.device) {
			continue
		}
		switch {
		case mv.left:
			n.m.log.Info("device left the cluster, placing pod again", "pod", mv.pod.Namespace+"/"+mv.pod.Name, "device", mv.device, "node", n.name)
			n.recorder.Eventf(mv.pod, corev1.EventTypeWarning, efv1.ReasonDeviceLeftCluster, "Device %s left %s cluster %s %s ago; placing the pod on a device of the cluster", mv.device, n.key.Scope, n.key.ID, mv.offline.Round(time.Second))
		case mv.removed:
			n.m.log.Info("device removed from the fleet, placing pod again", "pod", mv.pod.Namespace+"/"+mv.pod.Name, "device", mv.device, "why", why)
			n.recorder.Eventf(mv.pod, corev1.EventTypeWarning, efv1.ReasonDeviceRemoved, "Device %s %s; placing the pod on another device", mv.device, why)
		default:
			n.m.log.Info("device lost, placing pod again", "pod", mv.pod.Namespace+"/"+mv.pod.Name, "device", mv.device, "offline", mv.offline.Round(time.Second))
			n.recorder.Eventf(mv.pod, corev1.EventTypeWarning, efv1.ReasonDeviceLost, "Device %s offline for %s; placing the pod on another device", mv.device, mv.offline.Round(time.Second))
		}
		n.place(context.Background(), mv.uid)
	}
}

// evict deletes a pod of a dissolved cluster's node, as the node lifecycle
// controller evicts the pods of a node that is gone: its device stops it
// (or drops it from its desired state when it is back), and its controller
// replaces it.
func (n *accountNode) evict(pod *corev1.Pod, dissolvedFor time.Duration) {
	n.m.log.Info("cluster dissolved, evicting pod", "pod", pod.Namespace+"/"+pod.Name, "node", n.name)
	n.recorder.Eventf(pod, corev1.EventTypeWarning, efv1.ReasonClusterDissolved, "No device has formed %s cluster %s for %s; evicting the pod from node %s so that its controller places it again", n.key.Scope, n.key.ID, dissolvedFor.Round(time.Second), n.name)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := n.m.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{Preconditions: metav1.NewUIDPreconditions(string(pod.UID))})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		n.m.log.Warn("evict pod", "pod", pod.Namespace+"/"+pod.Name, "err", err)
		n.mu.Lock()
		if st, ok := n.byUID[string(pod.UID)]; ok {
			st.evicted = false // tried again on the next tick
		}
		n.mu.Unlock()
	}
}

// sameNodeStatus reports whether two nodes from nodeStatus differ only in
// their conditions' timestamps.
func sameNodeStatus(a, b *corev1.Node) bool {
	strip := func(n *corev1.Node) *corev1.Node {
		n = n.DeepCopy()
		for i := range n.Status.Conditions {
			n.Status.Conditions[i].LastHeartbeatTime = metav1.Time{}
			n.Status.Conditions[i].LastTransitionTime = metav1.Time{}
		}
		return n
	}
	return equality.Semantic.DeepEqual(strip(a), strip(b))
}

// recover loads the pods Kubernetes has on this node and gives the fabric the
// workloads of those already placed on a device.
func (n *accountNode) recover(ctx context.Context) error {
	pods, err := n.m.listPods(ctx, n.name)
	if err != nil {
		return err
	}
	n.m.log.Info("recovering pods", "node", n.name, "count", len(pods))
	for i := range pods {
		p := &pods[i]
		if p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		dev, epoch := n.adopt(p)
		if dev == "" || !n.allowed(ctx, p) {
			continue // CreatePod will place it, or report why not
		}
		// The device's address as the pod was given it, so that a workload
		// whose env refers to it translates as before and is not restarted.
		w, err := translate.Workload(p, envSource{n.m}, p.Status.HostIP)
		if err != nil {
			continue // CreatePod will report it
		}
		w.FencingEpoch = epoch
		n.fenceGrace(p, w)
		n.mu.Lock()
		n.byUID[string(p.UID)] = &podState{pod: p.DeepCopy(), device: dev, epoch: epoch, sent: w}
		n.byKey[p.Namespace+"/"+p.Name] = string(p.UID)
		n.mu.Unlock()
		n.m.track(string(p.UID), n)
		n.m.fab.Assign(n.account, dev, w)
	}
	return nil
}

// CreatePod places pod on a device and sends it there.
func (n *accountNode) CreatePod(ctx context.Context, pod *corev1.Pod) error {
	uid := string(pod.UID)
	dev, epoch := n.adopt(pod)
	n.mu.Lock()
	st, known := n.byUID[uid]
	if !known {
		st = &podState{pod: pod.DeepCopy(), device: dev, epoch: epoch}
		n.byUID[uid] = st
		n.byKey[pod.Namespace+"/"+pod.Name] = uid
	} else {
		st.pod.Spec = pod.Spec
		st.pod.ObjectMeta = pod.ObjectMeta
	}
	n.mu.Unlock()
	n.m.track(uid, n)

	err := translate.Validate(pod)
	if err == nil {
		err = translate.FenceGraceError(pod, n.lossGrace(pod))
	}
	if err != nil {
		var ue *translate.UnsupportedError
		reason := efv1.ReasonUnsupported
		if errors.As(err, &ue) {
			reason = ue.Reason
		}
		n.recorder.Event(pod, corev1.EventTypeWarning, reason, err.Error())
		n.mu.Lock()
		st.failed = true
		n.mu.Unlock()
		n.setStatus(uid, translate.FailedStatus(pod, reason, err.Error(), time.Now()))
		return nil
	}
	why, err := n.m.tenancy(ctx, pod.Namespace, n.account)
	if err != nil {
		return err // tried again by the pod controller
	}
	if why != "" {
		n.recorder.Event(pod, corev1.EventTypeWarning, efv1.ReasonAccountMismatch, why)
		n.mu.Lock()
		st.failed = true
		n.mu.Unlock()
		n.setStatus(uid, translate.FailedStatus(pod, efv1.ReasonAccountMismatch, why, time.Now()))
		return nil
	}
	n.place(ctx, uid)
	return nil
}

// place tries to put the pod on a device, recording why not when it cannot.
func (n *accountNode) place(ctx context.Context, uid string) {
	n.mu.Lock()
	st, ok := n.byUID[uid]
	if !ok || st.deleting || st.failed {
		n.mu.Unlock()
		return
	}
	pod := st.pod.DeepCopy()
	dev := st.device
	admitted := st.epoch > 0 // it ran on a device of the cluster before
	n.mu.Unlock()

	ip := ""
	if dev != "" {
		if d, ok := n.m.fab.Device(n.account, dev); ok {
			ip = d.IP()
		}
		if ip == "" {
			ip = pod.Status.HostIP // not connected since the provider started
		}
	}
	w, err := translate.Workload(pod, envSource{n.m}, ip)
	if err != nil {
		n.wait(uid, reasons.CreateContainerConfigError, err.Error())
		return
	}
	if dev == "" {
		var why string
		opts, err := n.placeOptions(pod)
		if err != nil {
			n.wait(uid, efv1.ReasonUnschedulable, err.Error())
			return
		}
		dev, why = n.m.fab.PlaceWith(n.account, w, opts)
		if dev == "" {
			if !admitted {
				if adm := n.m.fab.Admissible(n.account, w, opts); adm.Reject != "" {
					n.reject(uid, adm)
					return
				}
			}
			n.wait(uid, efv1.ReasonUnschedulable, why)
			return
		}
		if d, ok := n.m.fab.Device(n.account, dev); ok && d.IP() != "" {
			if w, err = translate.Workload(pod, envSource{n.m}, d.IP()); err != nil {
				n.m.fab.Remove(uid) // give up the device's room PlaceWith held
				n.wait(uid, reasons.CreateContainerConfigError, err.Error())
				return
			}
		}
		// The device is recorded on the pod by the status write that
		// follows (pods/status takes annotation changes, and
		// virtual-kubelet writes the pod as GetPod returns it). A patch of
		// its own would hold this pod sync worker for an API round trip
		// per pod and cost the API server a write: under a burst of pods
		// it was most of their start latency (docs/benchmarks.md).
		n.recorder.Eventf(pod, corev1.EventTypeNormal, efv1.ReasonScheduled, "Scheduled to device %s", dev)
	}
	n.mu.Lock()
	if st.device != dev {
		st.epoch++ // a new assignment
	}
	st.device = dev
	st.waiting = ""
	w.FencingEpoch = st.epoch
	n.fenceGrace(pod, w)
	// virtual-kubelet writes status with the pod as GetPod returns it, metadata
	// included: without the annotations there, it would erase them again.
	markPlaced(st.pod, dev, st.epoch)
	st.sent = w
	st.creatingDue, st.held = true, nil
	n.mu.Unlock()
	n.m.fab.Assign(n.account, dev, w)
	time.AfterFunc(n.m.cfg.PendingDelay, func() { n.creating(uid, dev) })
}

// creating marks the pod ContainerCreating if its device has not reported on
// it since it was placed there, or writes the device's report that it is
// creating the containers, held until now (see podState.creatingDue). Most
// devices report more (Running) sooner, and that report is then the pod's
// first status write.
func (n *accountNode) creating(uid, dev string) {
	n.mu.Lock()
	st, ok := n.byUID[uid]
	if !ok || !st.creatingDue || st.deleting || st.device != dev {
		n.mu.Unlock()
		return
	}
	st.creatingDue = false
	held := st.held
	st.held = nil
	seq := st.seq
	pod := st.pod.DeepCopy()
	n.mu.Unlock()
	switch {
	case held != nil:
		n.setStatus(uid, *held)
	case seq == 0:
		n.setStatus(uid, translate.PendingStatus(pod, reasons.ContainerCreating, "", time.Now()))
	}
}

// onlyCreating reports whether a device's report says no more than that the
// pod's containers are being created.
func onlyCreating(ws *hubv1.WorkloadStatus) bool {
	for _, c := range append(slices.Clone(ws.GetInitContainers()), ws.GetContainers()...) {
		w := c.GetState().GetWaiting()
		if w == nil || w.GetMessage() != "" || c.GetRestartCount() != 0 ||
			(w.GetReason() != reasons.ContainerCreating && w.GetReason() != reasons.PodInitializing) {
			return false
		}
	}
	return true
}

// reject fails a pod bound to the node that no device can take for want of
// room, as a kubelet rejects a pod it cannot admit (OutOfcpu, OutOfpods, …):
// the pod's controller replaces it and the scheduler, which sees the node's
// allocatable, places the replacement where there is room. Pods that ran on
// a device of the cluster before are never rejected: they wait.
func (n *accountNode) reject(uid string, adm placement.Admission) {
	n.mu.Lock()
	st, ok := n.byUID[uid]
	if !ok {
		n.mu.Unlock()
		return
	}
	st.failed, st.waiting = true, ""
	pod := st.pod.DeepCopy()
	n.mu.Unlock()
	n.m.log.Info("pod rejected: no device has room", "pod", pod.Namespace+"/"+pod.Name, "node", n.name, "reason", adm.Reject)
	n.recorder.Event(pod, corev1.EventTypeWarning, adm.Reject, adm.Message)
	n.setStatus(uid, translate.FailedStatus(pod, adm.Reject, adm.Message, time.Now()))
}

func (n *accountNode) wait(uid, reason, message string) {
	n.mu.Lock()
	st, ok := n.byUID[uid]
	if !ok {
		n.mu.Unlock()
		return
	}
	first := st.waiting != reason
	st.waiting = reason
	pod := st.pod.DeepCopy()
	n.mu.Unlock()
	if first {
		n.recorder.Event(pod, corev1.EventTypeWarning, eventReason(reason), message)
	}
	n.setStatus(uid, translate.PendingStatus(pod, reason, message, time.Now()))
}

func eventReason(waiting string) string {
	switch waiting {
	case efv1.ReasonUnschedulable:
		return efv1.ReasonFailedScheduling
	case reasons.CreateContainerConfigError:
		return reasons.Failed
	}
	return waiting
}

// retry places the pods that are waiting for a device or for their config.
func (n *accountNode) retry() {
	n.mu.Lock()
	var uids []string
	for uid, st := range n.byUID {
		if st.waiting != "" && !st.deleting && !st.failed {
			uids = append(uids, uid)
		}
	}
	n.mu.Unlock()
	for _, uid := range uids {
		n.place(context.Background(), uid)
	}
}

// refreshVolumes sends the placed pods whose volumes hold config map, secret
// or downward API data again, translated from the informers' current objects:
// a workload whose volume contents changed reaches its device, which swaps
// the files in place (the fabric drops unchanged workloads). A pod whose
// volumes no longer resolve keeps what its device has, as the kubelet does.
func (n *accountNode) refreshVolumes() {
	type placed struct {
		uid  string
		pod  *corev1.Pod
		dev  string
		sent *hubv1.Workload
	}
	var pods []placed
	n.mu.Lock()
	for uid, st := range n.byUID {
		if st.device == "" || st.waiting != "" || st.failed || st.deleting || st.sent == nil || !hasDataVolumes(st.pod) {
			continue
		}
		pods = append(pods, placed{uid, st.pod.DeepCopy(), st.device, st.sent})
	}
	n.mu.Unlock()
	for _, p := range pods {
		ip := p.pod.Status.HostIP
		if d, ok := n.m.fab.Device(n.account, p.dev); ok && d.IP() != "" {
			ip = d.IP()
		}
		w, err := translate.Workload(p.pod, envSource{n.m}, ip)
		if err != nil || w.GetVolumesHash() == p.sent.GetVolumesHash() {
			continue
		}
		if w.GetSpecHash() != p.sent.GetSpecHash() {
			// Something else the pod refers to changed too (env from a
			// ConfigMap, say): as on a kubelet, that reaches the containers
			// when they are created again, not now. Only the volumes change.
			upd := proto.Clone(p.sent).(*hubv1.Workload)
			upd.Volumes, upd.VolumesHash = w.GetVolumes(), w.GetVolumesHash()
			w = upd
		}
		w.FencingEpoch = p.sent.GetFencingEpoch() // the same assignment
		n.fenceGrace(p.pod, w)
		n.mu.Lock()
		st, ok := n.byUID[p.uid]
		current := ok && st.sent == p.sent && st.device == p.dev && !st.deleting
		if current {
			st.sent = w
		}
		n.mu.Unlock()
		if current {
			n.m.fab.Assign(n.account, p.dev, w)
		}
	}
}

func hasDataVolumes(pod *corev1.Pod) bool {
	for _, v := range pod.Spec.Volumes {
		if v.ConfigMap != nil || v.Secret != nil || v.Projected != nil || v.DownwardAPI != nil {
			return true
		}
	}
	return false
}

// devicesChanged tells run's goroutines that the node's status may have
// changed and waiting pods may fit now. It never blocks.
func (n *accountNode) devicesChanged() {
	for _, c := range []chan struct{}{n.nodeChanged, n.retryNow} {
		select {
		case c <- struct{}{}:
		default:
		}
	}
}

// UpdatePod sends a changed pod to its device.
func (n *accountNode) UpdatePod(ctx context.Context, pod *corev1.Pod) error {
	uid := string(pod.UID)
	n.mu.Lock()
	st, ok := n.byUID[uid]
	if !ok {
		n.mu.Unlock()
		return n.CreatePod(ctx, pod)
	}
	st.pod.ObjectMeta = pod.ObjectMeta
	st.pod.Spec = pod.Spec
	placed := st.device != "" && st.waiting == "" && !st.failed && !st.deleting
	n.mu.Unlock()
	if placed {
		n.place(ctx, uid)
	}
	return nil
}

// DeletePod stops the pod on its device. The pod is reported terminated once
// the device confirms, or at once when the device is not connected.
func (n *accountNode) DeletePod(ctx context.Context, pod *corev1.Pod) error {
	uid := string(pod.UID)
	n.mu.Lock()
	st, ok := n.byUID[uid]
	if !ok {
		n.mu.Unlock()
		return errdefs.NotFoundf("pod %s/%s is not known to node %s", pod.Namespace, pod.Name, n.name)
	}
	st.deleting = true
	st.pod.ObjectMeta = pod.ObjectMeta
	n.mu.Unlock()
	_, online := n.m.fab.Remove(uid)
	if !online {
		n.finishDelete(uid, nil)
	}
	return nil
}

// finishDelete reports the pod terminated and forgets it.
func (n *accountNode) finishDelete(uid string, last *hubv1.WorkloadStatus) {
	n.mu.Lock()
	st, ok := n.byUID[uid]
	if !ok {
		n.mu.Unlock()
		return
	}
	pod := st.pod.DeepCopy()
	n.mu.Unlock()
	now := time.Now()
	status := terminalStatus(pod, last, now)
	n.setStatus(uid, status)
	if pod.DeletionTimestamp != nil {
		// As the kubelet does once a deleted pod's containers have stopped:
		// remove the object now rather than at the end of its grace period.
		n.m.wg.Add(1)
		go func() {
			defer n.m.wg.Done()
			n.m.removePod(pod)
		}()
	}
	n.m.fab.Forget(uid)
	n.m.track(uid, nil)
	n.mu.Lock()
	delete(n.byUID, uid)
	if n.byKey[pod.Namespace+"/"+pod.Name] == uid {
		delete(n.byKey, pod.Namespace+"/"+pod.Name)
	}
	n.mu.Unlock()
}

// terminalStatus is the last status of a deleted pod: every container
// terminated (as the device reported, else with reason Killed) and a terminal
// phase, so virtual-kubelet removes the pod at once.
func terminalStatus(pod *corev1.Pod, last *hubv1.WorkloadStatus, now time.Time) corev1.PodStatus {
	ws := &hubv1.WorkloadStatus{Uid: string(pod.UID)}
	if last != nil {
		ws = last
	}
	reported := map[string]*hubv1.ContainerStatus{}
	for _, c := range ws.GetContainers() {
		reported[c.GetName()] = c
	}
	phase := "Succeeded"
	var cs []*hubv1.ContainerStatus
	for _, c := range pod.Spec.Containers {
		r := reported[c.Name]
		if r == nil || r.GetState().GetTerminated() == nil {
			r = &hubv1.ContainerStatus{Name: c.Name, RestartCount: r.GetRestartCount(), ImageId: r.GetImageId(), State: &hubv1.ContainerState{
				State: &hubv1.ContainerState_Terminated_{Terminated: &hubv1.ContainerState_Terminated{
					ExitCode: 137, Reason: reasons.Killed, Message: "pod deleted", FinishedAt: timestamppb.New(now),
				}},
			}}
		}
		if r.GetState().GetTerminated().GetExitCode() != 0 {
			phase = "Failed"
		}
		cs = append(cs, r)
	}
	out := &hubv1.WorkloadStatus{Uid: ws.GetUid(), Containers: cs, Phase: phase, PodIp: ws.GetPodIp(), StartTime: ws.GetStartTime()}
	return translate.PodStatus(pod, out, pod.Status.HostIP, now)
}

func (n *accountNode) workloadStatus(uid string, ws *hubv1.WorkloadStatus) {
	n.mu.Lock()
	st, ok := n.byUID[uid]
	if !ok || (ws.GetSeq() != 0 && ws.GetSeq() < st.seq) {
		n.mu.Unlock()
		return
	}
	st.seq = max(ws.GetSeq(), 1)
	deleting := st.deleting
	pod := st.pod.DeepCopy()
	dev := st.device
	n.mu.Unlock()

	if deleting {
		if allTerminated(pod, ws) {
			n.finishDelete(uid, ws)
		}
		return
	}
	if n.wrongPlatform(uid, dev, ws) {
		return
	}
	ws, ip := n.checkPodIP(pod, dev, ws)
	status := translate.PodStatus(pod, ws, ip, time.Now())
	n.mu.Lock()
	if st, ok := n.byUID[uid]; ok && st.device == dev && st.creatingDue {
		if onlyCreating(ws) {
			st.held = &status
			n.mu.Unlock()
			return
		}
		st.creatingDue, st.held = false, nil
	}
	n.mu.Unlock()
	n.setStatus(uid, status)
}

// wrongPlatform handles a device that cannot pull a container's image because
// the image is not for its os/arch: it remembers the image's platforms, so
// that placement filters on them from now on, and has the retry loop place
// the pod again on a device that can run it (or leave it Pending, saying
// why). It reports whether it did. A device whose os/arch is among the
// platforms it reports (a variant it lacks, say) is left to report
// ErrImagePull. It runs in the fabric's listener call, so it must not call
// the fabric.
func (n *accountNode) wrongPlatform(uid, dev string, ws *hubv1.WorkloadStatus) bool {
	var ref string
	var platforms []string
	for _, c := range append(slices.Clone(ws.GetInitContainers()), ws.GetContainers()...) {
		if len(c.GetImagePlatforms()) > 0 {
			ref, platforms = c.GetImage(), c.GetImagePlatforms()
			break
		}
	}
	if ref == "" {
		return false
	}
	d, ok := n.m.fab.Device(n.account, dev)
	if !ok || slices.Contains(platforms, d.OS+"/"+d.Arch) {
		return false
	}
	n.m.setImagePlatforms(ref, platforms)
	n.m.log.Info("device cannot run the image", "device", dev, "platform", d.OS+"/"+d.Arch, "image", ref, "imagePlatforms", platforms)
	n.mu.Lock()
	if st, ok := n.byUID[uid]; ok && st.device == dev {
		st.misplaced = dev
	}
	n.mu.Unlock()
	select {
	case n.retryNow <- struct{}{}:
	default:
	}
	return true
}

// unassign takes a pod off its device (in the fabric, and in its state if
// it is still on that device) before it is placed again, and reports whether
// the pod is still known.
func (n *accountNode) unassign(uid, device string) bool {
	n.m.fab.Remove(uid)
	n.mu.Lock()
	defer n.mu.Unlock()
	st, ok := n.byUID[uid]
	if ok && st.device == device {
		st.device, st.seq = "", 0
	}
	return ok
}

// moveMisplaced places again the pods whose device cannot run their image.
func (n *accountNode) moveMisplaced() {
	type move struct {
		uid, device string
		pod         *corev1.Pod
	}
	var moves []move
	n.mu.Lock()
	for uid, st := range n.byUID {
		if st.misplaced != "" && st.misplaced == st.device && !st.deleting {
			moves = append(moves, move{uid, st.device, st.pod.DeepCopy()})
		}
		st.misplaced = ""
	}
	n.mu.Unlock()
	for _, mv := range moves {
		if !n.unassign(mv.uid, mv.device) {
			continue
		}
		n.m.log.Info("placing pod again: its device cannot run its image", "pod", mv.pod.Namespace+"/"+mv.pod.Name, "device", mv.device)
		d, _ := n.m.fab.Device(n.account, mv.device)
		images := []string{}
		for _, c := range mv.pod.Spec.Containers {
			images = append(images, c.Image)
		}
		n.recorder.Eventf(mv.pod, corev1.EventTypeWarning, efv1.ReasonImagePlatform, "Device %s (%s/%s) cannot run image %s: placing the pod on a device that can",
			mv.device, d.OS, d.Arch, strings.Join(images, ", "))
		n.place(context.Background(), mv.uid)
	}
}

func allTerminated(pod *corev1.Pod, ws *hubv1.WorkloadStatus) bool {
	if ws.GetPhase() == "Succeeded" || ws.GetPhase() == "Failed" {
		return true
	}
	term := 0
	for _, c := range ws.GetContainers() {
		if c.GetState().GetTerminated() != nil {
			term++
		}
	}
	return term >= len(pod.Spec.Containers)
}

func (n *accountNode) workloadEvent(uid string, ev *hubv1.Event) {
	n.mu.Lock()
	st, ok := n.byUID[uid]
	var pod *corev1.Pod
	if ok {
		pod = st.pod.DeepCopy()
	}
	n.mu.Unlock()
	if pod == nil {
		return
	}
	typ := ev.GetType()
	if typ != corev1.EventTypeWarning {
		typ = corev1.EventTypeNormal
	}
	n.recorder.Event(pod, typ, ev.GetReason(), ev.GetMessage())
}

// setStatus records status for the pod and tells virtual-kubelet.
func (n *accountNode) setStatus(uid string, status corev1.PodStatus) {
	n.mu.Lock()
	st, ok := n.byUID[uid]
	if !ok {
		n.mu.Unlock()
		return
	}
	st.pod.Status = status
	pod := st.pod.DeepCopy()
	cb := n.notifyPod
	n.mu.Unlock()
	if cb != nil {
		cb(pod)
	}
}

// GetPod returns the pod as the provider sees it.
func (n *accountNode) GetPod(_ context.Context, namespace, name string) (*corev1.Pod, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	uid, ok := n.byKey[namespace+"/"+name]
	if !ok {
		return nil, errdefs.NotFoundf("pod %s/%s not found on %s", namespace, name, n.name)
	}
	return n.byUID[uid].pod.DeepCopy(), nil
}

// GetPodStatus returns the pod's status as the provider sees it.
func (n *accountNode) GetPodStatus(ctx context.Context, namespace, name string) (*corev1.PodStatus, error) {
	p, err := n.GetPod(ctx, namespace, name)
	if err != nil {
		return nil, err
	}
	return &p.Status, nil
}

// GetPods returns every pod of the node.
func (n *accountNode) GetPods(context.Context) ([]*corev1.Pod, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]*corev1.Pod, 0, len(n.byUID))
	for _, st := range n.byUID {
		out = append(out, st.pod.DeepCopy())
	}
	return out, nil
}

// NotifyPods implements vknode.PodNotifier.
func (n *accountNode) NotifyPods(_ context.Context, cb func(*corev1.Pod)) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.notifyPod = cb
}

// Ping implements vknode.NodeProvider.
func (n *accountNode) Ping(ctx context.Context) error { return ctx.Err() }

// NotifyNodeStatus implements vknode.NodeProvider. The node controller calls
// it before it starts its loop; the status sent here fills the one slot its
// callback has. Later statuses are sent by sendNodeStatus.
func (n *accountNode) NotifyNodeStatus(_ context.Context, cb func(*corev1.Node)) {
	node := n.nodeStatus()
	n.mu.Lock()
	n.notifyNode, n.lastNode = cb, node
	n.mu.Unlock()
	cb(node.DeepCopy())
}

func (n *accountNode) initialNode() *corev1.Node {
	return n.nodeStatus()
}

// placeOptions narrows placement to the cluster's members and the pod's
// device selector, and spreads the replicas of the pod's owner.
func (n *accountNode) placeOptions(pod *corev1.Pod) (fabric.PlaceOptions, error) {
	opts := fabric.PlaceOptions{Members: n.memberList(), Platforms: n.m.podPlatforms(pod)}
	if opts.Platforms != nil && len(opts.Platforms) == 0 {
		return opts, errors.New("the pod's images have no os/arch platform in common")
	}
	if s, ok := pod.Annotations[efv1.AnnotationDeviceSelector]; ok {
		sel, err := labels.Parse(s)
		if err != nil {
			return opts, fmt.Errorf("annotation %s: %w", efv1.AnnotationDeviceSelector, err)
		}
		opts.Selector = sel
	}
	if owner := metav1.GetControllerOf(pod); owner != nil {
		counts := map[string]int{}
		n.mu.Lock()
		for _, st := range n.byUID {
			if st.device == "" || st.deleting || st.pod.UID == pod.UID {
				continue
			}
			if o := metav1.GetControllerOf(st.pod); o != nil && o.UID == owner.UID {
				counts[st.device]++
			}
		}
		n.mu.Unlock()
		opts.SameOwner = func(d string) int { return counts[d] }
	}
	return opts, nil
}

// memberList returns the cluster's members, nil for every device of the account.
func (n *accountNode) memberList() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.members == nil {
		return nil
	}
	return slices.Clone(n.members)
}

// setMembers records the cluster's members, what its ID was chosen for and
// whether it is formed, and reports whether anything changed. The members
// of a dissolved cluster stay as they were.
func (n *accountNode) setMembers(members []string, claim string, dissolved bool, now time.Time) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	changed := false
	if !dissolved && (n.members == nil || !slices.Equal(n.members, members)) {
		for _, d := range n.members {
			if !slices.Contains(members, d) {
				if n.left == nil {
					n.left = map[string]time.Time{}
				}
				n.left[d] = now
			}
		}
		for _, d := range members {
			delete(n.left, d)
		}
		n.members, changed = slices.Clone(members), true
		if n.members == nil {
			n.members = []string{}
		}
	}
	if !dissolved && claim != "" {
		n.claim = claim
	}
	switch {
	case dissolved && n.dissolved.IsZero():
		n.dissolved, changed = now, true
	case !dissolved && !n.dissolved.IsZero():
		n.dissolved, changed = time.Time{}, true
	}
	return changed
}

// cluster returns the network or proximity cluster the node stands for, as
// it was last formed; false for the account's node and before it was.
func (n *accountNode) cluster() (fabric.Cluster, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.key.Scope == scopes.Account || n.members == nil {
		return fabric.Cluster{}, false
	}
	return fabric.Cluster{ClusterKey: n.key, Members: slices.Clone(n.members), Claim: n.claim}, true
}

// devices returns the cluster's devices.
func (n *accountNode) devices() []fabric.Device {
	devs := n.m.fab.Devices(n.account)
	members := n.memberList()
	if members == nil {
		return devs
	}
	return slices.DeleteFunc(devs, func(d fabric.Device) bool { return !slices.Contains(members, d.ID) })
}

// nodeStatus is the node object for the cluster's current devices.
//
// Capacity is the sum over the connected members. Allocatable, which the
// scheduler fits pods into, is each connected member's capacity less what
// the pods of other nodes hold on it: a device backs several nodes (its
// account's, its network cluster's, a proximity cluster's), and each would
// otherwise offer the scheduler the whole device.
func (n *accountNode) nodeStatus() *corev1.Node {
	devs := n.devices()
	n.mu.Lock()
	dissolved := !n.dissolved.IsZero()
	own := n.heldLocked()
	var members []string
	if n.key.Scope != scopes.Account {
		members = slices.Clone(n.members)
	}
	claim := n.claim
	n.mu.Unlock()
	var cpu, mem, pods int64
	var free placement.Resources
	var online []fabric.Device
	oses, arches := map[string]bool{}, map[string]bool{}
	for _, d := range devs {
		if d.OS != "" {
			// Known devices, online or not, so the labels do not flap.
			oses[d.OS], arches[d.Arch] = true, true
		}
		if !d.Online {
			continue
		}
		online = append(online, d)
		cpu += d.Capacity.CPUMillis
		mem += d.Capacity.MemoryBytes
		pods += d.Capacity.Pods
		mine := own[d.ID]
		free.CPUMillis += max(0, d.Capacity.CPUMillis-(d.Allocated.CPUMillis-mine.CPUMillis))
		free.MemoryBytes += max(0, d.Capacity.MemoryBytes-(d.Allocated.MemoryBytes-mine.MemoryBytes))
		free.Pods += max(0, d.Capacity.Pods-(d.Allocated.Pods-mine.Pods))
	}
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    *resource.NewMilliQuantity(cpu, resource.DecimalSI),
		corev1.ResourceMemory: *resource.NewQuantity(mem, resource.BinarySI),
		corev1.ResourcePods:   *resource.NewQuantity(pods, resource.DecimalSI),
	}
	allocatable := corev1.ResourceList{
		corev1.ResourceCPU:    *resource.NewMilliQuantity(free.CPUMillis, resource.DecimalSI),
		corev1.ResourceMemory: *resource.NewQuantity(free.MemoryBytes, resource.BinarySI),
		corev1.ResourcePods:   *resource.NewQuantity(free.Pods, resource.DecimalSI),
	}
	labels := map[string]string{
		"type":                   "virtual-kubelet",
		"kubernetes.io/role":     "edge",
		"kubernetes.io/hostname": n.name,
		efv1.LabelAccount:        n.account,
		efv1.LabelScope:          string(scopes.Account),
		efv1.LabelCluster:        n.name,
	}
	if n.key.Scope != scopes.Account {
		labels[efv1.LabelScope], labels[efv1.LabelCluster] = string(n.key.Scope), n.key.ID
	}
	osName, arch := "", ""
	if len(oses) == 1 {
		for k := range oses {
			osName = k
		}
		labels["kubernetes.io/os"] = osName
	}
	if len(arches) == 1 {
		for k := range arches {
			arch = k
		}
		labels["kubernetes.io/arch"] = arch
	}
	ready := corev1.ConditionFalse
	reason, msg := efv1.ReasonNoDeviceConnected, fmt.Sprintf("0/%d devices of account %s are connected", len(devs), n.account)
	if n.key.Scope != scopes.Account {
		msg = fmt.Sprintf("0/%d devices of %s cluster %s are connected", len(devs), n.key.Scope, n.key.ID)
	}
	switch {
	case dissolved:
		reason, msg = efv1.ReasonClusterDissolved, fmt.Sprintf("%s cluster %s is no longer formed by any device", n.key.Scope, n.key.ID)
	case len(online) > 0:
		ready = corev1.ConditionTrue
		reason = efv1.ReasonDevicesReady
		msg = fmt.Sprintf("%d/%d devices ready: %s", len(online), len(devs), deviceNames(online))
	}
	now := metav1.Now()
	cond := func(t corev1.NodeConditionType, s corev1.ConditionStatus, reason, msg string) corev1.NodeCondition {
		return corev1.NodeCondition{Type: t, Status: s, Reason: reason, Message: msg, LastHeartbeatTime: now, LastTransitionTime: now}
	}
	var annotations map[string]string
	if members != nil {
		annotations = map[string]string{efv1.AnnotationClusterMembers: strings.Join(members, ",")}
		if claim != "" {
			annotations[efv1.AnnotationClusterClaim] = claim
		}
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: n.name, Labels: labels, Annotations: annotations},
		Spec: corev1.NodeSpec{
			Taints: []corev1.Taint{{Key: efv1.TaintKey, Value: efv1.TaintValue, Effect: corev1.TaintEffectNoSchedule}},
		},
		Status: corev1.NodeStatus{
			Phase:       corev1.NodeRunning,
			Capacity:    capacity,
			Allocatable: allocatable,
			Conditions: []corev1.NodeCondition{
				cond(corev1.NodeReady, ready, reason, msg),
				cond(corev1.NodeMemoryPressure, corev1.ConditionFalse, efv1.ReasonNoPressure, ""),
				cond(corev1.NodeDiskPressure, corev1.ConditionFalse, efv1.ReasonNoPressure, ""),
				cond(corev1.NodePIDPressure, corev1.ConditionFalse, efv1.ReasonNoPressure, ""),
				cond(corev1.NodeNetworkUnavailable, corev1.ConditionFalse, efv1.ReasonRouteCreated, ""),
			},
			Addresses: []corev1.NodeAddress{
				{Type: corev1.NodeInternalIP, Address: n.m.cfg.NodeIP},
				{Type: corev1.NodeHostName, Address: n.name},
			},
			DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: n.publishedKubeletPort()}},
			NodeInfo: corev1.NodeSystemInfo{
				OperatingSystem: osName,
				Architecture:    arch,
				KubeletVersion:  n.m.cfg.Version,
				OSImage:         "edgefabric",
			},
		},
	}
}

// heldLocked returns what the node's pods hold on each device, as the
// fabric counts it in a device's Allocated: the pods given to a device and
// not being deleted.
func (n *accountNode) heldLocked() map[string]placement.Resources {
	out := map[string]placement.Resources{}
	for _, st := range n.byUID {
		if st.device == "" || st.sent == nil || st.deleting {
			continue
		}
		r, h := fabric.Requests(st.sent), out[st.device]
		h.CPUMillis += r.CPUMillis
		h.MemoryBytes += r.MemoryBytes
		h.Pods += r.Pods
		out[st.device] = h
	}
	return out
}

func deviceNames(ds []fabric.Device) string {
	names := make([]string, 0, len(ds))
	for _, d := range ds {
		names = append(names, d.ID)
	}
	sort.Strings(names)
	if len(names) > 10 {
		names = append(names[:10], "…")
	}
	return strings.Join(names, ", ")
}

// logs streams a container's logs if the pod is this node's.
func (n *accountNode) logs(ctx context.Context, namespace, name, container string, opts api.ContainerLogOpts) (io.ReadCloser, bool, error) {
	n.mu.Lock()
	uid, ok := n.byKey[namespace+"/"+name]
	var pod *corev1.Pod
	if ok {
		pod = n.byUID[uid].pod.DeepCopy()
	}
	n.mu.Unlock()
	if !ok {
		return nil, false, nil
	}
	if container == "" && len(pod.Spec.Containers) == 1 {
		container = pod.Spec.Containers[0].Name
	}
	if !slices.ContainsFunc(slices.Concat(pod.Spec.InitContainers, pod.Spec.Containers), func(c corev1.Container) bool { return c.Name == container }) {
		return nil, true, errdefs.InvalidInputf("container %q is not valid for pod %s/%s", container, namespace, name)
	}
	req := &hubv1.StreamRequest{Container: container, Kind: &hubv1.StreamRequest_Logs{Logs: &hubv1.LogOptions{
		Follow:       opts.Follow,
		TailLines:    tail(opts.Tail),
		SinceSeconds: int64(opts.SinceSeconds),
		Timestamps:   opts.Timestamps,
		Previous:     opts.Previous,
		LimitBytes:   int64(opts.LimitBytes),
	}}}
	if !opts.SinceTime.IsZero() {
		req.GetLogs().SinceTime = timestamppb.New(opts.SinceTime)
	}
	openCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	s, err := n.m.fab.OpenStream(openCtx, uid, req)
	if err != nil {
		return nil, true, errdefs.AsNotFound(fmt.Errorf("logs of %s/%s: %w", namespace, name, err))
	}
	return peek(s, firstFrameWait)
}

// firstFrameWait is how long a log request waits for the device's first
// answer before the response starts, so that a refusal (no previous
// container, say) can still become an error status instead of a broken body.
const firstFrameWait = 2 * time.Second

// peek waits up to firstFrameWait for the stream's first read. An error that
// comes first is returned as a bad request, as the kubelet answers; otherwise
// the stream is returned with what was read still to be read.
func peek(s *fabric.Stream, wait time.Duration) (io.ReadCloser, bool, error) {
	p := &peekedStream{s: s, first: make(chan firstRead, 1)}
	go func() {
		buf := make([]byte, 32<<10)
		n, err := s.Read(buf)
		p.first <- firstRead{data: buf[:n], err: err}
	}()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case r := <-p.first:
		if len(r.data) == 0 && r.err != nil && !errors.Is(r.err, io.EOF) {
			s.Close()
			return nil, true, errdefs.InvalidInput(r.err.Error())
		}
		p.got, p.pending, p.err = true, r.data, r.err
	case <-t.C:
		// A follow of a quiet container: answer now, data comes later.
	}
	return p, true, nil
}

type firstRead struct {
	data []byte
	err  error
}

// peekedStream yields the first read, then the rest of the stream.
type peekedStream struct {
	s       *fabric.Stream
	first   chan firstRead
	got     bool
	pending []byte
	err     error
}

func (p *peekedStream) Read(b []byte) (int, error) {
	if !p.got {
		r := <-p.first
		p.got, p.pending, p.err = true, r.data, r.err
	}
	if len(p.pending) > 0 {
		n := copy(b, p.pending)
		p.pending = p.pending[n:]
		return n, nil
	}
	if p.err != nil {
		return 0, p.err
	}
	return p.s.Read(b)
}

func (p *peekedStream) Close() error { return p.s.Close() }

// tail maps virtual-kubelet's tail (0 = unset) to the wire's (-1 = all).
func tail(t int) int64 {
	if t <= 0 {
		return -1
	}
	return int64(t)
}

func notFound(format string, args ...any) error {
	return errdefs.NotFound(fmt.Sprintf(format, args...))
}
