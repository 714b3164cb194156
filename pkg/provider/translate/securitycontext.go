package translate

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"

	efv1 "github.com/edgefabric/edgefabric/pkg/apis/edgefabric/v1alpha1"
)

// securityAsk is one thing a pod's securityContext asks of the runtime that
// the runtime does not honour: the pod must fail rather than run without it.
type securityAsk struct {
	reason, message string
	// wasm and process say whether that runtime honours it after all.
	wasm, process bool
}

// securityAsks lists what pod's securityContexts (the pod's, then each
// container's) ask that some runtime does not honour. What is not listed is
// honoured by both runtimes (docs/security.md, "securityContext"):
//
//   - runAsUser, runAsGroup, runAsNonRoot: the process runtime runs the
//     process as that user and refuses root with runAsNonRoot; a WASM module
//     has no user and no root (it holds no privilege of any user: it reaches
//     only its volumes, by their read-only flag), so they are satisfied.
//   - allowPrivilegeEscalation (false or true) and capabilities.drop: a
//     module cannot gain privileges or hold capabilities; a process container
//     runs with no_new_privs and no capabilities whatever it asks (the
//     process runtime's part of the contract, docs/security.md).
//   - seccompProfile Unconfined, appArmorProfile Unconfined: what a process
//     gets; a module makes no system calls of its own.
//
// Privileged containers, added capabilities, hostPath and the host
// namespaces are refused by Validate itself, for both runtimes.
func securityAsks(pod *corev1.Pod) []securityAsk {
	var out []securityAsk
	ask := func(reason string, wasm, process bool, format string, args ...any) {
		out = append(out, securityAsk{reason: reason, message: fmt.Sprintf(format, args...), wasm: wasm, process: process})
	}
	if pod.Spec.HostUsers != nil && !*pod.Spec.HostUsers {
		ask(efv1.ReasonHostUsersUnsupported, true, false,
			"hostUsers: false asks for a user namespace, which the process runtime does not make; a WASM module has no users to map")
	}
	seccomp := func(where string, p *corev1.SeccompProfile) {
		switch {
		case p == nil, p.Type == corev1.SeccompProfileTypeUnconfined:
		case p.Type == corev1.SeccompProfileTypeRuntimeDefault:
			ask(efv1.ReasonSeccompProfileUnsupported, true, false,
				"%s.seccompProfile RuntimeDefault is not applied by the process runtime; a WASM module (runtimeClassName %s) makes no system calls and satisfies it", where, RuntimeClassWASM)
		default:
			ask(efv1.ReasonSeccompProfileUnsupported, false, false,
				"%s.seccompProfile %s is not supported: devices have no seccomp profiles of their own", where, p.Type)
		}
	}
	appArmor := func(where string, p *corev1.AppArmorProfile) {
		switch {
		case p == nil, p.Type == corev1.AppArmorProfileTypeUnconfined:
		case p.Type == corev1.AppArmorProfileTypeRuntimeDefault:
			ask(efv1.ReasonAppArmorProfileUnsupported, true, false,
				"%s.appArmorProfile RuntimeDefault is not applied by the process runtime; a WASM module (runtimeClassName %s) satisfies it", where, RuntimeClassWASM)
		default:
			ask(efv1.ReasonAppArmorProfileUnsupported, false, false,
				"%s.appArmorProfile %s is not supported: devices have no AppArmor profiles of their own", where, p.Type)
		}
	}
	if psc := pod.Spec.SecurityContext; psc != nil {
		const where = "pod securityContext"
		if psc.FSGroup != nil {
			ask(efv1.ReasonFSGroupUnsupported, true, false,
				"%s.fsGroup is not applied to volumes by the process runtime; a WASM module (runtimeClassName %s) reads and writes its volumes whatever their group", where, RuntimeClassWASM)
		}
		if len(psc.SupplementalGroups) > 0 {
			ask(efv1.ReasonSupplementalGroupsUnsupported, true, false,
				"%s.supplementalGroups are not given to processes by the process runtime; a WASM module (runtimeClassName %s) has no groups", where, RuntimeClassWASM)
		}
		if len(psc.Sysctls) > 0 {
			ask(efv1.ReasonSysctlsUnsupported, false, false,
				"%s.sysctls (%s) are not supported: pods on a device share its kernel settings", where, psc.Sysctls[0].Name)
		}
		if psc.SELinuxOptions != nil {
			ask(efv1.ReasonSELinuxUnsupported, false, false, "%s.seLinuxOptions are not supported: devices apply no SELinux labels", where)
		}
		if w := psc.WindowsOptions; w != nil && w.HostProcess != nil && *w.HostProcess {
			ask(efv1.ReasonHostProcessUnsupported, false, false, "%s.windowsOptions.hostProcess is not supported", where)
		}
		seccomp(where, psc.SeccompProfile)
		appArmor(where, psc.AppArmorProfile)
	}
	for _, c := range allContainers(pod) {
		sc := c.securityContext
		if sc == nil {
			continue
		}
		where := fmt.Sprintf("%s %q securityContext", c.kind, c.name)
		if sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem {
			ask(efv1.ReasonReadOnlyRootFilesystemUnsupported, true, false,
				"%s.readOnlyRootFilesystem is not enforced by the process runtime; a WASM module (runtimeClassName %s) has no root filesystem to write, only its volumes", where, RuntimeClassWASM)
		}
		if sc.SELinuxOptions != nil {
			ask(efv1.ReasonSELinuxUnsupported, false, false, "%s.seLinuxOptions are not supported: devices apply no SELinux labels", where)
		}
		if sc.ProcMount != nil && *sc.ProcMount != corev1.DefaultProcMount {
			ask(efv1.ReasonProcMountUnsupported, false, false, "%s.procMount %s is not supported", where, *sc.ProcMount)
		}
		if w := sc.WindowsOptions; w != nil && w.HostProcess != nil && *w.HostProcess {
			ask(efv1.ReasonHostProcessUnsupported, false, false, "%s.windowsOptions.hostProcess is not supported", where)
		}
		seccomp(where, sc.SeccompProfile)
		appArmor(where, sc.AppArmorProfile)
	}
	return out
}

// refusedBy returns the first of asks that runtime does not honour.
func refusedBy(asks []securityAsk, runtime string) *UnsupportedError {
	for _, a := range asks {
		if (runtime == RuntimeWASM && !a.wasm) || (runtime == RuntimeProcess && !a.process) {
			return unsupported(a.reason, "%s", a.message)
		}
	}
	return nil
}

// RuntimeAuto reports whether the device may pick the runtime of pod by its
// image's platform: it has no runtimeClassName and asks for nothing that
// only the WASM runtime honours (a native image then fails to start under
// the WASM runtime, saying so, rather than run without it).
func RuntimeAuto(pod *corev1.Pod) bool {
	if pod.Spec.RuntimeClassName != nil && *pod.Spec.RuntimeClassName != "" {
		return false
	}
	return refusedBy(securityAsks(pod), RuntimeProcess) == nil
}
