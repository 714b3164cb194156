package node

import (
	"maps"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
)

func TestOwnAnnotationsHidden(t *testing.T) {
	pod := func(annotations map[string]string, phase corev1.PodPhase) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", Annotations: annotations, ResourceVersion: string(phase)},
			Status:     corev1.PodStatus{Phase: phase},
		}
	}
	placed := map[string]string{"user": "x", AnnotationDevice: "dev-1", AnnotationFencingEpoch: "1"}
	tests := []struct {
		name     string
		old, new map[string]string
		hidden   bool // the handler gets an old pod with new's annotations
	}{
		{name: "device recorded", old: map[string]string{"user": "x"}, new: placed, hidden: true},
		{name: "device recorded on a pod without annotations", old: nil, new: map[string]string{AnnotationDevice: "dev-1"}, hidden: true},
		{name: "device moved", old: placed, new: map[string]string{"user": "x", AnnotationDevice: "dev-2", AnnotationFencingEpoch: "2"}, hidden: true},
		{name: "own annotation removed", old: placed, new: map[string]string{"user": "x"}, hidden: true},
		{name: "no annotation changed", old: placed, new: placed},
		{name: "user annotation changed", old: placed, new: map[string]string{"user": "y", AnnotationDevice: "dev-1", AnnotationFencingEpoch: "1"}},
		{name: "user annotation added with the device", old: nil, new: map[string]string{"user": "x", AnnotationDevice: "dev-1"}},
		{name: "user annotation removed with the device", old: map[string]string{"user": "x"}, new: map[string]string{AnnotationDevice: "dev-1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var gotOld, gotNew *corev1.Pod
			h := ownAnnotationsHidden{cache.ResourceEventHandlerFuncs{UpdateFunc: func(o, n any) {
				gotOld, gotNew = o.(*corev1.Pod), n.(*corev1.Pod)
			}}}
			oldPod, newPod := pod(tt.old, corev1.PodPending), pod(tt.new, corev1.PodRunning)
			h.OnUpdate(oldPod, newPod)
			if gotNew != newPod {
				t.Fatalf("the handler got another new pod: %v", gotNew)
			}
			if gotOld.Status.Phase != corev1.PodPending || gotOld.ResourceVersion != string(corev1.PodPending) {
				t.Errorf("old pod's status or version changed: %v %q", gotOld.Status.Phase, gotOld.ResourceVersion)
			}
			if len(oldPod.Annotations) != len(tt.old) {
				t.Errorf("the informer's old pod was modified: %v", oldPod.Annotations)
			}
			hidden := gotOld != oldPod
			if hidden != tt.hidden {
				t.Fatalf("old pod replaced: %v, want %v", hidden, tt.hidden)
			}
			if hidden && !maps.Equal(gotOld.Annotations, tt.new) {
				t.Errorf("old pod's annotations %v, want %v", gotOld.Annotations, tt.new)
			}
		})
	}
}
