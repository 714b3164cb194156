package node

import (
	"fmt"
	"strings"

	"github.com/virtual-kubelet/virtual-kubelet/errdefs"
	corev1 "k8s.io/api/core/v1"

	efv1 "github.com/edgefabric/edgefabric/pkg/apis/edgefabric/v1alpha1"
)

// containerName is the container of pod that a request for container name
// is for, as the API server and the kubelet pick it: the one named (an app
// or an init container), else the pod's default container (annotation
// efv1.AnnotationDefaultContainer), else its only container. An error, of
// errdefs' invalid input kind, names the choices.
func containerName(pod *corev1.Pod, name string) (string, error) {
	has := func(cs []corev1.Container, name string) bool {
		for _, c := range cs {
			if c.Name == name {
				return true
			}
		}
		return false
	}
	if name == "" {
		if d := pod.Annotations[efv1.AnnotationDefaultContainer]; d != "" && (has(pod.Spec.Containers, d) || has(pod.Spec.InitContainers, d)) {
			return d, nil
		}
		if len(pod.Spec.Containers) == 1 {
			return pod.Spec.Containers[0].Name, nil
		}
		return "", errdefs.InvalidInput(fmt.Sprintf("a container name must be specified for pod %s/%s, %s", pod.Namespace, pod.Name, choices(pod)))
	}
	if has(pod.Spec.Containers, name) || has(pod.Spec.InitContainers, name) {
		return name, nil
	}
	return "", errdefs.InvalidInput(fmt.Sprintf("container %s is not valid for pod %s/%s, %s", name, pod.Namespace, pod.Name, choices(pod)))
}

// choices lists the containers of pod, as the API server's errors do.
func choices(pod *corev1.Pod) string {
	names := func(cs []corev1.Container) string {
		out := make([]string, 0, len(cs))
		for _, c := range cs {
			out = append(out, c.Name)
		}
		return "[" + strings.Join(out, " ") + "]"
	}
	s := "choose one of: " + names(pod.Spec.Containers)
	if len(pod.Spec.InitContainers) > 0 {
		s += " or one of the init containers: " + names(pod.Spec.InitContainers)
	}
	return s
}
