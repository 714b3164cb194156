package lifecycle

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	efv1 "github.com/edgefabric/edgefabric/pkg/apis/edgefabric/v1alpha1"
	hubv1 "github.com/edgefabric/edgefabric/pkg/apis/hub/v1"
	"github.com/edgefabric/edgefabric/pkg/apis/hub/v1/reasons"
	"github.com/edgefabric/edgefabric/pkg/provider/translate"
)

// Config holds what the lifecycle's decisions depend on besides the pod.
type Config struct {
	// DeviceLossGrace is how long a pod's device may be away before the pod
	// is placed again, for pods without the device-loss-grace annotation.
	DeviceLossGrace time.Duration
	// PendingDelay is how long after a placement a device's report that the
	// containers are being created is held rather than written.
	PendingDelay time.Duration
}

// Phase is where a pod is in its lifecycle. See the package doc.
type Phase uint8

const (
	Unplaced Phase = iota
	Waiting
	Failed
	Creating
	Running
	Misplaced
	Deleting
	Gone
)

var phaseNames = [...]string{"unplaced", "waiting", "failed", "creating", "running", "misplaced", "deleting", "gone"}

func (p Phase) String() string {
	if int(p) < len(phaseNames) {
		return phaseNames[p]
	}
	return "phase(" + strconv.Itoa(int(p)) + ")"
}

// Pod is what a node knows of one of its pods. Step never changes a Pod it
// is given, nor what it points to: it returns a new one.
type Pod struct {
	// Pod is the pod as last seen, with the status last written.
	Pod   *corev1.Pod
	Phase Phase
	// Device is the device the pod is given to; "" while it has none.
	Device string
	// Waiting is why a Waiting pod is not on a device
	// (Unschedulable or CreateContainerConfigError).
	Waiting string
	// Epoch is the fencing epoch of the pod's current assignment; it grows
	// each time the pod is placed on another device. A pod with a non-zero
	// epoch ran on a device of the cluster before, and is never rejected.
	Epoch uint64
	// Seq is the sequence number of the last report taken; reports older
	// than it are dropped.
	Seq uint64
	// Sent is the workload last given to Device.
	Sent *hubv1.Workload
	// Held is a Creating pod's report, held until CreatingDue.
	Held *corev1.PodStatus
	// Platform is the os/arch of the device a Misplaced pod is on.
	Platform string
	// Evicted is set once the pod was deleted because its cluster
	// dissolved, so that that is done, and told, once.
	Evicted bool
}

// Placed reports whether the pod holds room on Device: it was given a
// workload there and is not being deleted.
func (p Pod) Placed() bool {
	return p.Device != "" && p.Sent != nil && p.Phase != Deleting && p.Phase != Gone
}

// Refreshable reports whether a Refresh event can change what the pod's
// device has: it runs, and its volumes hold data from other objects.
func (p Pod) Refreshable() bool {
	if p.Device == "" || p.Sent == nil || (p.Phase != Creating && p.Phase != Running && p.Phase != Misplaced) {
		return false
	}
	for _, v := range p.Pod.Spec.Volumes {
		if v.ConfigMap != nil || v.Secret != nil || v.Projected != nil || v.DownwardAPI != nil {
			return true
		}
	}
	return false
}

// LossGrace is how long the pod's device may be away before it is placed
// again: its annotation, else cfg.DeviceLossGrace.
func (cfg Config) LossGrace(pod *corev1.Pod) time.Duration {
	if d, ok, err := translate.DeviceLossGrace(pod); ok && err == nil {
		return d
	}
	return cfg.DeviceLossGrace
}

// Event is what happens to a pod. The types below implement it.
type Event interface{ event() }

// Create: the pod was bound to the node (or created again by the pod
// controller). Device and Epoch are its recorded placement to adopt
// (RecordedPlacement, checked against the cluster's members), or empty.
type Create struct {
	Pod    *corev1.Pod
	Device string
	Epoch  uint64
	// Tenancy is why the pod's namespace may not run pods on the node's
	// account ("" if it may). TenancyUnknown: that could not be told now;
	// the pod waits for the pod controller to create it again.
	Tenancy        string
	TenancyUnknown bool
}

// Recover: after a provider restart, the pod was found placed on Device
// with Epoch, and Workload is its translation.
type Recover struct {
	Pod      *corev1.Pod
	Device   string
	Epoch    uint64
	Workload *hubv1.Workload
}

// Update: the pod changed in Kubernetes.
type Update struct{ Pod *corev1.Pod }

// Delete: the pod is being deleted in Kubernetes.
type Delete struct{ Pod *corev1.Pod }

// Unreachable: the device of a Deleting pod cannot confirm it stopped (it
// is not connected); the pod is done.
type Unreachable struct{}

// Placed: placement (asked for by a Place action) put the pod on Device
// with Workload. Chosen: placement chose the device (not the pod's own).
type Placed struct {
	Device   string
	Workload *hubv1.Workload
	Chosen   bool
}

// Unplaceable: the pod cannot be placed now. Reason is Unschedulable or
// CreateContainerConfigError.
type Unplaceable struct{ Reason, Message string }

// Rejected: no device of the cluster could ever take the pod (OutOfcpu,
// …); only a pod that never ran here (Epoch 0) is rejected.
type Rejected struct{ Reason, Message string }

// Report: the pod's device reported its workload's status. Device is that
// device as the fabric knows it; nil if not connected.
type Report struct {
	Status *hubv1.WorkloadStatus
	Device *Device
}

// Device is what the lifecycle needs of a device.
type Device struct {
	ID        string
	OS, Arch  string
	Addresses []string
	Online    bool
	LastSeen  time.Time
}

// CreatingDue: PendingDelay has passed since the pod was placed on Device.
type CreatingDue struct{ Device string }

// Tick: time passed, or the node's devices changed. It carries what the
// pods' device-loss decisions need.
type Tick struct {
	// Devices are the account's devices by ID (absent: unknown).
	Devices map[string]Device
	// Since is when the provider started: a device not seen since is
	// counted as lost from then.
	Since time.Time
	// Left holds when each device that was a member of the cluster stopped
	// being one.
	Left map[string]time.Time
	// Dissolved is when the cluster stopped being formed; zero while it is.
	Dissolved time.Time
	// Removed is a device dropped from the fleet, why says how; its pods
	// move at once.
	Removed, Why string
	// Cluster names the node's cluster in messages ("network cluster x").
	Cluster, Node string
}

// Retry: devices changed; waiting pods may fit, misplaced pods move.
type Retry struct{}

// Refresh: the pod's translation now is Workload (its volumes' data may
// have changed), made for Device from Base, the workload the pod had then.
// It is dropped if the pod has been given another since.
type Refresh struct {
	Device         string
	Base, Workload *hubv1.Workload
}

// EvictFailed: the Evict action did not delete the pod; try again.
type EvictFailed struct{}

func (Create) event()      {}
func (Recover) event()     {}
func (Update) event()      {}
func (Delete) event()      {}
func (Unreachable) event() {}
func (Placed) event()      {}
func (Unplaceable) event() {}
func (Rejected) event()    {}
func (Report) event()      {}
func (CreatingDue) event() {}
func (Tick) event()        {}
func (Retry) event()       {}
func (Refresh) event()     {}
func (EvictFailed) event() {}

// Action is what the caller of Step must do. The types below implement it.
type Action interface{ action() }

// Assign gives Workload to Device (fabric Assign).
type Assign struct {
	Device   string
	Workload *hubv1.Workload
}

// Unassign takes the pod off its device (fabric Remove). Confirm: feed
// Unreachable back if the device is not connected to confirm it stopped.
type Unassign struct{ Confirm bool }

// Place asks placement for a device (Device "" ) or for the pod's
// translation on Device, and to feed back Placed, Unplaceable or (only if
// MayReject) Rejected.
type Place struct {
	Device    string
	MayReject bool
}

// WriteStatus tells virtual-kubelet the pod (a copy the caller may keep),
// whose status changed.
type WriteStatus struct{ Pod *corev1.Pod }

// Record records an event on the pod.
type Record struct{ Type, Reason, Message string }

// Log logs Msg with Args at info level (Warn for warnings).
type Log struct {
	Warn bool
	Msg  string
	Args []any
}

// StartCreating has the caller feed CreatingDue{Device} After from now.
type StartCreating struct {
	Device string
	After  time.Duration
}

// LearnPlatforms remembers the os/arch platforms of an image, so that
// placement filters on them.
type LearnPlatforms struct {
	Image     string
	Platforms []string
}

// Nudge has the caller feed Retry soon (not from the listener that stepped).
type Nudge struct{}

// RemoveObject deletes the pod object, whose containers stopped, with no
// further grace.
type RemoveObject struct{ Pod *corev1.Pod }

// Evict deletes the pod object (its cluster dissolved), as the node
// lifecycle controller evicts a lost node's pods; feed EvictFailed back if
// that fails.
type Evict struct{ Pod *corev1.Pod }

// Forget drops the pod: the fabric's copy and the node's state.
type Forget struct{}

func (Assign) action()         {}
func (Unassign) action()       {}
func (Place) action()          {}
func (WriteStatus) action()    {}
func (Record) action()         {}
func (Log) action()            {}
func (StartCreating) action()  {}
func (LearnPlatforms) action() {}
func (Nudge) action()          {}
func (RemoveObject) action()   {}
func (Evict) action()          {}
func (Forget) action()         {}

// step is the work of one Step: the state being built and its actions.
type step struct {
	cfg Config
	p   Pod
	now time.Time
	out []Action
}

func (s *step) do(a ...Action) { s.out = append(s.out, a...) }

// ref is the pod as namespace/name, for logs.
func (s *step) ref() string { return s.p.Pod.Namespace + "/" + s.p.Pod.Name }

// record records an event on the pod.
func (s *step) record(typ, reason, format string, args ...any) {
	msg := format
	if len(args) > 0 {
		msg = fmt.Sprintf(format, args...)
	}
	s.do(Record{Type: typ, Reason: reason, Message: msg})
}

// setStatus writes status as the pod's status.
func (s *step) setStatus(status corev1.PodStatus) {
	pod := s.p.Pod.DeepCopy()
	pod.Status = status
	s.p.Pod = pod
	s.do(WriteStatus{Pod: pod.DeepCopy()})
}

// takeMeta takes pod's metadata and spec, keeping the status.
func (s *step) takeMeta(pod *corev1.Pod) {
	cur := s.p.Pod.DeepCopy()
	cur.ObjectMeta = *pod.ObjectMeta.DeepCopy()
	cur.Spec = *pod.Spec.DeepCopy()
	s.p.Pod = cur
}

// Step returns the pod's state after ev at now, and the actions to carry out
// in order.
func Step(cfg Config, p Pod, ev Event, now time.Time) (Pod, []Action) {
	s := &step{cfg: cfg, p: p, now: now}
	_, creates := ev.(Create)
	if _, recovers := ev.(Recover); (p.Pod == nil && !creates && !recovers) || p.Phase == Gone {
		// Not a pod the node knows (any longer).
		if pl, ok := ev.(Placed); ok && pl.Chosen {
			s.do(Unassign{}) // give up the room placement held
		}
		return p, s.out
	}
	switch ev := ev.(type) {
	case Create:
		s.create(ev)
	case Recover:
		s.recover(ev)
	case Update:
		s.update(ev)
	case Delete:
		s.takeMeta(ev.Pod)
		s.p.Phase = Deleting
		s.p.Held = nil
		s.do(Unassign{Confirm: true})
	case Unreachable:
		if s.p.Phase == Deleting {
			s.finish(nil)
		}
	case Placed:
		s.placed(ev)
	case Unplaceable:
		if s.p.Phase == Deleting {
			return s.p, s.out
		}
		s.wait(ev.Reason, ev.Message)
	case Rejected:
		if s.p.Phase == Deleting {
			return s.p, s.out
		}
		s.p.Phase, s.p.Waiting = Failed, ""
		s.do(Log{Msg: "pod rejected: no device has room", Args: []any{"pod", s.ref(), "reason", ev.Reason}})
		s.record(corev1.EventTypeWarning, ev.Reason, "%s", ev.Message)
		s.setStatus(translate.FailedStatus(s.p.Pod, ev.Reason, ev.Message, now))
	case Report:
		s.report(ev)
	case CreatingDue:
		s.creatingDue(ev)
	case Tick:
		s.tick(ev)
	case Retry:
		s.retry()
	case Refresh:
		s.refresh(ev)
	case EvictFailed:
		s.p.Evicted = false
	default:
		panic(fmt.Sprintf("lifecycle: unknown event %T", ev))
	}
	return s.p, s.out
}

func (s *step) create(ev Create) {
	if s.p.Pod == nil {
		s.p = Pod{Pod: ev.Pod.DeepCopy(), Device: ev.Device, Epoch: ev.Epoch}
	} else {
		s.takeMeta(ev.Pod)
	}
	pod := s.p.Pod
	err := translate.Validate(pod)
	if err == nil {
		err = translate.FenceGraceError(pod, s.cfg.LossGrace(pod))
	}
	if err != nil {
		reason := efv1.ReasonUnsupported
		var ue *translate.UnsupportedError
		if errors.As(err, &ue) {
			reason = ue.Reason
		}
		s.fail(reason, err.Error())
		return
	}
	if ev.TenancyUnknown {
		return
	}
	if ev.Tenancy != "" {
		s.fail(efv1.ReasonAccountMismatch, ev.Tenancy)
		return
	}
	s.place()
}

// fail makes the pod Failed: it never runs here.
func (s *step) fail(reason, message string) {
	s.record(corev1.EventTypeWarning, reason, "%s", message)
	s.p.Phase = Failed
	s.setStatus(translate.FailedStatus(s.p.Pod, reason, message, s.now))
}

// place asks placement for the pod's device (its own, if it has one).
func (s *step) place() {
	if s.p.Phase == Failed || s.p.Phase == Deleting {
		return
	}
	s.do(Place{Device: s.p.Device, MayReject: s.p.Epoch == 0})
}

func (s *step) recover(ev Recover) {
	w := proto.CloneOf(ev.Workload)
	w.FencingEpoch = ev.Epoch
	s.fenceGrace(ev.Pod, w)
	s.p = Pod{Pod: ev.Pod.DeepCopy(), Phase: Running, Device: ev.Device, Epoch: ev.Epoch, Sent: w}
	s.do(Assign{Device: ev.Device, Workload: w})
}

// fenceGrace gives a workload that fences on partition its pod's effective
// device-loss grace: the device stops it before that has passed without
// word from the hub.
func (s *step) fenceGrace(pod *corev1.Pod, w *hubv1.Workload) {
	if w.GetFenceOnPartition() {
		w.DeviceLossGraceMillis = s.cfg.LossGrace(pod).Milliseconds()
	}
}

func (s *step) update(ev Update) {
	s.takeMeta(ev.Pod)
	if s.p.Device != "" && (s.p.Phase == Creating || s.p.Phase == Running) {
		s.place() // its workload again, on its device
	}
}

func (s *step) placed(ev Placed) {
	if s.p.Phase == Deleting || s.p.Phase == Failed {
		if ev.Chosen {
			s.do(Unassign{}) // give up the room placement held
		}
		return
	}
	if ev.Chosen {
		s.record(corev1.EventTypeNormal, efv1.ReasonScheduled, "Scheduled to device %s", ev.Device)
	}
	if s.p.Device != ev.Device {
		s.p.Epoch++ // a new assignment
	}
	s.p.Device, s.p.Waiting, s.p.Platform = ev.Device, "", ""
	w := proto.CloneOf(ev.Workload)
	w.FencingEpoch = s.p.Epoch
	s.fenceGrace(s.p.Pod, w)
	// virtual-kubelet writes status with the pod as GetPod returns it,
	// metadata included: the placement is written with the next status.
	pod := s.p.Pod.DeepCopy()
	MarkPlaced(pod, ev.Device, s.p.Epoch, s.now)
	s.p.Pod = pod
	s.p.Sent = w
	s.p.Phase, s.p.Held = Creating, nil
	s.do(Assign{Device: ev.Device, Workload: w}, StartCreating{Device: ev.Device, After: s.cfg.PendingDelay})
}

// wait leaves the pod Pending for reason; Retry places it again.
func (s *step) wait(reason, message string) {
	first := s.p.Waiting != reason
	s.p.Phase, s.p.Waiting, s.p.Held = Waiting, reason, nil
	if first {
		s.record(corev1.EventTypeWarning, eventReason(reason), "%s", message)
	}
	s.setStatus(translate.PendingStatus(s.p.Pod, reason, message, s.now))
}

func eventReason(waiting string) string {
	switch waiting {
	case efv1.ReasonUnschedulable:
		return efv1.ReasonFailedScheduling
	case reasons.CreateContainerConfigError:
		return reasons.Failed
	}
	return waiting
}

func (s *step) report(ev Report) {
	ws := ev.Status
	if ws.GetSeq() != 0 && ws.GetSeq() < s.p.Seq {
		return
	}
	s.p.Seq = max(ws.GetSeq(), 1)
	if s.p.Phase == Deleting {
		if allTerminated(s.p.Pod, ws) {
			s.finish(ws)
		}
		return
	}
	if s.wrongPlatform(ev) {
		return
	}
	ws, ip := s.checkPodIP(ev)
	status := translate.PodStatus(s.p.Pod, ws, ip, s.now)
	if s.p.Phase == Creating {
		if onlyCreating(ws) {
			s.p.Held = &status
			return
		}
		s.p.Phase, s.p.Held = Running, nil
	}
	s.setStatus(status)
}

// wrongPlatform handles a device that cannot pull a container's image
// because the image is not for its os/arch: the image's platforms are
// learnt, and the pod is moved on the next Retry. A device whose os/arch is
// among the platforms reported (a variant it lacks, say) is left to report
// ErrImagePull.
func (s *step) wrongPlatform(ev Report) bool {
	var ref string
	var platforms []string
	for _, c := range append(slices.Clone(ev.Status.GetInitContainers()), ev.Status.GetContainers()...) {
		if len(c.GetImagePlatforms()) > 0 {
			ref, platforms = c.GetImage(), c.GetImagePlatforms()
			break
		}
	}
	d := ev.Device
	if ref == "" || d == nil || s.p.Device == "" || d.ID != s.p.Device {
		return false
	}
	platform := d.OS + "/" + d.Arch
	if slices.Contains(platforms, platform) {
		return false
	}
	s.do(LearnPlatforms{Image: ref, Platforms: slices.Clone(platforms)},
		Log{Msg: "device cannot run the image", Args: []any{"device", d.ID, "platform", platform, "image", ref, "imagePlatforms", platforms}})
	if s.p.Phase == Creating || s.p.Phase == Running || s.p.Phase == Misplaced {
		s.p.Phase, s.p.Platform, s.p.Held = Misplaced, platform, nil
	}
	s.do(Nudge{})
	return true
}

// checkPodIP returns the device's report with a pod IP the device may claim
// (ReportedPodIP), and the device's address, the pod's host IP. A rejected
// IP is logged and told in an event.
func (s *step) checkPodIP(ev Report) (*hubv1.WorkloadStatus, string) {
	ws, d := ev.Status, ev.Device
	if d == nil || d.ID != s.p.Device {
		// Not connected: its report is not taken as to where the pod is.
		ws = proto.CloneOf(ws)
		ws.PodIp = ""
		return ws, s.p.Pod.Status.HostIP
	}
	ip, rejected := ReportedPodIP(ws.GetPodIp(), d.Addresses)
	if rejected != "" {
		s.do(Log{Warn: true, Msg: "device reported a pod IP not its own; using the device's address", Args: []any{"pod", s.ref(), "device", d.ID, "reported", rejected, "addresses", d.Addresses}})
		s.record(corev1.EventTypeWarning, efv1.ReasonPodIPRejected, "Device %s reported pod IP %q, which is not one of its addresses (%v); the pod IP is the device's address %s", d.ID, rejected, d.Addresses, ip)
	}
	if ip != ws.GetPodIp() {
		ws = proto.CloneOf(ws)
		ws.PodIp = ip
	}
	return ws, d.IP()
}

// IP is the device's first address, "" if it has none.
func (d *Device) IP() string {
	if d == nil || len(d.Addresses) == 0 {
		return ""
	}
	return d.Addresses[0]
}

// ReportedPodIP is the pod IP to publish for a device's report: the IP the
// device reported if it is one of the device's own addresses (as its hello
// gave them), else the device's address. A device is trusted to say which
// of its addresses a pod is served on, never to point a Service's endpoints
// at an address of another machine. rejected is the reported IP when it was
// not taken.
func ReportedPodIP(reported string, addresses []string) (ip, rejected string) {
	first := ""
	if len(addresses) > 0 {
		first = addresses[0]
	}
	if reported == "" {
		return first, ""
	}
	if r, err := netip.ParseAddr(reported); err == nil {
		for _, a := range addresses {
			if ad, err := netip.ParseAddr(a); err == nil && ad.Unmap() == r.Unmap() {
				return a, ""
			}
		}
	}
	return first, reported
}

// onlyCreating reports whether a device's report says no more than that the
// pod's containers are being created.
func onlyCreating(ws *hubv1.WorkloadStatus) bool {
	for _, c := range append(slices.Clone(ws.GetInitContainers()), ws.GetContainers()...) {
		w := c.GetState().GetWaiting()
		if w == nil || w.GetMessage() != "" || c.GetRestartCount() != 0 ||
			(w.GetReason() != reasons.ContainerCreating && w.GetReason() != reasons.PodInitializing) {
			return false
		}
	}
	return true
}

func allTerminated(pod *corev1.Pod, ws *hubv1.WorkloadStatus) bool {
	if ws.GetPhase() == "Succeeded" || ws.GetPhase() == "Failed" {
		return true
	}
	term := 0
	for _, c := range ws.GetContainers() {
		if c.GetState().GetTerminated() != nil {
			term++
		}
	}
	return term >= len(pod.Spec.Containers)
}

// creatingDue writes the report held since the pod was placed, or marks the
// pod ContainerCreating if its device has not reported on it: most devices
// report more (Running) within PendingDelay, and that report is then the
// pod's first status write.
func (s *step) creatingDue(ev CreatingDue) {
	if s.p.Phase != Creating || s.p.Device != ev.Device {
		return
	}
	held := s.p.Held
	s.p.Phase, s.p.Held = Running, nil
	switch {
	case held != nil:
		s.setStatus(*held)
	case s.p.Seq == 0:
		s.setStatus(translate.PendingStatus(s.p.Pod, reasons.ContainerCreating, "", s.now))
	}
}

// finish reports the deleted pod terminated and forgets it.
func (s *step) finish(last *hubv1.WorkloadStatus) {
	s.setStatus(terminalStatus(s.p.Pod, last, s.now))
	if s.p.Pod.DeletionTimestamp != nil {
		// As the kubelet does once a deleted pod's containers have stopped:
		// remove the object now rather than at the end of its grace period.
		s.do(RemoveObject{Pod: s.p.Pod.DeepCopy()})
	}
	s.p.Phase = Gone
	s.do(Forget{})
}

// terminalStatus is the last status of a deleted pod: every container
// terminated (as the device reported, else with reason Killed) and a terminal
// phase, so virtual-kubelet removes the pod at once.
func terminalStatus(pod *corev1.Pod, last *hubv1.WorkloadStatus, now time.Time) corev1.PodStatus {
	ws := &hubv1.WorkloadStatus{Uid: string(pod.UID)}
	if last != nil {
		ws = last
	}
	reported := map[string]*hubv1.ContainerStatus{}
	for _, c := range ws.GetContainers() {
		reported[c.GetName()] = c
	}
	phase := "Succeeded"
	var cs []*hubv1.ContainerStatus
	for _, c := range pod.Spec.Containers {
		r := reported[c.Name]
		if r == nil || r.GetState().GetTerminated() == nil {
			r = &hubv1.ContainerStatus{Name: c.Name, RestartCount: r.GetRestartCount(), ImageId: r.GetImageId(), State: &hubv1.ContainerState{
				State: &hubv1.ContainerState_Terminated_{Terminated: &hubv1.ContainerState_Terminated{
					ExitCode: 137, Reason: reasons.Killed, Message: "pod deleted", FinishedAt: timestamppb.New(now),
				}},
			}}
		}
		if r.GetState().GetTerminated().GetExitCode() != 0 {
			phase = "Failed"
		}
		cs = append(cs, r)
	}
	out := &hubv1.WorkloadStatus{Uid: ws.GetUid(), Containers: cs, Phase: phase, PodIp: ws.GetPodIp(), StartTime: ws.GetStartTime()}
	return translate.PodStatus(pod, out, pod.Status.HostIP, now)
}

// tick evicts the pod of a dissolved cluster, and moves the pod whose device
// was removed, left the cluster, or was lost longer than the pod's grace.
// The lost device's desired state no longer holds the pod, so when it comes
// back the first thing it is sent, the full desired state, stops its stale
// copy.
func (s *step) tick(ev Tick) {
	grace := s.cfg.LossGrace(s.p.Pod)
	if !ev.Dissolved.IsZero() {
		// The node will be deleted: no pod may stay bound to it.
		if s.p.Phase != Deleting && !s.p.Evicted && s.now.Sub(ev.Dissolved) >= grace {
			s.p.Evicted = true
			s.do(Log{Msg: "cluster dissolved, evicting pod", Args: []any{"pod", s.ref(), "node", ev.Node}})
			s.record(corev1.EventTypeWarning, efv1.ReasonClusterDissolved, "No device has formed %s for %s; evicting the pod from node %s so that its controller places it again",
				ev.Cluster, s.now.Sub(ev.Dissolved).Round(time.Second), ev.Node)
			s.do(Evict{Pod: s.p.Pod.DeepCopy()})
		}
		return
	}
	if s.p.Device == "" || (s.p.Phase != Creating && s.p.Phase != Running && s.p.Phase != Misplaced) {
		return
	}
	if ph := s.p.Pod.Status.Phase; ph == corev1.PodSucceeded || ph == corev1.PodFailed {
		return
	}
	dev := s.p.Device
	if ev.Removed != "" && dev == ev.Removed {
		s.do(Log{Msg: "device removed from the fleet, placing pod again", Args: []any{"pod", s.ref(), "device", dev, "why", ev.Why}})
		s.move(efv1.ReasonDeviceRemoved, "Device %s %s; placing the pod on another device", dev, ev.Why)
		return
	}
	if since, ok := ev.Left[dev]; ok {
		if off := s.now.Sub(since); off >= grace {
			s.do(Log{Msg: "device left the cluster, placing pod again", Args: []any{"pod", s.ref(), "device", dev, "node", ev.Node}})
			s.move(efv1.ReasonDeviceLeftCluster, "Device %s left %s %s ago; placing the pod on a device of the cluster", dev, ev.Cluster, off.Round(time.Second))
		}
		return
	}
	d, ok := ev.Devices[dev]
	if ok && d.Online {
		return
	}
	since := ev.Since
	if ok && d.LastSeen.After(since) {
		since = d.LastSeen
	}
	if off := s.now.Sub(since); off >= grace {
		s.do(Log{Msg: "device lost, placing pod again", Args: []any{"pod", s.ref(), "device", dev, "offline", off.Round(time.Second)}})
		s.move(efv1.ReasonDeviceLost, "Device %s offline for %s; placing the pod on another device", dev, off.Round(time.Second))
	}
}

// move takes the pod off its device and places it again.
func (s *step) move(reason, format string, args ...any) {
	s.do(Unassign{})
	s.p.Device, s.p.Seq, s.p.Phase, s.p.Held, s.p.Platform = "", 0, Unplaced, nil, ""
	s.record(corev1.EventTypeWarning, reason, format, args...)
	s.place()
}

func (s *step) retry() {
	switch s.p.Phase {
	case Misplaced:
		dev, platform := s.p.Device, s.p.Platform
		images := []string{}
		for _, c := range s.p.Pod.Spec.Containers {
			images = append(images, c.Image)
		}
		s.do(Log{Msg: "placing pod again: its device cannot run its image", Args: []any{"pod", s.ref(), "device", dev}})
		s.move(efv1.ReasonImagePlatform, "Device %s (%s) cannot run image %s: placing the pod on a device that can", dev, platform, strings.Join(images, ", "))
	case Waiting:
		s.place()
	}
}

// refresh sends the pod's workload again if its volumes' data changed. If
// something else the pod refers to changed too (env from a ConfigMap, say),
// that reaches the containers when they are created again, as on a kubelet:
// only the volumes change now.
func (s *step) refresh(ev Refresh) {
	if !s.p.Refreshable() || s.p.Sent != ev.Base || s.p.Device != ev.Device || ev.Workload.GetVolumesHash() == s.p.Sent.GetVolumesHash() {
		return
	}
	w := ev.Workload
	if w.GetSpecHash() != s.p.Sent.GetSpecHash() {
		upd := proto.CloneOf(s.p.Sent)
		upd.Volumes, upd.VolumesHash = w.GetVolumes(), w.GetVolumesHash()
		w = upd
	} else {
		w = proto.CloneOf(w)
	}
	w.FencingEpoch = s.p.Sent.GetFencingEpoch() // the same assignment
	s.fenceGrace(s.p.Pod, w)
	s.p.Sent = w
	s.do(Assign{Device: s.p.Device, Workload: w})
}

// PlacedMessage is the message of efv1.ConditionPlaced for a placement.
func PlacedMessage(dev string, epoch uint64) string {
	return fmt.Sprintf("device %s, fencing epoch %d", dev, epoch)
}

// MarkPlaced records on pod that it is placed on device dev with fencing
// epoch epoch: the annotations, and efv1.ConditionPlaced in its status. Both are
// written with the pod's next status write.
func MarkPlaced(pod *corev1.Pod, dev string, epoch uint64, now time.Time) {
	e := strconv.FormatUint(epoch, 10)
	if pod.Annotations[efv1.AnnotationDevice] != dev || pod.Annotations[efv1.AnnotationFencingEpoch] != e {
		pod.Annotations = maps.Clone(pod.Annotations)
		if pod.Annotations == nil {
			pod.Annotations = map[string]string{}
		}
		pod.Annotations[efv1.AnnotationDevice] = dev
		pod.Annotations[efv1.AnnotationFencingEpoch] = e
	}
	cond := corev1.PodCondition{
		Type: efv1.ConditionPlaced, Status: corev1.ConditionTrue, Reason: efv1.ReasonPlaced,
		Message: PlacedMessage(dev, epoch), LastTransitionTime: metav1.NewTime(now),
	}
	for i, c := range pod.Status.Conditions {
		if c.Type != efv1.ConditionPlaced {
			continue
		}
		if c.Status == cond.Status && c.Message == cond.Message {
			return
		}
		pod.Status.Conditions = slices.Clone(pod.Status.Conditions)
		pod.Status.Conditions[i] = cond
		return
	}
	pod.Status.Conditions = append(slices.Clone(pod.Status.Conditions), cond)
}

// RecordedPlacement returns the device and fencing epoch the provider
// recorded on pod: its annotations, if its efv1.ConditionPlaced (status, which
// only the pod's node writes) says the same. ok is false for a pod the
// provider never placed, or whose annotations someone else wrote.
func RecordedPlacement(pod *corev1.Pod) (dev string, epoch uint64, ok bool) {
	dev = pod.Annotations[efv1.AnnotationDevice]
	epoch, err := strconv.ParseUint(pod.Annotations[efv1.AnnotationFencingEpoch], 10, 64)
	if dev == "" || err != nil {
		return "", 0, false
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == efv1.ConditionPlaced {
			return dev, epoch, c.Status == corev1.ConditionTrue && c.Message == PlacedMessage(dev, epoch)
		}
	}
	return "", 0, false
}
