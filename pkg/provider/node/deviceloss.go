package node

import (
	"context"
	"fmt"
	"maps"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/edgefabric/edgefabric/pkg/provider/node/lifecycle"
)

// tick steps every pod with the node's devices as they are now: the pods
// of a dissolved cluster are evicted, and the pods of devices offline (or
// out of the cluster) longer than their grace are placed again. The lost
// device's desired state no longer holds them, so when it comes back the
// first thing it is sent, the full desired state, stops its stale copies.
// A pod of device removed (if not empty), which was dropped from the fleet,
// is placed again at once: why says how, for the pods' events.
func (n *clusterNode) tick(ctx context.Context, removed, why string) {
	devices := map[string]lifecycle.Device{}
	for _, d := range n.m.fab.Devices(n.account) {
		devices[d.ID] = *lifecycleDevice(d)
	}
	n.mu.Lock()
	ev := lifecycle.Tick{
		Devices:   devices,
		Since:     n.m.startedAt,
		Left:      maps.Clone(n.left),
		Dissolved: n.dissolved,
		Removed:   removed,
		Why:       why,
		Cluster:   fmt.Sprintf("%s cluster %s", n.key.Scope, n.key.ID),
		Node:      n.name,
	}
	n.mu.Unlock()
	n.stepAll(ctx, ev)
}

// evict deletes a pod of a dissolved cluster's node, as the node lifecycle
// controller evicts the pods of a node that is gone: its device stops it
// (or drops it from its desired state when it is back), and its controller
// replaces it. It reports whether the pod is gone or going.
func (n *clusterNode) evict(pod *corev1.Pod) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := n.m.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{Preconditions: metav1.NewUIDPreconditions(string(pod.UID))})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		n.m.log.Warn("evict pod", "pod", pod.Namespace+"/"+pod.Name, "err", err)
		return false // tried again on the next tick
	}
	return true
}
