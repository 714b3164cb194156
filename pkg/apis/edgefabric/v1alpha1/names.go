package v1alpha1

import corev1 "k8s.io/api/core/v1"

// The names edgefabric writes to Kubernetes objects, or reads from those
// people write: labels, annotations, taints, condition types, secret types
// and reasons (of events, of pod and container statuses and of conditions).
// Each is declared here, once; code and tests refer to the constant. The
// values are part of edgefabric's interface: changing one breaks selectors,
// scripts and pods of running clusters.
//
// The reasons a device reports (its containers' states and the events it
// sends up, Fenced among them) are declared in pkg/apis/hub/v1/reasons
// instead: the agent writes them and must not link this package.

// Labels.
const (
	// LabelAccount is the account of a virtual node (written by the node
	// manager) and of an EdgeDevice (written by the fleet controller); read
	// by people and selectors (kubectl get nodes -l, the e2e tests).
	LabelAccount = "edgefabric.io/account"
	// LabelScope is the scope (account, network, proximity) of a virtual
	// node. Written by the node manager.
	LabelScope = "edgefabric.io/scope"
	// LabelCluster is the cluster ID of a network or proximity cluster's
	// node. Written by the node manager; read by people and selectors.
	LabelCluster = "edgefabric.io/cluster"
)

// Annotations of pods.
const (
	// AnnotationDevice is the device a pod is placed on. Written by the node
	// (with AnnotationFencingEpoch, and confirmed by ConditionPlaced); read
	// back by a restarted provider and by people.
	AnnotationDevice = "edgefabric.io/device"
	// AnnotationFencingEpoch is the fencing epoch of the pod's assignment to
	// its device. Written and read as AnnotationDevice.
	AnnotationFencingEpoch = "edgefabric.io/fencing-epoch"
	// AnnotationDeviceLossGrace, set by the pod's author, is how long the
	// pod's device may be offline before the pod is placed again on another
	// device: a Go duration such as "30s", not negative. The provider's
	// --device-loss-grace if absent. Read by translate and the node.
	AnnotationDeviceLossGrace = "edgefabric.io/device-loss-grace"
	// AnnotationFenceOnPartition, "true" or "false", set by the pod's
	// author, has the device stop the pod when it has been cut off from the
	// hub for nearly its device-loss grace, so that it never runs on two
	// devices at once. Read by translate.
	AnnotationFenceOnPartition = "edgefabric.io/fence-on-partition"
	// AnnotationDeviceSelector, set by the pod's author, is a Kubernetes
	// label selector over the labels of the devices of the pod's node's
	// cluster. Read by the node when it places the pod.
	AnnotationDeviceSelector = "edgefabric.io/device-selector"
)

// Annotations of nodes.
const (
	// AnnotationClusterMembers lists the devices of a network or proximity
	// cluster's node (comma-separated, sorted), and AnnotationClusterClaim
	// what a network cluster's ID was chosen for. Written by the node
	// manager; read by a restarted provider, which forms the clusters again
	// from them so that their IDs stay.
	AnnotationClusterMembers = "edgefabric.io/cluster-members"
	AnnotationClusterClaim   = "edgefabric.io/cluster-claim"
)

// The taint of every virtual node (NoSchedule): only pods that tolerate it
// are scheduled to edgefabric's nodes. Written by the node manager; pods
// tolerate it.
const (
	TaintKey   = "virtual-kubelet.io/provider"
	TaintValue = "edgefabric"
)

// ConditionPlaced is the pod condition that records, where only the pod's
// node may write (its status), the device and fencing epoch the provider
// placed the pod on (reason ReasonPlaced). AnnotationDevice and
// AnnotationFencingEpoch say the same for people; anyone who may edit the
// pod may change them, so only annotations this condition confirms are
// taken as a placement (by a restarted provider). Written and read by the
// node.
const ConditionPlaced corev1.PodConditionType = "edgefabric.io/placed"

// SecretTypeBootstrapToken is the type of bootstrap-token Secrets, written
// by people (or edgefabric's token command) and read by the enrollment
// service. Their data names the token, the account and optionally an expiry
// and a usage (see pkg/provider's TokenKey and the keys beside it).
const SecretTypeBootstrapToken corev1.SecretType = "edgefabric.io/bootstrap-token"

// Reasons of the events of a pod written by the node when it places, moves
// or refuses the pod.
const (
	// ReasonScheduled (Normal): the pod was placed on a device.
	ReasonScheduled = "Scheduled"
	// ReasonFailedScheduling (Warning): the pod waits, no device can take
	// it (status reason ReasonUnschedulable). A pod whose configuration
	// cannot be resolved waits with event reason reasons.Failed.
	ReasonFailedScheduling = "FailedScheduling"
	// ReasonDeviceLost: the pod's device was offline past the pod's
	// device-loss grace; the pod is placed on another device.
	ReasonDeviceLost = "DeviceLost"
	// ReasonDeviceRemoved: the pod's device was removed from the fleet
	// (decommissioned or forgotten); the pod is placed on another device.
	ReasonDeviceRemoved = "DeviceRemoved"
	// ReasonDeviceLeftCluster: the pod's device is no longer a member of
	// its node's cluster; the pod is placed on a member.
	ReasonDeviceLeftCluster = "DeviceLeftCluster"
	// ReasonClusterDissolved: no device forms the pod's node's cluster any
	// longer; the pod is deleted, as a node's pods are evicted, so that its
	// controller creates it again wherever the scheduler finds room. Also
	// the reason of such a node's False Ready condition.
	ReasonClusterDissolved = "ClusterDissolved"
	// ReasonImagePlatform: the pod's device cannot run the pod's image (its
	// OS or architecture); the pod is placed on a device that can.
	ReasonImagePlatform = "ImagePlatform"
	// ReasonPodIPRejected: the pod's device reported a pod IP that is not
	// one of its own addresses; the device's address is used.
	ReasonPodIPRejected = "PodIPRejected"
	// ReasonAccountMismatch: the pod may not run on the devices of the node
	// it was bound to. Also the reason of its Failed status.
	ReasonAccountMismatch = "AccountMismatch"
)

// ReasonUnschedulable is the reason of the Pending status of a pod no
// device can take now (written by the node; event ReasonFailedScheduling).
const ReasonUnschedulable = "Unschedulable"

// Reasons a pod is rejected with, as a kubelet rejects a pod it cannot admit
// for want of a resource: the pod's Failed status and a warning event.
// Chosen by placement; written by the node.
const (
	ReasonOutOfCPU    = "OutOfcpu"
	ReasonOutOfMemory = "OutOfmemory"
	ReasonOutOfPods   = "OutOfpods"
)

// Reasons of conditions the node writes.
const (
	// ReasonPlaced is the reason of ConditionPlaced.
	ReasonPlaced = "Placed"
	// ReasonNoDeviceConnected: a node's Ready condition is False, none of
	// its devices is connected.
	ReasonNoDeviceConnected = "NoDeviceConnected"
	// ReasonDevicesReady: a node's Ready condition is True, some of its
	// devices are connected.
	ReasonDevicesReady = "DevicesReady"
	// ReasonNoPressure is the reason of a node's False MemoryPressure,
	// DiskPressure and PIDPressure conditions.
	ReasonNoPressure = "NoPressure"
	// ReasonRouteCreated is the reason of a node's False
	// NetworkUnavailable condition.
	ReasonRouteCreated = "RouteCreated"
)

// Reasons of pod statuses and conditions computed by translate, as the
// kubelet writes them. (Container waiting reasons such as ContainerCreating
// and PodInitializing are in pkg/apis/hub/v1/reasons: devices report them too.)
const (
	// ReasonContainersNotReady is the reason of a False ContainersReady or
	// Ready condition while some container is not ready.
	ReasonContainersNotReady = "ContainersNotReady"
	// ReasonReadinessGatesNotReady is the reason of a False Ready condition
	// while some readiness gate of the pod is not satisfied.
	ReasonReadinessGatesNotReady = "ReadinessGatesNotReady"
	// ReasonPodCompleted is the reason of the ready conditions of a Succeeded pod.
	ReasonPodCompleted = "PodCompleted"
	// ReasonPodFailed is the reason of the ready conditions of a Failed pod.
	ReasonPodFailed = "PodFailed"
	// ReasonContainersNotInitialized is the reason of a False Initialized
	// condition while some init container has not completed.
	ReasonContainersNotInitialized = "ContainersNotInitialized"
)

// Reasons a pod cannot run on edgefabric (translate's UnsupportedError): the
// reason of its Failed status and of a warning event, written by the node.
const (
	// ReasonUnsupported: the pod cannot run, for a reason none of the
	// others names.
	ReasonUnsupported = "Unsupported"
	// ReasonInvalidAnnotation: an edgefabric annotation's value cannot be used.
	ReasonInvalidAnnotation = "InvalidAnnotation"

	ReasonHostNetworkUnsupported         = "HostNetworkUnsupported"
	ReasonHostPIDUnsupported             = "HostPIDUnsupported"
	ReasonHostIPCUnsupported             = "HostIPCUnsupported"
	ReasonPrivilegedUnsupported          = "PrivilegedUnsupported"
	ReasonCapabilitiesUnsupported        = "CapabilitiesUnsupported"
	ReasonHostPathUnsupported            = "HostPathUnsupported"
	ReasonHostPortUnsupported            = "HostPortUnsupported"
	ReasonUnknownRuntimeClass            = "UnknownRuntimeClass"
	ReasonRuntimeClassUnsupported        = "RuntimeClassUnsupported"
	ReasonEphemeralContainersUnsupported = "EphemeralContainersUnsupported"
	ReasonVolumeTypeUnsupported          = "VolumeTypeUnsupported"
	ReasonFileKeyRefUnsupported          = "FileKeyRefUnsupported"

	// securityContext fields (and hostUsers) the pod's runtime cannot honour.
	ReasonReadOnlyRootFilesystemUnsupported = "ReadOnlyRootFilesystemUnsupported"
	ReasonSeccompProfileUnsupported         = "SeccompProfileUnsupported"
	ReasonFSGroupUnsupported                = "FSGroupUnsupported"
	ReasonSupplementalGroupsUnsupported     = "SupplementalGroupsUnsupported"
	ReasonSysctlsUnsupported                = "SysctlsUnsupported"
	ReasonSELinuxUnsupported                = "SELinuxUnsupported"
	ReasonAppArmorProfileUnsupported        = "AppArmorProfileUnsupported"
	ReasonProcMountUnsupported              = "ProcMountUnsupported"
	ReasonHostUsersUnsupported              = "HostUsersUnsupported"
	ReasonHostProcessUnsupported            = "HostProcessUnsupported"
)
