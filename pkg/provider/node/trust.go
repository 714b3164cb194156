package node

import (
	"context"
	"slices"

	corev1 "k8s.io/api/core/v1"

	efv1 "github.com/edgefabric/edgefabric/pkg/apis/edgefabric/v1alpha1"
	"github.com/edgefabric/edgefabric/pkg/provider/node/lifecycle"
)

// adopt returns the placement of a pod this node does not know yet (after a
// provider restart): the one the provider recorded on it, if the device is
// still a member of the node's cluster (members not yet formed count as
// unknown, not as none). Otherwise "", and placement decides. The fabric
// holds devices by account, so a recorded device can only be one of the
// node's account; tenancy is checked by the caller.
func (n *clusterNode) adopt(pod *corev1.Pod) (string, uint64) {
	dev, epoch, ok := lifecycle.RecordedPlacement(pod)
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
func (n *clusterNode) allowed(ctx context.Context, pod *corev1.Pod) bool {
	why, err := n.m.tenancy(ctx, pod.Namespace, n.account)
	return err == nil && why == ""
}
