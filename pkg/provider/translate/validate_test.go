package translate

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	efv1 "github.com/edgefabric/edgefabric/pkg/apis/edgefabric/v1alpha1"
)

// testPod returns a small pod that edgefabric can run.
func testPod() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:        "web",
			Namespace:   "shop",
			UID:         "uid-1",
			Generation:  3,
			Labels:      map[string]string{"app": "web", "tier": "front"},
			Annotations: map[string]string{efv1.AnnotationDevice: "pi-1"},
		},
		Spec: corev1.PodSpec{
			NodeName:           "edge-acme",
			ServiceAccountName: "web-sa",
			Containers: []corev1.Container{
				{Name: "app", Image: "registry.example/app:1.0"},
			},
		},
	}
}

// kubeAPIAccess is the projected volume the API server adds to most pods.
var kubeAPIAccess = corev1.Volume{
	Name: "kube-api-access-abcde",
	VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		Sources: []corev1.VolumeProjection{
			{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token"}},
			{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"}}},
			{DownwardAPI: &corev1.DownwardAPIProjection{}},
		},
	}},
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name       string
		mutate     func(*corev1.Pod)
		wantReason string // "" for no error
		wantInMsg  string
	}{
		{
			name:   "minimal pod",
			mutate: func(*corev1.Pod) {},
		},
		{
			name: "supported volumes, runtime class and plain ports",
			mutate: func(p *corev1.Pod) {
				p.Spec.RuntimeClassName = new(RuntimeClassWASM)
				p.Spec.Volumes = []corev1.Volume{
					kubeAPIAccess,
					{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
					{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{}}},
					{Name: "creds", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{}}},
					{Name: "info", VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{}}},
				}
				p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 8080}}
				p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{
					Privileged:   new(false),
					Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
				}
			},
		},
		{
			name:   "empty runtime class name",
			mutate: func(p *corev1.Pod) { p.Spec.RuntimeClassName = new("") },
		},
		{
			name:       "hostNetwork",
			mutate:     func(p *corev1.Pod) { p.Spec.HostNetwork = true },
			wantReason: efv1.ReasonHostNetworkUnsupported,
			wantInMsg:  "hostNetwork",
		},
		{
			name:       "hostPID",
			mutate:     func(p *corev1.Pod) { p.Spec.HostPID = true },
			wantReason: efv1.ReasonHostPIDUnsupported,
			wantInMsg:  "hostPID",
		},
		{
			name:       "hostIPC",
			mutate:     func(p *corev1.Pod) { p.Spec.HostIPC = true },
			wantReason: efv1.ReasonHostIPCUnsupported,
			wantInMsg:  "hostIPC",
		},
		{
			name: "host namespaces before volumes",
			mutate: func(p *corev1.Pod) {
				p.Spec.HostNetwork = true
				p.Spec.Volumes = []corev1.Volume{{Name: "root", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/"}}}}
			},
			wantReason: efv1.ReasonHostNetworkUnsupported,
		},
		{
			name: "privileged container",
			mutate: func(p *corev1.Pod) {
				p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{Privileged: new(true)}
			},
			wantReason: efv1.ReasonPrivilegedUnsupported,
			wantInMsg:  `container "app" is privileged`,
		},
		{
			name: "privileged init container is reported as privileged, not as an init container",
			mutate: func(p *corev1.Pod) {
				p.Spec.InitContainers = []corev1.Container{{Name: "setup", Image: "setup", SecurityContext: &corev1.SecurityContext{Privileged: new(true)}}}
			},
			wantReason: efv1.ReasonPrivilegedUnsupported,
			wantInMsg:  `init container "setup"`,
		},
		{
			name: "privileged ephemeral container",
			mutate: func(p *corev1.Pod) {
				p.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{
					Name: "debug", SecurityContext: &corev1.SecurityContext{Privileged: new(true)},
				}}}
			},
			wantReason: efv1.ReasonPrivilegedUnsupported,
			wantInMsg:  `ephemeral container "debug"`,
		},
		{
			name: "added capabilities",
			mutate: func(p *corev1.Pod) {
				p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{
					Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"NET_ADMIN"}},
				}
			},
			wantReason: efv1.ReasonCapabilitiesUnsupported,
			wantInMsg:  "NET_ADMIN",
		},
		{
			name: "hostPath volume",
			mutate: func(p *corev1.Pod) {
				p.Spec.Volumes = []corev1.Volume{kubeAPIAccess, {Name: "logs", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/var/log"}}}}
			},
			wantReason: efv1.ReasonHostPathUnsupported,
			wantInMsg:  `volume "logs"`,
		},
		{
			name: "hostPort",
			mutate: func(p *corev1.Pod) {
				p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 8080, HostPort: 80}}
			},
			wantReason: efv1.ReasonHostPortUnsupported,
			wantInMsg:  "hostPort 80",
		},
		{
			name:       "unknown runtime class",
			mutate:     func(p *corev1.Pod) { p.Spec.RuntimeClassName = new("gvisor") },
			wantReason: efv1.ReasonUnknownRuntimeClass,
			wantInMsg:  `"gvisor" is not known`,
		},
		{
			name:   "process runtime class",
			mutate: func(p *corev1.Pod) { p.Spec.RuntimeClassName = new(RuntimeClassProcess) },
		},
		{
			name: "init and sidecar containers",
			mutate: func(p *corev1.Pod) {
				p.Spec.InitContainers = []corev1.Container{{Name: "migrate"}, {Name: "proxy", RestartPolicy: new(corev1.ContainerRestartPolicyAlways)}}
			},
		},
		{
			name: "ephemeral containers",
			mutate: func(p *corev1.Pod) {
				p.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debug"}}}
			},
			wantReason: efv1.ReasonEphemeralContainersUnsupported,
			wantInMsg:  `"debug"`,
		},
		{
			name: "persistent volume claim",
			mutate: func(p *corev1.Pod) {
				p.Spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
					PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data"},
				}}}
			},
			wantReason: efv1.ReasonVolumeTypeUnsupported,
			wantInMsg:  `volume "data" is of type persistentVolumeClaim`,
		},
		{
			name: "csi volume",
			mutate: func(p *corev1.Pod) {
				p.Spec.Volumes = []corev1.Volume{{Name: "secrets-store", VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{Driver: "x"}}}}
			},
			wantReason: efv1.ReasonVolumeTypeUnsupported,
			wantInMsg:  "of type csi",
		},
		{
			name: "env from a file",
			mutate: func(p *corev1.Pod) {
				p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "TOKEN", ValueFrom: &corev1.EnvVarSource{
					FileKeyRef: &corev1.FileKeySelector{VolumeName: "v", Path: "env", Key: "TOKEN"},
				}}}
			},
			wantReason: efv1.ReasonFileKeyRefUnsupported,
			wantInMsg:  "TOKEN",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := testPod()
			tt.mutate(pod)
			err := Validate(pod)
			if tt.wantReason == "" {
				if err != nil {
					t.Fatalf("Validate: got %v, want nil", err)
				}
				return
			}
			var ue *UnsupportedError
			if !errors.As(err, &ue) {
				t.Fatalf("Validate: got %v (%T), want *UnsupportedError", err, err)
			}
			if diff := cmp.Diff(tt.wantReason, ue.Reason); diff != "" {
				t.Errorf("Reason (-want +got):\n%s", diff)
			}
			if !strings.Contains(ue.Message, tt.wantInMsg) {
				t.Errorf("Message: got %q, want it to contain %q", ue.Message, tt.wantInMsg)
			}
			if got := err.Error(); got != ue.Message {
				t.Errorf("Error(): got %q, want the message %q", got, ue.Message)
			}
		})
	}
}

func TestRuntime(t *testing.T) {
	tests := []struct {
		name       string
		class      *string
		want       string
		wantReason string
	}{
		{name: "unset", class: nil, want: RuntimeWASM},
		{name: "empty", class: new(""), want: RuntimeWASM},
		{name: "wasm class", class: new(RuntimeClassWASM), want: RuntimeWASM},
		{name: "process class", class: new(RuntimeClassProcess), want: RuntimeProcess},
		{name: "other class", class: new("kata"), wantReason: efv1.ReasonUnknownRuntimeClass},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := testPod()
			pod.Spec.RuntimeClassName = tt.class
			got, err := Runtime(pod)
			var gotReason string
			if ue := (*UnsupportedError)(nil); errors.As(err, &ue) {
				gotReason = ue.Reason
			} else if err != nil {
				t.Fatalf("Runtime: got error %v (%T), want *UnsupportedError", err, err)
			}
			if got != tt.want || gotReason != tt.wantReason {
				t.Errorf("Runtime: got (%q, reason %q), want (%q, reason %q)", got, gotReason, tt.want, tt.wantReason)
			}
		})
	}
}
