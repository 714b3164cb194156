package translate

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	efv1 "github.com/edgefabric/edgefabric/pkg/apis/edgefabric/v1alpha1"
	hubv1 "github.com/edgefabric/edgefabric/pkg/apis/hub/v1"
	"github.com/edgefabric/edgefabric/pkg/apis/hub/v1/reasons"
)

// exitCodeKilled is the exit code of a container that was killed (128+SIGKILL).
const exitCodeKilled = 137

// apiTime converts t to the precision the API server stores: whole seconds.
func apiTime(t time.Time) metav1.Time {
	if t.IsZero() {
		return metav1.Time{}
	}
	return metav1.NewTime(t.Truncate(time.Second))
}

// protoTime converts a protobuf timestamp; nil is the zero time.
func protoTime(ts *timestamppb.Timestamp) metav1.Time {
	if ts == nil {
		return metav1.Time{}
	}
	return apiTime(ts.AsTime())
}

// PodStatus builds the status of pod from ws, the report of the device at
// deviceIP, as a kubelet would. ws may be nil (nothing reported yet).
//
//   - Phase is ws.phase if it is one of Pending, Running, Succeeded, Failed;
//     otherwise it is derived from the containers like the kubelet's: Pending
//     while a container waits to start; Running while one runs; once all have
//     stopped, Running under restartPolicy Always (they restart), Succeeded if
//     all exited 0, Failed under Never, and Running under OnFailure. A
//     report of containers stopped by fencing (reason Fenced: the device
//     lost the hub, see hubv1.Workload fence_on_partition) is no crash and
//     no end: the phase stays Pending or Running, as it was.
//   - Container statuses follow the order of the pod spec; a container the
//     device did not report is Waiting with reason ContainerCreating. A
//     container is ready and started only while it runs.
//   - Conditions PodScheduled, Initialized, ContainersReady and Ready are
//     generated; their lastTransitionTime is kept from pod.Status while their
//     status does not change and is now when it does. Other conditions (for
//     example readiness gates set by controllers) are kept.
//   - The pod IP is ws.pod_ip, or deviceIP if the device did not report one;
//     the host IP is deviceIP.
//   - startTime and qosClass are kept once set (qosClass is immutable);
//     otherwise startTime is the device's start time or now, and qosClass is
//     computed like Kubernetes does.
func PodStatus(pod *corev1.Pod, ws *hubv1.WorkloadStatus, deviceIP string, now time.Time) corev1.PodStatus {
	reported := make(map[string]*hubv1.ContainerStatus, len(ws.GetContainers()))
	for _, cs := range ws.GetContainers() {
		if _, dup := reported[cs.GetName()]; !dup {
			reported[cs.GetName()] = cs
		}
	}
	initReported := make(map[string]*hubv1.ContainerStatus, len(ws.GetInitContainers()))
	for _, cs := range ws.GetInitContainers() {
		if _, dup := initReported[cs.GetName()]; !dup {
			initReported[cs.GetName()] = cs
		}
	}
	initStatuses := make([]corev1.ContainerStatus, 0, len(pod.Spec.InitContainers))
	for _, c := range pod.Spec.InitContainers {
		cs, ok := initReported[c.Name]
		if !ok {
			initStatuses = append(initStatuses, waitingStatus(c, reasons.ContainerCreating, ""))
			continue
		}
		initStatuses = append(initStatuses, containerStatus(c, cs))
	}
	initialized, pendingInits, initFailed := initProgress(pod, initStatuses)
	statuses := make([]corev1.ContainerStatus, 0, len(pod.Spec.Containers))
	for _, c := range pod.Spec.Containers {
		cs, ok := reported[c.Name]
		switch {
		case !ok && !initialized:
			statuses = append(statuses, waitingStatus(c, reasons.PodInitializing, ""))
		case !ok:
			statuses = append(statuses, waitingStatus(c, reasons.ContainerCreating, ""))
		default:
			statuses = append(statuses, containerStatus(c, cs))
		}
	}

	phase := corev1.PodPhase(ws.GetPhase())
	switch phase {
	case corev1.PodPending, corev1.PodRunning, corev1.PodSucceeded, corev1.PodFailed:
	default:
		switch {
		case initFailed && pod.Spec.RestartPolicy == corev1.RestartPolicyNever:
			phase = corev1.PodFailed
		case !initialized:
			phase = corev1.PodPending
		default:
			phase = derivePhase(pod.Spec.RestartPolicy, statuses)
		}
		if fencedReport(ws) {
			phase = corev1.PodRunning
			if pod.Status.Phase == corev1.PodPending || pod.Status.Phase == "" {
				phase = corev1.PodPending
			}
		}
	}

	status := kept(pod)
	status.Phase = phase
	status.Reason = ws.GetReason()
	status.Message = ws.GetMessage()
	status.ContainerStatuses = statuses
	if len(initStatuses) > 0 {
		status.InitContainerStatuses = initStatuses
	}
	status.HostIP, status.HostIPs = deviceIP, hostIPs(deviceIP)
	podIP := ws.GetPodIp()
	if podIP == "" {
		podIP = deviceIP
	}
	status.PodIP, status.PodIPs = podIP, podIPs(podIP)
	if status.StartTime == nil {
		t := protoTime(ws.GetStartTime())
		if t.IsZero() {
			t = apiTime(now)
		}
		status.StartTime = &t
	}

	ready := readyCondition{status: corev1.ConditionTrue}
	switch phase {
	case corev1.PodSucceeded:
		ready = readyCondition{status: corev1.ConditionFalse, reason: efv1.ReasonPodCompleted}
	case corev1.PodFailed:
		ready = readyCondition{status: corev1.ConditionFalse, reason: efv1.ReasonPodFailed}
	default:
		var unready []string
		for i, cs := range initStatuses {
			if isSidecar(&pod.Spec.InitContainers[i]) && !cs.Ready {
				unready = append(unready, cs.Name)
			}
		}
		for _, cs := range statuses {
			if !cs.Ready {
				unready = append(unready, cs.Name)
			}
		}
		if len(unready) > 0 {
			ready = readyCondition{
				status:  corev1.ConditionFalse,
				reason:  efv1.ReasonContainersNotReady,
				message: fmt.Sprintf("containers with unready status: %s", unready),
			}
		}
	}
	init := readyCondition{status: corev1.ConditionTrue}
	if !initialized {
		init = readyCondition{
			status:  corev1.ConditionFalse,
			reason:  efv1.ReasonContainersNotInitialized,
			message: fmt.Sprintf("containers with incomplete status: %s", pendingInits),
		}
	}
	status.Conditions = conditionsInit(pod, status.Conditions, init, ready, now)
	return status
}

// isSidecar reports whether an init container is a sidecar (restartPolicy Always).
func isSidecar(c *corev1.Container) bool {
	return c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
}

// initProgress says whether the pod is initialized (every init container
// completed, every sidecar started), which init containers are not yet, and
// whether an init container has failed (exited non-zero, and now waits to
// restart or has ended).
func initProgress(pod *corev1.Pod, statuses []corev1.ContainerStatus) (initialized bool, pending []string, failed bool) {
	for i, cs := range statuses {
		c := &pod.Spec.InitContainers[i]
		switch {
		case isSidecar(c):
			if cs.Started == nil || !*cs.Started {
				pending = append(pending, cs.Name)
			}
		case cs.State.Terminated != nil && cs.State.Terminated.ExitCode == 0:
		default:
			pending = append(pending, cs.Name)
			if t := cs.State.Terminated; t != nil && t.ExitCode != 0 {
				failed = true
			} else if cs.State.Waiting != nil && cs.LastTerminationState.Terminated != nil && cs.LastTerminationState.Terminated.ExitCode != 0 {
				failed = true
			}
		}
	}
	return len(pending) == 0, pending, failed
}

// PendingStatus is the status of a pod that is not running on any device:
// phase Pending, PodScheduled and Initialized True, ContainersReady and Ready
// False with reason and message, and every container Waiting with reason and
// message. Use it with reasons.ContainerCreating while the pod waits for its
// device, and with a reason such as "Unschedulable" or an UnsupportedError's
// reason for a pod that cannot run (yet). Restart counts, last termination
// states, startTime and qosClass are kept from pod.Status.
func PendingStatus(pod *corev1.Pod, reason, message string, now time.Time) corev1.PodStatus {
	status := kept(pod)
	status.Phase = corev1.PodPending
	status.ContainerStatuses = make([]corev1.ContainerStatus, 0, len(pod.Spec.Containers))
	for _, c := range pod.Spec.Containers {
		cs := waitingStatus(c, reason, message)
		if old := findContainerStatus(pod.Status.ContainerStatuses, c.Name); old != nil {
			cs.RestartCount = old.RestartCount
			cs.LastTerminationState = *old.LastTerminationState.DeepCopy()
		}
		status.ContainerStatuses = append(status.ContainerStatuses, cs)
	}
	ready := readyCondition{status: corev1.ConditionFalse, reason: reason, message: message}
	status.Conditions = conditions(pod, status.Conditions, ready, now)
	return status
}

// FailedStatus is the status of a pod that can never run, for example because
// Validate rejected it: phase Failed with reason and message, ContainersReady
// and Ready False with reason PodFailed. A container that had terminated keeps
// its state; one that was running is terminated (exit code 137) with reason
// and message; any other waits with reason and message. Host and pod IPs,
// startTime, restart counts and qosClass are kept from pod.Status.
func FailedStatus(pod *corev1.Pod, reason, message string, now time.Time) corev1.PodStatus {
	status := kept(pod)
	status.Phase = corev1.PodFailed
	status.Reason = reason
	status.Message = message
	old := pod.Status.DeepCopy()
	status.HostIP, status.HostIPs = old.HostIP, old.HostIPs
	status.PodIP, status.PodIPs = old.PodIP, old.PodIPs
	status.ContainerStatuses = make([]corev1.ContainerStatus, 0, len(pod.Spec.Containers))
	for _, c := range pod.Spec.Containers {
		cs := waitingStatus(c, reason, message)
		if prev := findContainerStatus(old.ContainerStatuses, c.Name); prev != nil {
			cs.RestartCount = prev.RestartCount
			cs.LastTerminationState = prev.LastTerminationState
			cs.ImageID = prev.ImageID
			switch {
			case prev.State.Terminated != nil:
				cs.State = prev.State
			case prev.State.Running != nil:
				cs.State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
					ExitCode:   exitCodeKilled,
					Reason:     reason,
					Message:    message,
					StartedAt:  prev.State.Running.StartedAt,
					FinishedAt: apiTime(now),
				}}
			}
		}
		status.ContainerStatuses = append(status.ContainerStatuses, cs)
	}
	ready := readyCondition{status: corev1.ConditionFalse, reason: efv1.ReasonPodFailed}
	status.Conditions = conditions(pod, status.Conditions, ready, now)
	return status
}

// kept returns a status holding what the provider does not own and keeps
// across updates: fields written by the scheduler and controllers, conditions
// of types it does not generate, startTime, and qosClass (computed if unset).
func kept(pod *corev1.Pod) corev1.PodStatus {
	old := pod.Status.DeepCopy()
	status := corev1.PodStatus{
		ObservedGeneration:          pod.Generation,
		NominatedNodeName:           old.NominatedNodeName,
		ResourceClaimStatuses:       old.ResourceClaimStatuses,
		ExtendedResourceClaimStatus: old.ExtendedResourceClaimStatus,
		StartTime:                   old.StartTime,
		QOSClass:                    old.QOSClass,
		Conditions:                  old.Conditions,
	}
	if status.QOSClass == "" {
		status.QOSClass = qosClass(pod)
	}
	return status
}

func hostIPs(ip string) []corev1.HostIP {
	if ip == "" {
		return nil
	}
	return []corev1.HostIP{{IP: ip}}
}

func podIPs(ip string) []corev1.PodIP {
	if ip == "" {
		return nil
	}
	return []corev1.PodIP{{IP: ip}}
}

func findContainerStatus(statuses []corev1.ContainerStatus, name string) *corev1.ContainerStatus {
	for i := range statuses {
		if statuses[i].Name == name {
			return &statuses[i]
		}
	}
	return nil
}

func waitingStatus(c corev1.Container, reason, message string) corev1.ContainerStatus {
	return corev1.ContainerStatus{
		Name:    c.Name,
		Image:   c.Image,
		State:   corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: message}},
		Started: new(false),
	}
}

func containerStatus(c corev1.Container, cs *hubv1.ContainerStatus) corev1.ContainerStatus {
	state := containerState(cs.GetState())
	if state == (corev1.ContainerState{}) {
		state.Waiting = &corev1.ContainerStateWaiting{Reason: reasons.ContainerCreating}
	}
	running := state.Running != nil
	// Started follows the startup probe; a container without one has
	// started once it runs.
	started := running && (cs.GetStarted() || c.StartupProbe == nil)
	return corev1.ContainerStatus{
		Name:                 c.Name,
		Image:                c.Image,
		ImageID:              cs.GetImageId(),
		State:                state,
		LastTerminationState: containerState(cs.GetLastState()),
		RestartCount:         cs.GetRestartCount(),
		Ready:                started && cs.GetReady(),
		Started:              new(started),
	}
}

func containerState(s *hubv1.ContainerState) corev1.ContainerState {
	if w := s.GetWaiting(); w != nil {
		return corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{
			Reason:  w.GetReason(),
			Message: w.GetMessage(),
		}}
	}
	if r := s.GetRunning(); r != nil {
		return corev1.ContainerState{Running: &corev1.ContainerStateRunning{
			StartedAt: protoTime(r.GetStartedAt()),
		}}
	}
	if t := s.GetTerminated(); t != nil {
		reason := t.GetReason()
		if reason == "" {
			// What container runtimes report when they give no reason.
			reason = reasons.Completed
			if t.GetExitCode() != 0 {
				reason = reasons.Error
			}
		}
		return corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
			ExitCode:   t.GetExitCode(),
			Reason:     reason,
			Message:    t.GetMessage(),
			StartedAt:  protoTime(t.GetStartedAt()),
			FinishedAt: protoTime(t.GetFinishedAt()),
		}}
	}
	return corev1.ContainerState{}
}

// derivePhase is the kubelet's pod phase for a pod without init containers.
func derivePhase(restartPolicy corev1.RestartPolicy, statuses []corev1.ContainerStatus) corev1.PodPhase {
	var running, waiting, stopped, succeeded int
	for _, cs := range statuses {
		switch {
		case cs.State.Running != nil:
			running++
		case cs.State.Terminated != nil:
			stopped++
			if cs.State.Terminated.ExitCode == 0 {
				succeeded++
			}
		case cs.LastTerminationState.Terminated != nil:
			// Waiting to restart after it stopped.
			stopped++
		default:
			waiting++
		}
	}
	switch {
	case waiting > 0:
		return corev1.PodPending
	case running > 0:
		return corev1.PodRunning
	case stopped == 0:
		return corev1.PodPending
	case restartPolicy == corev1.RestartPolicyAlways || restartPolicy == "":
		return corev1.PodRunning
	case stopped == succeeded:
		return corev1.PodSucceeded
	case restartPolicy == corev1.RestartPolicyNever:
		return corev1.PodFailed
	default:
		// OnFailure: the failed containers are restarting.
		return corev1.PodRunning
	}
}

// readyCondition is the status, reason and message of ContainersReady.
type readyCondition struct {
	status          corev1.ConditionStatus
	reason, message string
}

// ownedConditions are the condition types conditions generates.
var ownedConditions = []corev1.PodConditionType{
	corev1.PodScheduled, corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady,
}

// conditions returns the conditions the provider owns, computed from
// containersReady and the pod's readiness gates, followed by the conditions
// in old it does not own.
func conditions(pod *corev1.Pod, old []corev1.PodCondition, containersReady readyCondition, now time.Time) []corev1.PodCondition {
	return conditionsInit(pod, old, readyCondition{status: corev1.ConditionTrue}, containersReady, now)
}

// conditionsInit is conditions with the Initialized condition given.
func conditionsInit(pod *corev1.Pod, old []corev1.PodCondition, initialized, containersReady readyCondition, now time.Time) []corev1.PodCondition {
	var others []corev1.PodCondition
	for _, c := range old {
		if !slices.Contains(ownedConditions, c.Type) {
			others = append(others, c)
		}
	}

	ready := containersReady
	if ready.status == corev1.ConditionTrue {
		var unready []string
		for _, gate := range pod.Spec.ReadinessGates {
			i := slices.IndexFunc(others, func(c corev1.PodCondition) bool { return c.Type == gate.ConditionType })
			switch {
			case i < 0:
				unready = append(unready, fmt.Sprintf("corresponding condition of pod readiness gate %q does not exist.", gate.ConditionType))
			case others[i].Status != corev1.ConditionTrue:
				unready = append(unready, fmt.Sprintf("the status of pod readiness gate %q is not \"True\", but %v", gate.ConditionType, others[i].Status))
			}
		}
		if len(unready) > 0 {
			ready = readyCondition{
				status:  corev1.ConditionFalse,
				reason:  efv1.ReasonReadinessGatesNotReady,
				message: strings.Join(unready, ", "),
			}
		}
	}

	condition := func(t corev1.PodConditionType, r readyCondition) corev1.PodCondition {
		c := corev1.PodCondition{
			Type:               t,
			ObservedGeneration: pod.Generation,
			Status:             r.status,
			Reason:             r.reason,
			Message:            r.message,
			LastTransitionTime: apiTime(now),
		}
		i := slices.IndexFunc(old, func(o corev1.PodCondition) bool { return o.Type == t })
		if i >= 0 && old[i].Status == r.status && !old[i].LastTransitionTime.IsZero() {
			c.LastTransitionTime = old[i].LastTransitionTime
		}
		return c
	}
	isTrue := readyCondition{status: corev1.ConditionTrue}
	return append([]corev1.PodCondition{
		condition(corev1.PodScheduled, isTrue),
		condition(corev1.PodInitialized, initialized),
		condition(corev1.ContainersReady, containersReady),
		condition(corev1.PodReady, ready),
	}, others...)
}

// qosClass computes the pod's QoS class like Kubernetes: from pod-level
// resources if set, else from all containers' cpu and memory requests and
// limits.
func qosClass(pod *corev1.Pod) corev1.PodQOSClass {
	if r := pod.Spec.Resources; r != nil && hasComputeResources(r) {
		return requirementsQOS(r)
	}
	var qos corev1.PodQOSClass
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range cs {
			c := requirementsQOS(&cs[i].Resources)
			switch {
			case c == corev1.PodQOSBurstable:
				return c
			case qos == "":
				qos = c
			case qos != c:
				return corev1.PodQOSBurstable
			}
		}
	}
	if qos == "" {
		return corev1.PodQOSBestEffort
	}
	return qos
}

func hasComputeResources(r *corev1.ResourceRequirements) bool {
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if _, ok := r.Requests[name]; ok {
			return true
		}
		if _, ok := r.Limits[name]; ok {
			return true
		}
	}
	return false
}

func requirementsQOS(r *corev1.ResourceRequirements) corev1.PodQOSClass {
	if len(r.Requests) == 0 && len(r.Limits) == 0 {
		return corev1.PodQOSBestEffort
	}
	var qos corev1.PodQOSClass
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, lim := r.Requests[name], r.Limits[name]
		var c corev1.PodQOSClass
		switch {
		case !req.Equal(lim):
			return corev1.PodQOSBurstable
		case req.IsZero():
			c = corev1.PodQOSBestEffort
		default:
			c = corev1.PodQOSGuaranteed
		}
		if qos == "" {
			qos = c
		} else if qos != c {
			return corev1.PodQOSBurstable
		}
	}
	return qos
}

// fencedReport reports whether the device says it fenced the workload.
func fencedReport(ws *hubv1.WorkloadStatus) bool {
	for _, c := range append(slices.Clone(ws.GetInitContainers()), ws.GetContainers()...) {
		if c.GetState().GetTerminated().GetReason() == reasons.Fenced || c.GetState().GetWaiting().GetReason() == reasons.Fenced {
			return true
		}
	}
	return false
}
