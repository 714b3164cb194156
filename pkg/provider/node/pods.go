package node

import (
	"context"
	"errors"
	"fmt"

	"github.com/virtual-kubelet/virtual-kubelet/errdefs"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	efv1 "github.com/edgefabric/edgefabric/pkg/apis/edgefabric/v1alpha1"
	hubv1 "github.com/edgefabric/edgefabric/pkg/apis/hub/v1"
	"github.com/edgefabric/edgefabric/pkg/apis/hub/v1/reasons"
	"github.com/edgefabric/edgefabric/pkg/provider/fabric"
	"github.com/edgefabric/edgefabric/pkg/provider/node/lifecycle"
	"github.com/edgefabric/edgefabric/pkg/provider/translate"
)

// effects are the actions of one lifecycle step, for the pod uid as the
// step left it (pod is nil for a pod the node does not know).
type effects struct {
	uid     string
	pod     *corev1.Pod
	actions []lifecycle.Action
}

// stepLocked steps the pod's lifecycle with ev and records its new state;
// n.mu is held. The actions it returns are carried out by apply, after
// n.mu is released.
func (n *clusterNode) stepLocked(uid string, ev lifecycle.Event) effects {
	before := n.byUID[uid]
	p, actions := lifecycle.Step(n.m.lifecycle, before, ev, n.m.clock.Now())
	switch {
	case p.Pod == nil:
	case p.Phase == lifecycle.Gone:
		delete(n.byUID, uid)
		if k := p.Pod.Namespace + "/" + p.Pod.Name; n.byKey[k] == uid {
			delete(n.byKey, k)
		}
	default:
		n.byUID[uid] = p
		if before.Pod == nil {
			n.byKey[p.Pod.Namespace+"/"+p.Pod.Name] = uid
		}
	}
	return effects{uid: uid, pod: p.Pod, actions: actions}
}

// step steps the pod's lifecycle with ev and carries out its actions.
func (n *clusterNode) step(ctx context.Context, uid string, ev lifecycle.Event) {
	n.mu.Lock()
	e := n.stepLocked(uid, ev)
	n.mu.Unlock()
	n.apply(ctx, e)
}

// stepAll steps every pod of the node with ev.
func (n *clusterNode) stepAll(ctx context.Context, ev lifecycle.Event) {
	n.mu.Lock()
	var all []effects
	for uid := range n.byUID {
		if e := n.stepLocked(uid, ev); len(e.actions) > 0 {
			all = append(all, e)
		}
	}
	n.mu.Unlock()
	for _, e := range all {
		n.apply(ctx, e)
	}
}

// apply carries out the actions of a step, in order. Actions that have a
// result (placement, an unconfirmed removal, a failed eviction) step the
// pod again with it.
func (n *clusterNode) apply(ctx context.Context, e effects) {
	for _, a := range e.actions {
		switch a := a.(type) {
		case lifecycle.Assign:
			n.m.fab.Assign(n.account, a.Device, a.Workload)
		case lifecycle.Unassign:
			if _, online := n.m.fab.Remove(e.uid); a.Confirm && !online {
				n.step(ctx, e.uid, lifecycle.Unreachable{})
			}
		case lifecycle.Place:
			if ev := n.place(e.uid, a); ev != nil {
				n.step(ctx, e.uid, ev)
			}
		case lifecycle.WriteStatus:
			n.queueStatus(a.Pod)
		case lifecycle.Record:
			n.recorder.Event(e.pod, a.Type, a.Reason, a.Message)
		case lifecycle.Log:
			args := append([]any{"node", n.name}, a.Args...)
			if a.Warn {
				n.m.log.Warn(a.Msg, args...)
			} else {
				n.m.log.Info(a.Msg, args...)
			}
		case lifecycle.StartCreating:
			uid, dev := e.uid, a.Device
			n.m.clock.AfterFunc(a.After, func() { n.step(context.Background(), uid, lifecycle.CreatingDue{Device: dev}) })
		case lifecycle.LearnPlatforms:
			n.m.setImagePlatforms(a.Image, a.Platforms)
		case lifecycle.Nudge:
			signal(n.retryNow)
		case lifecycle.RemoveObject:
			n.m.wg.Go(func() { n.m.removePod(a.Pod) })
		case lifecycle.Evict:
			if !n.evict(a.Pod) {
				n.step(ctx, e.uid, lifecycle.EvictFailed{})
			}
		case lifecycle.Forget:
			n.m.fab.Forget(e.uid)
			n.m.track(e.uid, nil)
		default:
			panic(fmt.Sprintf("node: unknown lifecycle action %T", a))
		}
	}
}

// place carries out a Place action: the pod's translation for its device,
// or placement's choice of one. It returns the result to step the pod with
// (nil if the pod is gone).
func (n *clusterNode) place(uid string, a lifecycle.Place) lifecycle.Event {
	n.mu.Lock()
	pod := n.byUID[uid].Pod
	n.mu.Unlock()
	if pod == nil {
		return nil
	}
	if a.Device != "" {
		ip := ""
		if d, ok := n.m.fab.Device(n.account, a.Device); ok {
			ip = d.IP()
		}
		if ip == "" {
			ip = pod.Status.HostIP // not connected since the provider started
		}
		w, err := translate.Workload(pod, envSource{n.m}, ip)
		if err != nil {
			return lifecycle.Unplaceable{Reason: reasons.CreateContainerConfigError, Message: err.Error()}
		}
		return lifecycle.Placed{Device: a.Device, Workload: w}
	}
	w, needsIP, err := translate.Unplaced(pod, envSource{n.m})
	if err != nil {
		return lifecycle.Unplaceable{Reason: reasons.CreateContainerConfigError, Message: err.Error()}
	}
	opts, err := n.placeOptions(pod)
	if err != nil {
		return lifecycle.Unplaceable{Reason: efv1.ReasonUnschedulable, Message: err.Error()}
	}
	dev, why := n.m.fab.PlaceWith(n.account, w, opts)
	if dev == "" {
		if a.MayReject {
			if adm := n.m.fab.Admissible(n.account, w, opts); adm.Reject != "" {
				return lifecycle.Rejected{Reason: adm.Reject, Message: adm.Message}
			}
		}
		return lifecycle.Unplaceable{Reason: efv1.ReasonUnschedulable, Message: why}
	}
	// Translated once, unless the workload refers to its device's address.
	if d, ok := n.m.fab.Device(n.account, dev); ok && d.IP() != "" && needsIP {
		if w, err = translate.Workload(pod, envSource{n.m}, d.IP()); err != nil {
			n.m.fab.Remove(uid) // give up the device's room PlaceWith held
			return lifecycle.Unplaceable{Reason: reasons.CreateContainerConfigError, Message: err.Error()}
		}
	}
	// The device is recorded on the pod by the status write that follows
	// (pods/status takes annotation changes, and virtual-kubelet writes the
	// pod as GetPod returns it). A patch of its own would hold this pod sync
	// worker for an API round trip per pod and cost the API server a write:
	// under a burst of pods it was most of their start latency
	// (docs/benchmarks.md).
	return lifecycle.Placed{Device: dev, Workload: w, Chosen: true}
}

// placeOptions narrows placement to the cluster's members and the pod's
// device selector, and spreads the replicas of the pod's owner.
func (n *clusterNode) placeOptions(pod *corev1.Pod) (fabric.PlaceOptions, error) {
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
			if st.Device == "" || st.Phase == lifecycle.Deleting || st.Pod.UID == pod.UID {
				continue
			}
			if o := metav1.GetControllerOf(st.Pod); o != nil && o.UID == owner.UID {
				counts[st.Device]++
			}
		}
		n.mu.Unlock()
		opts.SameOwner = func(d string) int { return counts[d] }
	}
	return opts, nil
}

// recover loads the pods Kubernetes has on this node and gives the fabric the
// workloads of those already placed on a device.
func (n *clusterNode) recover(ctx context.Context) error {
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
		n.m.track(string(p.UID), n)
		n.step(ctx, string(p.UID), lifecycle.Recover{Pod: p, Device: dev, Epoch: epoch, Workload: w})
	}
	return nil
}

// CreatePod places pod on a device and sends it there.
func (n *clusterNode) CreatePod(ctx context.Context, pod *corev1.Pod) error {
	uid := string(pod.UID)
	dev, epoch := n.adopt(pod)
	n.m.track(uid, n)
	ev := lifecycle.Create{Pod: pod, Device: dev, Epoch: epoch}
	why, err := n.m.tenancy(ctx, pod.Namespace, n.account)
	ev.Tenancy, ev.TenancyUnknown = why, err != nil
	n.step(ctx, uid, ev)
	if err != nil {
		n.mu.Lock()
		failed := n.byUID[uid].Phase == lifecycle.Failed
		n.mu.Unlock()
		if !failed {
			return err // tried again by the pod controller
		}
	}
	return nil
}

// UpdatePod sends a changed pod to its device.
func (n *clusterNode) UpdatePod(ctx context.Context, pod *corev1.Pod) error {
	uid := string(pod.UID)
	n.mu.Lock()
	_, known := n.byUID[uid]
	n.mu.Unlock()
	if !known {
		return n.CreatePod(ctx, pod)
	}
	n.step(ctx, uid, lifecycle.Update{Pod: pod})
	return nil
}

// DeletePod stops the pod on its device. The pod is reported terminated once
// the device confirms, or at once when the device is not connected.
func (n *clusterNode) DeletePod(ctx context.Context, pod *corev1.Pod) error {
	uid := string(pod.UID)
	n.mu.Lock()
	_, known := n.byUID[uid]
	n.mu.Unlock()
	if !known {
		return errdefs.NotFoundf("pod %s/%s is not known to node %s", pod.Namespace, pod.Name, n.name)
	}
	n.step(ctx, uid, lifecycle.Delete{Pod: pod})
	return nil
}

// workloadStatus takes a device's report on a pod. It runs in the fabric's
// listener call, which must not block: the status it writes is queued.
func (n *clusterNode) workloadStatus(uid string, ws *hubv1.WorkloadStatus) {
	n.mu.Lock()
	st, ok := n.byUID[uid]
	n.mu.Unlock()
	if !ok {
		return
	}
	ev := lifecycle.Report{Status: ws}
	if st.Device != "" {
		if d, ok := n.m.fab.Device(n.account, st.Device); ok {
			ev.Device = lifecycleDevice(d)
		}
	}
	n.step(context.Background(), uid, ev)
}

// lifecycleDevice is what the lifecycle needs of a device.
func lifecycleDevice(d fabric.Device) *lifecycle.Device {
	return &lifecycle.Device{ID: d.ID, OS: d.OS, Arch: d.Arch, Addresses: d.Addresses, Online: d.Online, LastSeen: d.LastSeen}
}

func (n *clusterNode) workloadEvent(uid string, ev *hubv1.Event) {
	n.mu.Lock()
	pod := n.byUID[uid].Pod
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

// refreshVolumes sends the placed pods whose volumes hold config map, secret
// or downward API data again, translated from the informers' current objects:
// a workload whose volume contents changed reaches its device, which swaps
// the files in place (the fabric drops unchanged workloads). A pod whose
// volumes no longer resolve keeps what its device has, as the kubelet does.
func (n *clusterNode) refreshVolumes() {
	n.mu.Lock()
	var pods []lifecycle.Pod
	for _, st := range n.byUID {
		if st.Refreshable() {
			pods = append(pods, st)
		}
	}
	n.mu.Unlock()
	for _, p := range pods {
		ip := p.Pod.Status.HostIP
		if d, ok := n.m.fab.Device(n.account, p.Device); ok && d.IP() != "" {
			ip = d.IP()
		}
		w, err := translate.Workload(p.Pod, envSource{n.m}, ip)
		if err != nil {
			continue
		}
		n.step(context.Background(), string(p.Pod.UID), lifecycle.Refresh{Device: p.Device, Base: p.Sent, Workload: w})
	}
}

// queueStatus queues the pod's new status for virtual-kubelet. The status
// callback may block (the pod controller's queue), and it must not be
// called where the fabric's listener or a pod's lock waits for it:
// sendPodStatuses calls it.
func (n *clusterNode) queueStatus(pod *corev1.Pod) {
	n.mu.Lock()
	n.statuses = append(n.statuses, pod)
	n.mu.Unlock()
	signal(n.statusReady)
}

// sendPodStatuses gives virtual-kubelet the queued pod statuses, in order,
// until ctx ends.
func (n *clusterNode) sendPodStatuses(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.statusReady:
		}
		n.mu.Lock()
		queued, cb := n.statuses, n.notifyPod
		n.statuses = nil
		n.mu.Unlock()
		if cb == nil {
			continue // the pod controller reads them with GetPod when it starts
		}
		for _, pod := range queued {
			cb(pod)
		}
	}
}

// GetPod returns the pod as the provider sees it.
func (n *clusterNode) GetPod(_ context.Context, namespace, name string) (*corev1.Pod, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	uid, ok := n.byKey[namespace+"/"+name]
	if !ok {
		return nil, errdefs.NotFoundf("pod %s/%s not found on %s", namespace, name, n.name)
	}
	return n.byUID[uid].Pod.DeepCopy(), nil
}

// GetPodStatus returns the pod's status as the provider sees it.
func (n *clusterNode) GetPodStatus(ctx context.Context, namespace, name string) (*corev1.PodStatus, error) {
	p, err := n.GetPod(ctx, namespace, name)
	if err != nil {
		return nil, err
	}
	return &p.Status, nil
}

// GetPods returns every pod of the node.
func (n *clusterNode) GetPods(context.Context) ([]*corev1.Pod, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]*corev1.Pod, 0, len(n.byUID))
	for _, st := range n.byUID {
		out = append(out, st.Pod.DeepCopy())
	}
	return out, nil
}

// NotifyPods implements vknode.PodNotifier.
func (n *clusterNode) NotifyPods(_ context.Context, cb func(*corev1.Pod)) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.notifyPod = cb
}
