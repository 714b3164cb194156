package node

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	efv1 "github.com/edgefabric/edgefabric/pkg/apis/edgefabric/v1alpha1"
	"github.com/edgefabric/edgefabric/pkg/provider/fabric"
	"github.com/edgefabric/edgefabric/pkg/provider/placement"
	"github.com/edgefabric/edgefabric/pkg/scopes"
)

// sendNodeStatus gives the node controller the node's status whenever
// devicesChanged says it may have changed and it did, until ctx ends. The
// controller writes each one to the API server (a GET and a PATCH), one at a
// time: the status must not be sent on every change of the fabric, and never
// from a caller that holds up others (the fabric's listener calls, a pod
// sync worker).
func (n *clusterNode) sendNodeStatus(ctx context.Context) {
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
		case <-n.m.clock.After(nodeStatusInterval):
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
func (n *clusterNode) dropLabels(ctx context.Context, was, now map[string]string) {
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

// Ping implements vknode.NodeProvider.
func (n *clusterNode) Ping(ctx context.Context) error { return ctx.Err() }

// NotifyNodeStatus implements vknode.NodeProvider. The node controller calls
// it before it starts its loop; the status sent here fills the one slot its
// callback has. Later statuses are sent by sendNodeStatus.
func (n *clusterNode) NotifyNodeStatus(_ context.Context, cb func(*corev1.Node)) {
	node := n.nodeStatus()
	n.mu.Lock()
	n.notifyNode, n.lastNode = cb, node
	n.mu.Unlock()
	cb(node.DeepCopy())
}

func (n *clusterNode) initialNode() *corev1.Node {
	return n.nodeStatus()
}

// nodeStatus is the node object for the cluster's current devices.
//
// Capacity is the sum over the connected members. Allocatable, which the
// scheduler fits pods into, is each connected member's capacity less what
// the pods of other nodes hold on it: a device backs several nodes (its
// account's, its network cluster's, a proximity cluster's), and each would
// otherwise offer the scheduler the whole device.
func (n *clusterNode) nodeStatus() *corev1.Node {
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
	now := metav1.NewTime(n.m.clock.Now())
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
func (n *clusterNode) heldLocked() map[string]placement.Resources {
	out := map[string]placement.Resources{}
	for _, st := range n.byUID {
		if !st.Placed() {
			continue
		}
		r, h := fabric.Requests(st.Sent), out[st.Device]
		h.CPUMillis += r.CPUMillis
		h.MemoryBytes += r.MemoryBytes
		h.Pods += r.Pods
		out[st.Device] = h
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
