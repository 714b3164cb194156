package translate

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"

	efv1 "github.com/edgefabric/edgefabric/pkg/apis/edgefabric/v1alpha1"
)

// Runtimes a workload can ask for.
const (
	// RuntimeWASM runs a workload's containers as WebAssembly modules. It is
	// the default.
	RuntimeWASM = "wasm"
	// RuntimeProcess runs a workload's containers as native processes from
	// ordinary OCI images for the device's os/arch.
	RuntimeProcess = "process"
)

// Runtime class names edgefabric understands in a pod's runtimeClassName.
const (
	// RuntimeClassWASM selects [RuntimeWASM], as does an unset runtimeClassName.
	RuntimeClassWASM = "edgefabric-wasm"
	// RuntimeClassProcess selects [RuntimeProcess].
	RuntimeClassProcess = "edgefabric-process"
)

// UnsupportedError says why a pod cannot run on edgefabric. It is permanent:
// the same pod spec will never run.
type UnsupportedError struct {
	// Reason is a CamelCase reason for events and status, one of the
	// Reason...Unsupported constants of pkg/apis/edgefabric/v1alpha1 (or
	// ReasonInvalidAnnotation, ReasonUnknownRuntimeClass).
	Reason string
	// Message is a sentence for humans that says what in the pod is the problem.
	Message string
}

func (e *UnsupportedError) Error() string { return e.Message }

func unsupported(reason, format string, args ...any) *UnsupportedError {
	return &UnsupportedError{Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// Runtime returns the runtime that runs pod, from its runtimeClassName: unset
// and [RuntimeClassWASM] give [RuntimeWASM], [RuntimeClassProcess] gives
// [RuntimeProcess]. Any other class gives an *UnsupportedError. (With no
// runtimeClassName the device may still pick the process runtime for a
// native image: see [hubv1.Workload] runtime_auto.)
func Runtime(pod *corev1.Pod) (string, error) {
	if pod.Spec.RuntimeClassName == nil {
		return RuntimeWASM, nil
	}
	switch name := *pod.Spec.RuntimeClassName; name {
	case "", RuntimeClassWASM:
		return RuntimeWASM, nil
	case RuntimeClassProcess:
		return RuntimeProcess, nil
	default:
		return "", unsupported(efv1.ReasonUnknownRuntimeClass,
			"runtimeClassName %q is not known to edgefabric; use %q, %q or leave runtimeClassName unset",
			name, RuntimeClassWASM, RuntimeClassProcess)
	}
}

// Validate returns an *UnsupportedError for the first thing in pod that
// edgefabric cannot honour, and nil if it can run the pod.
//
// The checks run in this order, so the reason reported is stable: host
// namespaces (hostNetwork, hostPID, hostIPC); privileged containers and added
// capabilities (init, regular, then ephemeral containers); the rest of the
// securityContexts, as the pod's runtime honours them (the pod's, then each
// container's: see securityAsks); hostPath volumes;
// hostPort; the runtime class; ephemeral containers; volume
// types other than emptyDir, configMap, secret, projected and downwardAPI;
// environment variables read from files (fileKeyRef); the values of the
// fencing annotations (device-loss grace, fence-on-partition).
//
// Ephemeral containers are added to running pods (kubectl debug); a caller
// re-validating a running pod should decide whether that makes it fail.
func Validate(pod *corev1.Pod) error {
	spec := &pod.Spec
	switch {
	case spec.HostNetwork:
		return unsupported(efv1.ReasonHostNetworkUnsupported,
			"hostNetwork is not supported: lite containers cannot share the device's network namespace")
	case spec.HostPID:
		return unsupported(efv1.ReasonHostPIDUnsupported,
			"hostPID is not supported: lite containers cannot share the device's process namespace")
	case spec.HostIPC:
		return unsupported(efv1.ReasonHostIPCUnsupported,
			"hostIPC is not supported: lite containers cannot share the device's IPC namespace")
	}

	containers := allContainers(pod)
	for _, c := range containers {
		sc := c.securityContext
		if sc == nil {
			continue
		}
		if sc.Privileged != nil && *sc.Privileged {
			return unsupported(efv1.ReasonPrivilegedUnsupported,
				"%s %q is privileged; lite containers cannot run privileged", c.kind, c.name)
		}
		if sc.Capabilities != nil && len(sc.Capabilities.Add) > 0 {
			return unsupported(efv1.ReasonCapabilitiesUnsupported,
				"%s %q adds capabilities %v; lite containers cannot be granted capabilities", c.kind, c.name, sc.Capabilities.Add)
		}
	}

	// With no runtimeClassName the pod runs as WASM unless the device
	// finds a native image, which RuntimeAuto allows only when the process
	// runtime honours all the pod asks.
	if rt, err := Runtime(pod); err == nil {
		if err := refusedBy(securityAsks(pod), rt); err != nil {
			return err
		}
	}

	for _, v := range spec.Volumes {
		if v.HostPath != nil {
			return unsupported(efv1.ReasonHostPathUnsupported,
				"volume %q is a hostPath volume; pods on edgefabric cannot mount paths of the device", v.Name)
		}
	}

	for _, c := range containers {
		for _, p := range c.ports {
			if p.HostPort != 0 {
				return unsupported(efv1.ReasonHostPortUnsupported,
					"%s %q asks for hostPort %d (containerPort %d); hostPort is not supported on edgefabric", c.kind, c.name, p.HostPort, p.ContainerPort)
			}
		}
	}

	if _, err := Runtime(pod); err != nil {
		return err
	}

	if len(spec.EphemeralContainers) > 0 {
		return unsupported(efv1.ReasonEphemeralContainersUnsupported,
			"ephemeral containers are not supported on edgefabric (pod has %q)", spec.EphemeralContainers[0].Name)
	}

	for _, v := range spec.Volumes {
		source := volumeSourceType(&v.VolumeSource)
		switch source {
		case "", "emptyDir", "configMap", "secret", "projected", "downwardAPI":
			// "" is a volume with no source, which the API server defaults to emptyDir.
		default:
			return unsupported(efv1.ReasonVolumeTypeUnsupported,
				"volume %q is of type %s, which edgefabric does not support; supported volume types are emptyDir, configMap, secret, projected and downwardAPI", v.Name, source)
		}
	}

	for _, c := range slices.Concat(spec.InitContainers, spec.Containers) {
		for _, e := range c.Env {
			if e.ValueFrom != nil && e.ValueFrom.FileKeyRef != nil {
				return unsupported(efv1.ReasonFileKeyRefUnsupported,
					"container %q reads env %s from a file (fileKeyRef), which edgefabric does not support", c.Name, e.Name)
			}
		}
	}
	return validateAnnotations(pod)
}

// containerRef is the part of any kind of container Validate looks at.
type containerRef struct {
	kind            string // "container", "init container", "ephemeral container"
	name            string
	securityContext *corev1.SecurityContext
	ports           []corev1.ContainerPort
}

func allContainers(pod *corev1.Pod) []containerRef {
	var refs []containerRef
	for _, c := range pod.Spec.InitContainers {
		refs = append(refs, containerRef{"init container", c.Name, c.SecurityContext, c.Ports})
	}
	for _, c := range pod.Spec.Containers {
		refs = append(refs, containerRef{"container", c.Name, c.SecurityContext, c.Ports})
	}
	for _, c := range pod.Spec.EphemeralContainers {
		refs = append(refs, containerRef{"ephemeral container", c.Name, c.SecurityContext, c.Ports})
	}
	return refs
}

// volumeSourceType returns the JSON name of the source set in vs (for example
// "persistentVolumeClaim"), or "" if none is set. Reflection keeps it right as
// Kubernetes adds volume types.
func volumeSourceType(vs *corev1.VolumeSource) string {
	v := reflect.ValueOf(vs).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		if f.Kind() == reflect.Pointer && !f.IsNil() {
			name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("json"), ",")
			return name
		}
	}
	return ""
}
