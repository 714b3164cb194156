package node

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"

	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	efv1 "github.com/edgefabric/edgefabric/pkg/apis/edgefabric/v1alpha1"
	hubv1 "github.com/edgefabric/edgefabric/pkg/apis/hub/v1"
)

// reportedPodIP is the pod IP to publish for a device's report: the IP the
// device reported if it is one of the device's own addresses (as its hello
// gave them), else the device's address. A device is trusted to say which
// of its addresses a pod is served on, never to point a Service's endpoints
// at an address of another machine. rejected is the reported IP when it was
// not taken.
func reportedPodIP(reported string, addresses []string) (ip, rejected string) {
	first := ""
	if len(addresses) > 0 {
		first = addresses[0]
	}
	if reported == "" {
		return first, ""
	}
	if r, err := netip.ParseAddr(reported); err == nil {
		for _, a := range addresses {
			if ad, err := netip.ParseAddr(a); err == nil && ad.Unmap() == r.Unmap() {
				return a, ""
			}
		}
	}
	return first, reported
}

// checkPodIP returns the device's report with a pod IP the device may claim
// (reportedPodIP), and the device's address, the pod's host IP. A rejected
// IP is logged and told in an event.
func (n *accountNode) checkPodIP(pod *corev1.Pod, dev string, ws *hubv1.WorkloadStatus) (*hubv1.WorkloadStatus, string) {
	d, ok := n.m.fab.Device(n.account, dev)
	if !ok {
		// Not connected: its report is not taken as to where the pod is.
		ws = proto.CloneOf(ws)
		ws.PodIp = ""
		return ws, pod.Status.HostIP
	}
	ip, rejected := reportedPodIP(ws.GetPodIp(), d.Addresses)
	if rejected != "" {
		n.m.log.Warn("device reported a pod IP not its own; using the device's address", "pod", pod.Namespace+"/"+pod.Name, "device", dev, "reported", rejected, "addresses", d.Addresses)
		n.recorder.Eventf(pod, corev1.EventTypeWarning, efv1.ReasonPodIPRejected, "Device %s reported pod IP %q, which is not one of its addresses (%v); the pod IP is the device's address %s", dev, rejected, d.Addresses, ip)
	}
	if ip != ws.GetPodIp() {
		ws = proto.CloneOf(ws)
		ws.PodIp = ip
	}
	return ws, d.IP()
}

// placedMessage is the message of efv1.ConditionPlaced for a placement.
func placedMessage(dev string, epoch uint64) string {
	return fmt.Sprintf("device %s, fencing epoch %d", dev, epoch)
}

// markPlaced records on pod that it is placed on device dev with fencing
// epoch epoch: the annotations, and efv1.ConditionPlaced in its status. Both are
// written with the pod's next status write.
func markPlaced(pod *corev1.Pod, dev string, epoch uint64) {
	e := strconv.FormatUint(epoch, 10)
	if pod.Annotations[efv1.AnnotationDevice] != dev || pod.Annotations[efv1.AnnotationFencingEpoch] != e {
		pod.Annotations = maps.Clone(pod.Annotations)
		if pod.Annotations == nil {
			pod.Annotations = map[string]string{}
		}
		pod.Annotations[efv1.AnnotationDevice] = dev
		pod.Annotations[efv1.AnnotationFencingEpoch] = e
	}
	cond := corev1.PodCondition{
		Type: efv1.ConditionPlaced, Status: corev1.ConditionTrue, Reason: efv1.ReasonPlaced,
		Message: placedMessage(dev, epoch), LastTransitionTime: metav1.Now(),
	}
	for i, c := range pod.Status.Conditions {
		if c.Type != efv1.ConditionPlaced {
			continue
		}
		if c.Status == cond.Status && c.Message == cond.Message {
			return
		}
		pod.Status.Conditions = slices.Clone(pod.Status.Conditions)
		pod.Status.Conditions[i] = cond
		return
	}
	pod.Status.Conditions = append(slices.Clone(pod.Status.Conditions), cond)
}

// recordedPlacement returns the device and fencing epoch the provider
// recorded on pod: its annotations, if its efv1.ConditionPlaced (status, which
// only the pod's node writes) says the same. ok is false for a pod the
// provider never placed, or whose annotations someone else wrote.
func recordedPlacement(pod *corev1.Pod) (dev string, epoch uint64, ok bool) {
	dev = pod.Annotations[efv1.AnnotationDevice]
	epoch, err := strconv.ParseUint(pod.Annotations[efv1.AnnotationFencingEpoch], 10, 64)
	if dev == "" || err != nil {
		return "", 0, false
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == efv1.ConditionPlaced {
			return dev, epoch, c.Status == corev1.ConditionTrue && c.Message == placedMessage(dev, epoch)
		}
	}
	return "", 0, false
}

// adopt returns the placement of a pod this node does not know yet (after a
// provider restart): the one the provider recorded on it, if the device is
// still a member of the node's cluster (members not yet formed count as
// unknown, not as none). Otherwise "", and placement decides. The fabric
// holds devices by account, so a recorded device can only be one of the
// node's account; tenancy is checked by the caller.
func (n *accountNode) adopt(pod *corev1.Pod) (string, uint64) {
	dev, epoch, ok := recordedPlacement(pod)
	if !ok {
		if a := pod.Annotations[efv1.AnnotationDevice]; a != "" {
			n.m.log.Info("device annotation not recorded by the provider; placing the pod", "pod", pod.Namespace+"/"+pod.Name, "annotation", a)
		}
		return "", 0
	}
	if members := n.memberList(); len(members) > 0 && !slices.Contains(members, dev) {
		n.m.log.Info("recorded device no longer in the pod's cluster; placing the pod", "pod", pod.Namespace+"/"+pod.Name, "device", dev, "node", n.name)
		return "", 0
	}
	return dev, epoch
}

// allowed reports whether the pod's namespace may run pods on the node's
// account (Manager.tenancy); false also when that cannot be told now.
func (n *accountNode) allowed(ctx context.Context, pod *corev1.Pod) bool {
	why, err := n.m.tenancy(ctx, pod.Namespace, n.account)
	return err == nil && why == ""
}
