// Package reasons declares the reasons a device reports to the hub: the
// reasons of its containers' waiting and terminated states (hubv1
// ContainerState) and of the events it sends up (hubv1 WorkloadEvent). The
// agent and its runtimes write them; the provider copies them, unchanged,
// into pod statuses and Kubernetes events, and reads a few of them back
// (Fenced, ContainerCreating, Completed, Error). They are the kubelet's own
// reasons wherever the kubelet has one, so that kubectl and the tools built
// on it read a device's pods as any other.
//
// It imports nothing, so that the agent and its runtimes, which must not
// link Kubernetes (cmd/edgeagent's deps test) nor, for the runtimes, the hub
// protocol, can use it. Every other name edgefabric writes to Kubernetes
// (labels, annotations, condition types, the provider's own reasons) is
// declared in pkg/apis/edgefabric/v1alpha1, which links the Kubernetes API
// types.
package reasons

// Reasons of a container's waiting state.
const (
	// ContainerCreating: the container has not started yet. The agent sets
	// it on a workload it has just been given; the provider reports it
	// until a device has reported a state.
	ContainerCreating = "ContainerCreating"
	// PodInitializing: the pod's init containers run; its app containers
	// wait for them.
	PodInitializing = "PodInitializing"
	// CreateContainerConfigError: the container's environment or volumes
	// cannot be resolved.
	CreateContainerConfigError = "CreateContainerConfigError"
	// CrashLoopBackOff: the container failed and waits to be restarted.
	CrashLoopBackOff = "CrashLoopBackOff"
	// ErrImagePull: pulling the container's image failed.
	ErrImagePull = "ErrImagePull"
	// ImagePullBackOff: the image pull failed and waits to be tried again.
	ImagePullBackOff = "ImagePullBackOff"
	// ErrImageNeverPull: the image is not on the device and the container's
	// imagePullPolicy is Never. Also an event reason.
	ErrImageNeverPull = "ErrImageNeverPull"
)

// Reasons of a container's terminated state.
const (
	// Completed: the container exited with status 0.
	Completed = "Completed"
	// Error: the container exited with another status, was killed, or (a
	// WebAssembly module) trapped.
	Error = "Error"
	// OOMKilled: the container went over its memory limit and was killed.
	// Also the reason of the warning event that says so.
	OOMKilled = "OOMKilled"
	// Killed: a WebAssembly module ended by Stop; the provider also gives
	// it to the containers of a pod deleted while its device is away.
	Killed = "Killed"
	// StartError: the container could not be started.
	StartError = "StartError"
)

// Fenced is the reason of the container states (terminated, or waiting for
// a container that had not started) of a workload the device stopped
// because it was cut off from the hub for nearly the pod's device-loss grace
// (the edgefabric.io/fence-on-partition annotation), and of the warning
// event that says so. The provider reads it to tell a fenced pod, which may
// be placed again at once, from one whose device merely went away.
const Fenced = "Fenced"

// Reasons of the events a device sends up about a workload, as the kubelet
// names them.
const (
	// Pulling: an image pull started.
	Pulling = "Pulling"
	// Pulled: the image was pulled, or was already on the device.
	Pulled = "Pulled"
	// Failed: pulling the image, or starting the container, failed.
	Failed = "Failed"
	// BackOff: the device waits before pulling an image again or restarting
	// a failed container.
	BackOff = "BackOff"
	// Started: a container started.
	Started = "Started"
	// Killing: a container is being stopped.
	Killing = "Killing"
	// Unhealthy: a startup, readiness or liveness probe failed.
	Unhealthy = "Unhealthy"
	// FailedMount: a volume could not be set up.
	FailedMount = "FailedMount"
	// NoUserNamespace (edgefabric's own): a native container runs without
	// the user namespace its device's owner asked for where the kernel
	// allows one (edgeagent --native-userns=auto), its root the device's
	// root in the sandbox; a warning, with the kernel's reason.
	NoUserNamespace = "NoUserNamespace"
)
