package translate

import (
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"

	efv1 "github.com/edgefabric/edgefabric/pkg/apis/edgefabric/v1alpha1"
)

// TestValidateSecurityContext: every securityContext field is honoured on
// the device or refused with a reason that names it, for each runtime a pod
// can ask for (no runtimeClassName: WASM, or a native image's process, see
// TestRuntimeAutoPinnedByWASMOnlyFields).
func TestValidateSecurityContext(t *testing.T) {
	pod := func(sc *corev1.SecurityContext) func(*corev1.Pod) {
		return func(p *corev1.Pod) { p.Spec.Containers[0].SecurityContext = sc }
	}
	podSC := func(sc *corev1.PodSecurityContext) func(*corev1.Pod) {
		return func(p *corev1.Pod) { p.Spec.SecurityContext = sc }
	}
	restricted := func(p *corev1.Pod) { // Pod Security Standards "restricted"
		p.Spec.SecurityContext = &corev1.PodSecurityContext{
			RunAsNonRoot:   new(true),
			RunAsUser:      new(int64(1000)),
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		}
		p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{
			AllowPrivilegeEscalation: new(false),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			ReadOnlyRootFilesystem:   new(true),
		}
	}
	const ok = ""
	for _, tt := range []struct {
		name   string
		mutate func(*corev1.Pod)
		// want is the reason for each runtime class: "", edgefabric-wasm,
		// edgefabric-process ("" for none).
		want [3]string
	}{
		{"runAsUser and runAsGroup", pod(&corev1.SecurityContext{RunAsUser: new(int64(1000)), RunAsGroup: new(int64(1000))}), [3]string{ok, ok, ok}},
		{"runAsNonRoot", podSC(&corev1.PodSecurityContext{RunAsNonRoot: new(true)}), [3]string{ok, ok, ok}},
		{"allowPrivilegeEscalation false", pod(&corev1.SecurityContext{AllowPrivilegeEscalation: new(false)}), [3]string{ok, ok, ok}},
		{"allowPrivilegeEscalation true", pod(&corev1.SecurityContext{AllowPrivilegeEscalation: new(true)}), [3]string{ok, ok, ok}},
		{"capabilities dropped", pod(&corev1.SecurityContext{Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}}), [3]string{ok, ok, ok}},
		{"capabilities added", pod(&corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"NET_ADMIN"}}}), [3]string{efv1.ReasonCapabilitiesUnsupported, efv1.ReasonCapabilitiesUnsupported, efv1.ReasonCapabilitiesUnsupported}},
		{"privileged", pod(&corev1.SecurityContext{Privileged: new(true)}), [3]string{efv1.ReasonPrivilegedUnsupported, efv1.ReasonPrivilegedUnsupported, efv1.ReasonPrivilegedUnsupported}},
		{"privileged false", pod(&corev1.SecurityContext{Privileged: new(false)}), [3]string{ok, ok, ok}},
		{"readOnlyRootFilesystem", pod(&corev1.SecurityContext{ReadOnlyRootFilesystem: new(true)}), [3]string{ok, ok, efv1.ReasonReadOnlyRootFilesystemUnsupported}},
		{"seccomp RuntimeDefault, pod", podSC(&corev1.PodSecurityContext{SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}}), [3]string{ok, ok, efv1.ReasonSeccompProfileUnsupported}},
		{"seccomp RuntimeDefault, container", pod(&corev1.SecurityContext{SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}}), [3]string{ok, ok, efv1.ReasonSeccompProfileUnsupported}},
		{"seccomp Unconfined", pod(&corev1.SecurityContext{SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeUnconfined}}), [3]string{ok, ok, ok}},
		{"seccomp Localhost", pod(&corev1.SecurityContext{SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeLocalhost, LocalhostProfile: new("x.json")}}), [3]string{efv1.ReasonSeccompProfileUnsupported, efv1.ReasonSeccompProfileUnsupported, efv1.ReasonSeccompProfileUnsupported}},
		{"fsGroup", podSC(&corev1.PodSecurityContext{FSGroup: new(int64(2000))}), [3]string{ok, ok, efv1.ReasonFSGroupUnsupported}},
		{"supplementalGroups", podSC(&corev1.PodSecurityContext{SupplementalGroups: []int64{3000}}), [3]string{ok, ok, efv1.ReasonSupplementalGroupsUnsupported}},
		{"sysctls", podSC(&corev1.PodSecurityContext{Sysctls: []corev1.Sysctl{{Name: "net.core.somaxconn", Value: "1024"}}}), [3]string{efv1.ReasonSysctlsUnsupported, efv1.ReasonSysctlsUnsupported, efv1.ReasonSysctlsUnsupported}},
		{"seLinuxOptions", pod(&corev1.SecurityContext{SELinuxOptions: &corev1.SELinuxOptions{Type: "spc_t"}}), [3]string{efv1.ReasonSELinuxUnsupported, efv1.ReasonSELinuxUnsupported, efv1.ReasonSELinuxUnsupported}},
		{"appArmor RuntimeDefault", pod(&corev1.SecurityContext{AppArmorProfile: &corev1.AppArmorProfile{Type: corev1.AppArmorProfileTypeRuntimeDefault}}), [3]string{ok, ok, efv1.ReasonAppArmorProfileUnsupported}},
		{"appArmor Localhost", podSC(&corev1.PodSecurityContext{AppArmorProfile: &corev1.AppArmorProfile{Type: corev1.AppArmorProfileTypeLocalhost, LocalhostProfile: new("p")}}), [3]string{efv1.ReasonAppArmorProfileUnsupported, efv1.ReasonAppArmorProfileUnsupported, efv1.ReasonAppArmorProfileUnsupported}},
		{"procMount Unmasked", pod(&corev1.SecurityContext{ProcMount: new(corev1.UnmaskedProcMount)}), [3]string{efv1.ReasonProcMountUnsupported, efv1.ReasonProcMountUnsupported, efv1.ReasonProcMountUnsupported}},
		{"hostUsers false", func(p *corev1.Pod) { p.Spec.HostUsers = new(false) }, [3]string{ok, ok, efv1.ReasonHostUsersUnsupported}},
		{"windows hostProcess", pod(&corev1.SecurityContext{WindowsOptions: &corev1.WindowsSecurityContextOptions{HostProcess: new(true)}}), [3]string{efv1.ReasonHostProcessUnsupported, efv1.ReasonHostProcessUnsupported, efv1.ReasonHostProcessUnsupported}},
		{"hostNetwork", func(p *corev1.Pod) { p.Spec.HostNetwork = true }, [3]string{efv1.ReasonHostNetworkUnsupported, efv1.ReasonHostNetworkUnsupported, efv1.ReasonHostNetworkUnsupported}},
		{"hostPID", func(p *corev1.Pod) { p.Spec.HostPID = true }, [3]string{efv1.ReasonHostPIDUnsupported, efv1.ReasonHostPIDUnsupported, efv1.ReasonHostPIDUnsupported}},
		{"hostIPC", func(p *corev1.Pod) { p.Spec.HostIPC = true }, [3]string{efv1.ReasonHostIPCUnsupported, efv1.ReasonHostIPCUnsupported, efv1.ReasonHostIPCUnsupported}},
		{"hostPath", func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "h", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/"}}}}
		}, [3]string{efv1.ReasonHostPathUnsupported, efv1.ReasonHostPathUnsupported, efv1.ReasonHostPathUnsupported}},
		{"restricted pod", restricted, [3]string{ok, ok, efv1.ReasonSeccompProfileUnsupported}},
		{"init container", func(p *corev1.Pod) {
			p.Spec.InitContainers = []corev1.Container{{Name: "init", Image: "i", SecurityContext: &corev1.SecurityContext{ReadOnlyRootFilesystem: new(true)}}}
		}, [3]string{ok, ok, efv1.ReasonReadOnlyRootFilesystemUnsupported}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var got [3]string
			for i, class := range []string{"", RuntimeClassWASM, RuntimeClassProcess} {
				p := testPod()
				if class != "" {
					p.Spec.RuntimeClassName = new(class)
				}
				tt.mutate(p)
				err := Validate(p)
				var ue *UnsupportedError
				switch {
				case err == nil:
				case errors.As(err, &ue):
					got[i] = ue.Reason
					if ue.Message == "" {
						t.Errorf("%s: no message", class)
					}
				default:
					got[i] = fmt.Sprintf("not an UnsupportedError: %v", err)
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("reasons for no class, wasm, process (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRuntimeAutoPinnedByWASMOnlyFields: a pod without runtimeClassName that
// asks for what only the WASM runtime honours runs only as WASM: its
// workload does not let the device pick the process runtime for a native
// image, which would run it without what it asked for.
func TestRuntimeAutoPinnedByWASMOnlyFields(t *testing.T) {
	for _, tt := range []struct {
		name     string
		mutate   func(*corev1.Pod)
		wantAuto bool
	}{
		{"plain", func(*corev1.Pod) {}, true},
		{"runAsUser", func(p *corev1.Pod) {
			p.Spec.SecurityContext = &corev1.PodSecurityContext{RunAsUser: new(int64(1000))}
		}, true},
		{"readOnlyRootFilesystem", func(p *corev1.Pod) {
			p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{ReadOnlyRootFilesystem: new(true)}
		}, false},
		{"fsGroup", func(p *corev1.Pod) { p.Spec.SecurityContext = &corev1.PodSecurityContext{FSGroup: new(int64(1))} }, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := testPod()
			tt.mutate(p)
			if err := Validate(p); err != nil {
				t.Fatal(err)
			}
			if got := RuntimeAuto(p); got != tt.wantAuto {
				t.Errorf("RuntimeAuto: got %v, want %v", got, tt.wantAuto)
			}
		})
	}
}
