package node

import (
	"testing"

	"github.com/virtual-kubelet/virtual-kubelet/errdefs"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	efv1 "github.com/edgefabric/edgefabric/pkg/apis/edgefabric/v1alpha1"
)

func TestContainerName(t *testing.T) {
	pod := func(annotation string, init []string, containers ...string) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p"}}
		if annotation != "" {
			p.Annotations = map[string]string{efv1.AnnotationDefaultContainer: annotation}
		}
		for _, c := range init {
			p.Spec.InitContainers = append(p.Spec.InitContainers, corev1.Container{Name: c})
		}
		for _, c := range containers {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: c})
		}
		return p
	}
	tests := []struct {
		name    string
		pod     *corev1.Pod
		request string
		want    string
		wantErr string
	}{
		{name: "the only container", pod: pod("", nil, "app"), want: "app"},
		{name: "named", pod: pod("", nil, "app", "side"), request: "side", want: "side"},
		{name: "an init container by name", pod: pod("", []string{"setup"}, "app"), request: "setup", want: "setup"},
		{name: "the default container", pod: pod("side", nil, "app", "side"), want: "side"},
		{name: "a default container that is not there", pod: pod("gone", nil, "app"), want: "app"},
		{name: "none named, several", pod: pod("", []string{"setup"}, "app", "side"),
			wantErr: "a container name must be specified for pod ns/p, choose one of: [app side] or one of the init containers: [setup]"},
		{name: "not a container of the pod", pod: pod("", nil, "app", "side"), request: "web",
			wantErr: "container web is not valid for pod ns/p, choose one of: [app side]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := containerName(tt.pod, tt.request)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr || !errdefs.IsInvalidInput(err) {
					t.Fatalf("containerName = %q, %v; want invalid input %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("containerName = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
