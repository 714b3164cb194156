package translate

import (
	"time"

	corev1 "k8s.io/api/core/v1"

	efv1 "github.com/edgefabric/edgefabric/pkg/apis/edgefabric/v1alpha1"
)

// MinFenceGrace is the shortest device-loss grace a pod that fences on
// partition may have: the device stops it a margin (a quarter of the grace,
// at most 10 s) before the grace ends, and must hear from the hub more often
// than that while connected.
const MinFenceGrace = 2 * time.Second

// DeviceLossGrace returns the pod's device-loss grace annotation, ok false if
// it has none, and an *UnsupportedError if it is not a duration ≥ 0.
func DeviceLossGrace(pod *corev1.Pod) (d time.Duration, ok bool, err error) {
	v, ok := pod.Annotations[efv1.AnnotationDeviceLossGrace]
	if !ok {
		return 0, false, nil
	}
	d, perr := time.ParseDuration(v)
	if perr != nil || d < 0 {
		return 0, true, unsupported(efv1.ReasonInvalidAnnotation,
			"annotation %s: %q is not a duration of zero or more (such as \"30s\" or \"2m\")", efv1.AnnotationDeviceLossGrace, v)
	}
	return d, true, nil
}

// FenceOnPartition returns whether the pod asks to be fenced on partition,
// and an *UnsupportedError if its annotation is neither "true" nor "false".
func FenceOnPartition(pod *corev1.Pod) (bool, error) {
	switch v, ok := pod.Annotations[efv1.AnnotationFenceOnPartition]; {
	case !ok || v == "false":
		return false, nil
	case v == "true":
		return true, nil
	default:
		return false, unsupported(efv1.ReasonInvalidAnnotation,
			"annotation %s: %q is neither \"true\" nor \"false\"", efv1.AnnotationFenceOnPartition, v)
	}
}

// validateAnnotations checks the values of the pod's fencing annotations.
func validateAnnotations(pod *corev1.Pod) error {
	if _, _, err := DeviceLossGrace(pod); err != nil {
		return err
	}
	_, err := FenceOnPartition(pod)
	return err
}

// FenceGraceError returns an *UnsupportedError if the pod fences on partition
// with an effective device-loss grace (its annotation's or the provider's
// default) shorter than MinFenceGrace, and nil otherwise.
func FenceGraceError(pod *corev1.Pod, grace time.Duration) error {
	if on, _ := FenceOnPartition(pod); on && grace < MinFenceGrace {
		return unsupported(efv1.ReasonInvalidAnnotation,
			"annotation %s needs a device-loss grace of at least %s; the pod's is %s", efv1.AnnotationFenceOnPartition, MinFenceGrace, grace)
	}
	return nil
}
