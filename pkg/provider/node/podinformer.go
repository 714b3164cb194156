package node

import (
	"slices"

	corev1 "k8s.io/api/core/v1"
	corev1informers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/tools/cache"

	efv1 "github.com/edgefabric/edgefabric/pkg/apis/edgefabric/v1alpha1"
)

// ownAnnotations are the annotations the provider writes itself, with a pod's
// status (see place).
var ownAnnotations = []string{efv1.AnnotationDevice, efv1.AnnotationFencingEpoch}

// podInformer is the pod informer given to virtual-kubelet's pod controller.
// It differs from the one it wraps in one way: an update whose only change to
// the pod's metadata is in ownAnnotations reaches the controller's handler
// with an old pod that already had the new annotations.
//
// The controller resyncs a pod's spec into the provider (UpdatePod) on every
// update that changes its annotations, after comparing the whole pod with the
// one it last synced by go-cmp with a path filter. Every pod's first status
// write records its device in an annotation, so every pod paid that
// comparison once more, a third of the provider's CPU in a burst of pod
// starts (docs/benchmarks.md), to hand the provider back what it wrote. The
// controller still sees the new pod, status and annotations included; only
// its "has the spec or metadata changed" test sees no change.
type podInformer struct{ corev1informers.PodInformer }

func (p podInformer) Informer() cache.SharedIndexInformer {
	return ownAnnotationsInformer{p.PodInformer.Informer()}
}

type ownAnnotationsInformer struct{ cache.SharedIndexInformer }

func (i ownAnnotationsInformer) AddEventHandler(h cache.ResourceEventHandler) (cache.ResourceEventHandlerRegistration, error) {
	return i.SharedIndexInformer.AddEventHandler(ownAnnotationsHidden{h})
}

// ownAnnotationsHidden passes events on to a handler, updates that change
// only ownAnnotations as described at podInformer.
type ownAnnotationsHidden struct{ cache.ResourceEventHandler }

func (h ownAnnotationsHidden) OnUpdate(oldObj, newObj any) {
	oldPod, ok := oldObj.(*corev1.Pod)
	newPod, ok2 := newObj.(*corev1.Pod)
	if ok && ok2 && onlyOwnAnnotationsChanged(oldPod.Annotations, newPod.Annotations) {
		hidden := *oldPod // a shallow copy: the informer's cache is not touched
		hidden.Annotations = newPod.Annotations
		oldObj = &hidden
	}
	h.ResourceEventHandler.OnUpdate(oldObj, newObj)
}

// onlyOwnAnnotationsChanged reports whether old and new differ, and differ
// only in ownAnnotations.
func onlyOwnAnnotationsChanged(old, new map[string]string) bool {
	changed := false
	for k, v := range new {
		ov, had := old[k]
		if had && ov == v {
			continue
		}
		if !slices.Contains(ownAnnotations, k) {
			return false
		}
		changed = true
	}
	for k := range old {
		if _, has := new[k]; !has {
			if !slices.Contains(ownAnnotations, k) {
				return false
			}
			changed = true
		}
	}
	return changed
}
