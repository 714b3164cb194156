package translate

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/timestamppb"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	efv1 "github.com/edgefabric/edgefabric/pkg/apis/edgefabric/v1alpha1"
	hubv1 "github.com/edgefabric/edgefabric/pkg/apis/hub/v1"
	"github.com/edgefabric/edgefabric/pkg/apis/hub/v1/reasons"
)

var (
	t0 = metav1.NewTime(time.Date(2026, 5, 1, 11, 0, 0, 0, time.UTC))
	// now has a sub-second part, which statuses drop.
	now    = time.Date(2026, 5, 1, 12, 0, 0, 700_000_000, time.UTC)
	nowAPI = metav1.NewTime(time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC))
	// started is when the device started the containers, also with nanoseconds.
	started    = time.Date(2026, 5, 1, 11, 30, 5, 123_456_789, time.UTC)
	startedAPI = metav1.NewTime(time.Date(2026, 5, 1, 11, 30, 5, 0, time.UTC))
)

func runningState(at time.Time) *hubv1.ContainerState {
	return &hubv1.ContainerState{State: &hubv1.ContainerState_Running_{Running: &hubv1.ContainerState_Running{
		StartedAt: timestamppb.New(at),
	}}}
}

func terminatedState(code int32, reason string) *hubv1.ContainerState {
	return &hubv1.ContainerState{State: &hubv1.ContainerState_Terminated_{Terminated: &hubv1.ContainerState_Terminated{
		ExitCode: code, Reason: reason, StartedAt: timestamppb.New(started), FinishedAt: timestamppb.New(started.Add(time.Minute)),
	}}}
}

func waitingState(reason, message string) *hubv1.ContainerState {
	return &hubv1.ContainerState{State: &hubv1.ContainerState_Waiting_{Waiting: &hubv1.ContainerState_Waiting{
		Reason: reason, Message: message,
	}}}
}

// apiTerminated is terminatedState as the API shows it.
func apiTerminated(code int32, reason string) *corev1.ContainerStateTerminated {
	return &corev1.ContainerStateTerminated{
		ExitCode: code, Reason: reason, StartedAt: startedAPI, FinishedAt: metav1.NewTime(startedAPI.Add(time.Minute)),
	}
}

func guaranteed() corev1.ResourceRequirements {
	rl := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("32Mi")}
	return corev1.ResourceRequirements{Requests: rl, Limits: rl.DeepCopy()}
}

// twoContainerPod has containers "b" and "a", in that order.
func twoContainerPod() *corev1.Pod {
	p := testPod()
	p.Spec.Containers = []corev1.Container{
		{Name: "b", Image: "registry.example/b:1", Resources: guaranteed()},
		{Name: "a", Image: "registry.example/a:1", Resources: guaranteed()},
	}
	return p
}

func cond(t corev1.PodConditionType, s corev1.ConditionStatus, reason, message string, ltt metav1.Time) corev1.PodCondition {
	return corev1.PodCondition{Type: t, Status: s, Reason: reason, Message: message, LastTransitionTime: ltt, ObservedGeneration: 3}
}

func TestPodStatus(t *testing.T) {
	pod := twoContainerPod()
	ws := &hubv1.WorkloadStatus{
		Uid: "uid-1",
		// Reported in another order than the spec's.
		Containers: []*hubv1.ContainerStatus{
			{Name: "a", State: runningState(started), Ready: true, RestartCount: 2, ImageId: "sha256:aaa", Image: "ignored",
				LastState: terminatedState(1, reasons.OOMKilled)},
			{Name: "b", State: runningState(started), Ready: true, ImageId: "sha256:bbb"},
		},
		StartTime: timestamppb.New(started),
	}

	got := PodStatus(pod, ws, "10.0.0.7", now)
	want := corev1.PodStatus{
		ObservedGeneration: 3,
		Phase:              corev1.PodRunning,
		Conditions: []corev1.PodCondition{
			cond(corev1.PodScheduled, corev1.ConditionTrue, "", "", nowAPI),
			cond(corev1.PodInitialized, corev1.ConditionTrue, "", "", nowAPI),
			cond(corev1.ContainersReady, corev1.ConditionTrue, "", "", nowAPI),
			cond(corev1.PodReady, corev1.ConditionTrue, "", "", nowAPI),
		},
		HostIP:    "10.0.0.7",
		HostIPs:   []corev1.HostIP{{IP: "10.0.0.7"}},
		PodIP:     "10.0.0.7",
		PodIPs:    []corev1.PodIP{{IP: "10.0.0.7"}},
		StartTime: &startedAPI,
		ContainerStatuses: []corev1.ContainerStatus{
			{
				Name:    "b",
				Image:   "registry.example/b:1",
				ImageID: "sha256:bbb",
				State:   corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: startedAPI}},
				Ready:   true,
				Started: new(true),
			},
			{
				Name:                 "a",
				Image:                "registry.example/a:1",
				ImageID:              "sha256:aaa",
				State:                corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: startedAPI}},
				LastTerminationState: corev1.ContainerState{Terminated: apiTerminated(1, reasons.OOMKilled)},
				RestartCount:         2,
				Ready:                true,
				Started:              new(true),
			},
		},
		QOSClass: corev1.PodQOSGuaranteed,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("PodStatus (-want +got):\n%s", diff)
	}
}

func TestPodStatusContainers(t *testing.T) {
	tests := []struct {
		name     string
		reported []*hubv1.ContainerStatus
		want     []corev1.ContainerStatus
		wantPods corev1.PodPhase
		wantMsg  string // message of ContainersReady
	}{
		{
			name:     "nothing reported",
			wantPods: corev1.PodPending,
			want: []corev1.ContainerStatus{
				{Name: "b", Image: "registry.example/b:1", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reasons.ContainerCreating}}, Started: new(false)},
				{Name: "a", Image: "registry.example/a:1", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reasons.ContainerCreating}}, Started: new(false)},
			},
			wantMsg: "containers with unready status: [b a]",
		},
		{
			name: "a container the device did not report is creating",
			reported: []*hubv1.ContainerStatus{
				{Name: "a", State: runningState(started), Ready: true},
				{Name: "unknown-to-the-spec", State: runningState(started), Ready: true},
			},
			wantPods: corev1.PodPending,
			want: []corev1.ContainerStatus{
				{Name: "b", Image: "registry.example/b:1", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reasons.ContainerCreating}}, Started: new(false)},
				{Name: "a", Image: "registry.example/a:1", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: startedAPI}}, Ready: true, Started: new(true)},
			},
			wantMsg: "containers with unready status: [b]",
		},
		{
			name: "ready only while running; no state is creating; terminated reasons default",
			reported: []*hubv1.ContainerStatus{
				{Name: "b", Ready: true},
				{Name: "a", State: terminatedState(3, ""), Ready: true, LastState: terminatedState(0, "")},
			},
			wantPods: corev1.PodPending,
			want: []corev1.ContainerStatus{
				{Name: "b", Image: "registry.example/b:1", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reasons.ContainerCreating}}, Started: new(false)},
				{
					Name: "a", Image: "registry.example/a:1",
					State:                corev1.ContainerState{Terminated: apiTerminated(3, reasons.Error)},
					LastTerminationState: corev1.ContainerState{Terminated: apiTerminated(0, reasons.Completed)},
					Started:              new(false),
				},
			},
			wantMsg: "containers with unready status: [b a]",
		},
		{
			name: "crash loop",
			reported: []*hubv1.ContainerStatus{
				{Name: "b", State: runningState(started), Ready: true},
				{Name: "a", State: waitingState(reasons.CrashLoopBackOff, "back-off 40s restarting failed container"), RestartCount: 4, LastState: terminatedState(2, reasons.Error)},
			},
			wantPods: corev1.PodRunning,
			want: []corev1.ContainerStatus{
				{Name: "b", Image: "registry.example/b:1", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: startedAPI}}, Ready: true, Started: new(true)},
				{
					Name: "a", Image: "registry.example/a:1",
					State:                corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reasons.CrashLoopBackOff, Message: "back-off 40s restarting failed container"}},
					LastTerminationState: corev1.ContainerState{Terminated: apiTerminated(2, reasons.Error)},
					RestartCount:         4,
					Started:              new(false),
				},
			},
			wantMsg: "containers with unready status: [a]",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := PodStatus(twoContainerPod(), &hubv1.WorkloadStatus{Containers: tt.reported}, "10.0.0.7", now)
			if diff := cmp.Diff(tt.want, got.ContainerStatuses); diff != "" {
				t.Errorf("container statuses (-want +got):\n%s", diff)
			}
			if got.Phase != tt.wantPods {
				t.Errorf("phase: got %s, want %s", got.Phase, tt.wantPods)
			}
			wantConds := []corev1.PodCondition{
				cond(corev1.ContainersReady, corev1.ConditionFalse, efv1.ReasonContainersNotReady, tt.wantMsg, nowAPI),
				cond(corev1.PodReady, corev1.ConditionFalse, efv1.ReasonContainersNotReady, tt.wantMsg, nowAPI),
			}
			if diff := cmp.Diff(wantConds, got.Conditions[2:]); diff != "" {
				t.Errorf("ready conditions (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("nil report", func(t *testing.T) {
		got := PodStatus(twoContainerPod(), nil, "10.0.0.7", now)
		if got.Phase != corev1.PodPending || len(got.ContainerStatuses) != 2 || got.ContainerStatuses[0].State.Waiting == nil {
			t.Errorf("PodStatus(nil report): got phase %s, statuses %+v; want Pending with two waiting containers", got.Phase, got.ContainerStatuses)
		}
	})
}

func TestPodStatusPhase(t *testing.T) {
	running := func(name string) *hubv1.ContainerStatus {
		return &hubv1.ContainerStatus{Name: name, State: runningState(started), Ready: true}
	}
	exited := func(name string, code int32) *hubv1.ContainerStatus {
		return &hubv1.ContainerStatus{Name: name, State: terminatedState(code, "")}
	}
	tests := []struct {
		name     string
		restart  corev1.RestartPolicy
		phase    string // reported by the device
		reported []*hubv1.ContainerStatus
		want     corev1.PodPhase
		wantWhy  string // reason of the ready conditions
	}{
		{name: "all running", reported: []*hubv1.ContainerStatus{running("a"), running("b")}, want: corev1.PodRunning},
		{name: "one not started", reported: []*hubv1.ContainerStatus{running("a")}, want: corev1.PodPending, wantWhy: efv1.ReasonContainersNotReady},
		{name: "Never: all exited 0", restart: corev1.RestartPolicyNever, reported: []*hubv1.ContainerStatus{exited("a", 0), exited("b", 0)}, want: corev1.PodSucceeded, wantWhy: efv1.ReasonPodCompleted},
		{name: "OnFailure: all exited 0", restart: corev1.RestartPolicyOnFailure, reported: []*hubv1.ContainerStatus{exited("a", 0), exited("b", 0)}, want: corev1.PodSucceeded, wantWhy: efv1.ReasonPodCompleted},
		{name: "Always: all exited 0 restart", restart: corev1.RestartPolicyAlways, reported: []*hubv1.ContainerStatus{exited("a", 0), exited("b", 0)}, want: corev1.PodRunning, wantWhy: efv1.ReasonContainersNotReady},
		{name: "unset policy is Always", reported: []*hubv1.ContainerStatus{exited("a", 0), exited("b", 0)}, want: corev1.PodRunning, wantWhy: efv1.ReasonContainersNotReady},
		{name: "Never: one failed, all stopped", restart: corev1.RestartPolicyNever, reported: []*hubv1.ContainerStatus{exited("a", 1), exited("b", 0)}, want: corev1.PodFailed, wantWhy: efv1.ReasonPodFailed},
		{name: "Never: one failed, one still running (as the kubelet)", restart: corev1.RestartPolicyNever, reported: []*hubv1.ContainerStatus{exited("a", 1), running("b")}, want: corev1.PodRunning, wantWhy: efv1.ReasonContainersNotReady},
		{name: "OnFailure: one failed restarts", restart: corev1.RestartPolicyOnFailure, reported: []*hubv1.ContainerStatus{exited("a", 1), exited("b", 0)}, want: corev1.PodRunning, wantWhy: efv1.ReasonContainersNotReady},
		{name: "the device's phase wins", restart: corev1.RestartPolicyNever, phase: "Failed", reported: []*hubv1.ContainerStatus{running("a"), running("b")}, want: corev1.PodFailed, wantWhy: efv1.ReasonPodFailed},
		{name: "an unknown device phase is ignored", phase: "Exploded", reported: []*hubv1.ContainerStatus{running("a"), running("b")}, want: corev1.PodRunning},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := twoContainerPod()
			pod.Spec.RestartPolicy = tt.restart
			got := PodStatus(pod, &hubv1.WorkloadStatus{Phase: tt.phase, Containers: tt.reported}, "10.0.0.7", now)
			if got.Phase != tt.want {
				t.Errorf("phase: got %s, want %s", got.Phase, tt.want)
			}
			for _, c := range got.Conditions[2:] {
				wantStatus := corev1.ConditionTrue
				if tt.wantWhy != "" {
					wantStatus = corev1.ConditionFalse
				}
				if c.Status != wantStatus || c.Reason != tt.wantWhy {
					t.Errorf("%s: got %s (%q), want %s (%q)", c.Type, c.Status, c.Reason, wantStatus, tt.wantWhy)
				}
			}
		})
	}
}

func TestPodStatusConditions(t *testing.T) {
	allReady := &hubv1.WorkloadStatus{Containers: []*hubv1.ContainerStatus{
		{Name: "a", State: runningState(started), Ready: true},
		{Name: "b", State: runningState(started), Ready: true},
	}}
	tests := []struct {
		name   string
		gates  []corev1.PodReadinessGate
		old    []corev1.PodCondition
		report *hubv1.WorkloadStatus
		want   []corev1.PodCondition
	}{
		{
			name: "unchanged statuses keep their transition time, changed ones get now",
			old: []corev1.PodCondition{
				{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: t0},
				{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, LastTransitionTime: t0},
				{Type: corev1.ContainersReady, Status: corev1.ConditionFalse, Reason: efv1.ReasonContainersNotReady, LastTransitionTime: t0},
				{Type: corev1.PodReady, Status: corev1.ConditionFalse, Reason: efv1.ReasonContainersNotReady, LastTransitionTime: t0},
			},
			report: allReady,
			want: []corev1.PodCondition{
				cond(corev1.PodScheduled, corev1.ConditionTrue, "", "", t0),
				cond(corev1.PodInitialized, corev1.ConditionTrue, "", "", t0),
				cond(corev1.ContainersReady, corev1.ConditionTrue, "", "", nowAPI),
				cond(corev1.PodReady, corev1.ConditionTrue, "", "", nowAPI),
			},
		},
		{
			name: "a new reason or message is no transition",
			old: []corev1.PodCondition{
				{Type: corev1.ContainersReady, Status: corev1.ConditionFalse, Reason: reasons.ContainerCreating, LastTransitionTime: t0},
				{Type: corev1.PodReady, Status: corev1.ConditionFalse, Reason: reasons.ContainerCreating, LastTransitionTime: t0},
			},
			report: &hubv1.WorkloadStatus{},
			want: []corev1.PodCondition{
				cond(corev1.PodScheduled, corev1.ConditionTrue, "", "", nowAPI),
				cond(corev1.PodInitialized, corev1.ConditionTrue, "", "", nowAPI),
				cond(corev1.ContainersReady, corev1.ConditionFalse, efv1.ReasonContainersNotReady, "containers with unready status: [a b]", t0),
				cond(corev1.PodReady, corev1.ConditionFalse, efv1.ReasonContainersNotReady, "containers with unready status: [a b]", t0),
			},
		},
		{
			name: "a missing old transition time is set",
			old: []corev1.PodCondition{
				{Type: corev1.PodReady, Status: corev1.ConditionTrue},
			},
			report: allReady,
			want: []corev1.PodCondition{
				cond(corev1.PodScheduled, corev1.ConditionTrue, "", "", nowAPI),
				cond(corev1.PodInitialized, corev1.ConditionTrue, "", "", nowAPI),
				cond(corev1.ContainersReady, corev1.ConditionTrue, "", "", nowAPI),
				cond(corev1.PodReady, corev1.ConditionTrue, "", "", nowAPI),
			},
		},
		{
			name:  "readiness gate without its condition",
			gates: []corev1.PodReadinessGate{{ConditionType: "example.com/lb"}},
			old: []corev1.PodCondition{
				{Type: "DisruptionTarget", Status: corev1.ConditionFalse, LastTransitionTime: t0},
			},
			report: allReady,
			want: []corev1.PodCondition{
				cond(corev1.PodScheduled, corev1.ConditionTrue, "", "", nowAPI),
				cond(corev1.PodInitialized, corev1.ConditionTrue, "", "", nowAPI),
				cond(corev1.ContainersReady, corev1.ConditionTrue, "", "", nowAPI),
				cond(corev1.PodReady, corev1.ConditionFalse, efv1.ReasonReadinessGatesNotReady, `corresponding condition of pod readiness gate "example.com/lb" does not exist.`, nowAPI),
				{Type: "DisruptionTarget", Status: corev1.ConditionFalse, LastTransitionTime: t0},
			},
		},
		{
			name:  "readiness gate not True",
			gates: []corev1.PodReadinessGate{{ConditionType: "example.com/lb"}},
			old: []corev1.PodCondition{
				{Type: "example.com/lb", Status: corev1.ConditionFalse, LastTransitionTime: t0},
			},
			report: allReady,
			want: []corev1.PodCondition{
				cond(corev1.PodScheduled, corev1.ConditionTrue, "", "", nowAPI),
				cond(corev1.PodInitialized, corev1.ConditionTrue, "", "", nowAPI),
				cond(corev1.ContainersReady, corev1.ConditionTrue, "", "", nowAPI),
				cond(corev1.PodReady, corev1.ConditionFalse, efv1.ReasonReadinessGatesNotReady, `the status of pod readiness gate "example.com/lb" is not "True", but False`, nowAPI),
				{Type: "example.com/lb", Status: corev1.ConditionFalse, LastTransitionTime: t0},
			},
		},
		{
			name:  "readiness gate True",
			gates: []corev1.PodReadinessGate{{ConditionType: "example.com/lb"}},
			old: []corev1.PodCondition{
				{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: t0},
				{Type: "example.com/lb", Status: corev1.ConditionTrue, LastTransitionTime: t0},
			},
			report: allReady,
			want: []corev1.PodCondition{
				cond(corev1.PodScheduled, corev1.ConditionTrue, "", "", nowAPI),
				cond(corev1.PodInitialized, corev1.ConditionTrue, "", "", nowAPI),
				cond(corev1.ContainersReady, corev1.ConditionTrue, "", "", nowAPI),
				cond(corev1.PodReady, corev1.ConditionTrue, "", "", t0),
				{Type: "example.com/lb", Status: corev1.ConditionTrue, LastTransitionTime: t0},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := testPod()
			pod.Spec.Containers = []corev1.Container{{Name: "a"}, {Name: "b"}}
			pod.Spec.ReadinessGates = tt.gates
			pod.Status.Conditions = tt.old
			got := PodStatus(pod, tt.report, "10.0.0.7", now)
			if diff := cmp.Diff(tt.want, got.Conditions); diff != "" {
				t.Errorf("conditions (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPodStatusKeepsAndCopies(t *testing.T) {
	pod := twoContainerPod()
	pod.Status = corev1.PodStatus{
		Phase:             corev1.PodPending,
		StartTime:         &t0,
		QOSClass:          corev1.PodQOSBurstable, // immutable once set, even if it no longer matches
		NominatedNodeName: "edge-acme",
		HostIP:            "10.0.0.1",
		Conditions:        []corev1.PodCondition{{Type: "example.com/lb", Status: corev1.ConditionTrue, LastTransitionTime: t0}},
	}
	before := pod.DeepCopy()
	ws := &hubv1.WorkloadStatus{
		PodIp:     "192.168.7.20",
		StartTime: timestamppb.New(started),
		Reason:    "Relocated",
		Message:   "moved from pi-1",
	}

	got := PodStatus(pod, ws, "10.0.0.7", now)

	type summary struct {
		StartTime                    *metav1.Time
		QOS                          corev1.PodQOSClass
		Nominated, HostIP, PodIP     string
		HostIPs                      []corev1.HostIP
		PodIPs                       []corev1.PodIP
		Reason, Message              string
		ObservedGeneration, NumConds int64
	}
	sum := summary{
		StartTime: got.StartTime, QOS: got.QOSClass, Nominated: got.NominatedNodeName,
		HostIP: got.HostIP, PodIP: got.PodIP, HostIPs: got.HostIPs, PodIPs: got.PodIPs,
		Reason: got.Reason, Message: got.Message,
		ObservedGeneration: got.ObservedGeneration, NumConds: int64(len(got.Conditions)),
	}
	want := summary{
		StartTime: &t0, QOS: corev1.PodQOSBurstable, Nominated: "edge-acme",
		HostIP: "10.0.0.7", PodIP: "192.168.7.20",
		HostIPs: []corev1.HostIP{{IP: "10.0.0.7"}}, PodIPs: []corev1.PodIP{{IP: "192.168.7.20"}},
		Reason: "Relocated", Message: "moved from pi-1",
		ObservedGeneration: 3, NumConds: 5,
	}
	if diff := cmp.Diff(want, sum); diff != "" {
		t.Errorf("PodStatus (-want +got):\n%s", diff)
	}

	// The result shares nothing with pod.
	got.StartTime.Time = now
	got.Conditions[4].Status = corev1.ConditionFalse
	if diff := cmp.Diff(before, pod); diff != "" {
		t.Errorf("changing the result changed the pod (-before +after):\n%s", diff)
	}

	t.Run("start time from the clock when nobody knows it", func(t *testing.T) {
		got := PodStatus(twoContainerPod(), &hubv1.WorkloadStatus{}, "10.0.0.7", now)
		if got.StartTime == nil || !got.StartTime.Equal(&nowAPI) {
			t.Errorf("StartTime: got %v, want %v", got.StartTime, nowAPI)
		}
	})
}

func TestQOSClass(t *testing.T) {
	cpu := func(q string) corev1.ResourceList {
		return corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(q)}
	}
	tests := []struct {
		name       string
		containers []corev1.ResourceRequirements
		podLevel   *corev1.ResourceRequirements
		want       corev1.PodQOSClass
	}{
		{name: "nothing set", containers: []corev1.ResourceRequirements{{}, {}}, want: corev1.PodQOSBestEffort},
		{name: "all guaranteed", containers: []corev1.ResourceRequirements{guaranteed(), guaranteed()}, want: corev1.PodQOSGuaranteed},
		{name: "only requests", containers: []corev1.ResourceRequirements{{Requests: cpu("100m")}}, want: corev1.PodQOSBurstable},
		{name: "cpu only, equal", containers: []corev1.ResourceRequirements{{Requests: cpu("1"), Limits: cpu("1")}}, want: corev1.PodQOSBurstable},
		{name: "guaranteed and best effort", containers: []corev1.ResourceRequirements{guaranteed(), {}}, want: corev1.PodQOSBurstable},
		{name: "only ephemeral storage", containers: []corev1.ResourceRequirements{{Limits: corev1.ResourceList{corev1.ResourceEphemeralStorage: resource.MustParse("1Gi")}}}, want: corev1.PodQOSBestEffort},
		{name: "pod-level resources win", containers: []corev1.ResourceRequirements{{}}, podLevel: new(guaranteed()), want: corev1.PodQOSGuaranteed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := testPod()
			pod.Spec.Containers = nil
			for i, r := range tt.containers {
				pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Name: string(rune('a' + i)), Resources: r})
			}
			pod.Spec.Resources = tt.podLevel
			if got := PodStatus(pod, nil, "", now).QOSClass; got != tt.want {
				t.Errorf("QOSClass: got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestPendingStatus(t *testing.T) {
	pod := twoContainerPod()
	pod.Status = corev1.PodStatus{
		StartTime: &t0,
		HostIP:    "10.0.0.1",
		ContainerStatuses: []corev1.ContainerStatus{
			{Name: "a", RestartCount: 3, LastTerminationState: corev1.ContainerState{Terminated: apiTerminated(1, reasons.Error)}},
		},
		Conditions: []corev1.PodCondition{
			{Type: corev1.PodReady, Status: corev1.ConditionFalse, LastTransitionTime: t0},
		},
	}

	got := PendingStatus(pod, efv1.ReasonUnschedulable, "no device of the cluster has 2 free CPUs", now)
	waiting := corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: efv1.ReasonUnschedulable, Message: "no device of the cluster has 2 free CPUs"}}
	want := corev1.PodStatus{
		ObservedGeneration: 3,
		Phase:              corev1.PodPending,
		Conditions: []corev1.PodCondition{
			cond(corev1.PodScheduled, corev1.ConditionTrue, "", "", nowAPI),
			cond(corev1.PodInitialized, corev1.ConditionTrue, "", "", nowAPI),
			cond(corev1.ContainersReady, corev1.ConditionFalse, efv1.ReasonUnschedulable, "no device of the cluster has 2 free CPUs", nowAPI),
			cond(corev1.PodReady, corev1.ConditionFalse, efv1.ReasonUnschedulable, "no device of the cluster has 2 free CPUs", t0),
		},
		StartTime: &t0,
		ContainerStatuses: []corev1.ContainerStatus{
			{Name: "b", Image: "registry.example/b:1", State: waiting, Started: new(false)},
			{
				Name: "a", Image: "registry.example/a:1", State: waiting, Started: new(false),
				RestartCount: 3, LastTerminationState: corev1.ContainerState{Terminated: apiTerminated(1, reasons.Error)},
			},
		},
		QOSClass: corev1.PodQOSGuaranteed,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("PendingStatus (-want +got):\n%s", diff)
	}
}

func TestFailedStatus(t *testing.T) {
	pod := twoContainerPod()
	pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Name: "c", Image: "registry.example/c:1", Resources: guaranteed()})
	pod.Status = corev1.PodStatus{
		Phase:     corev1.PodRunning,
		StartTime: &t0,
		HostIP:    "10.0.0.7",
		HostIPs:   []corev1.HostIP{{IP: "10.0.0.7"}},
		PodIP:     "10.0.0.7",
		PodIPs:    []corev1.PodIP{{IP: "10.0.0.7"}},
		QOSClass:  corev1.PodQOSGuaranteed,
		ContainerStatuses: []corev1.ContainerStatus{
			{Name: "a", ImageID: "sha256:aaa", RestartCount: 1, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: startedAPI}}, Ready: true, Started: new(true)},
			{Name: "b", State: corev1.ContainerState{Terminated: apiTerminated(0, reasons.Completed)}},
		},
		Conditions: []corev1.PodCondition{
			{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: t0},
		},
	}
	const msg = "ephemeral containers are not supported on edgefabric"

	got := FailedStatus(pod, efv1.ReasonEphemeralContainersUnsupported, msg, now)
	want := corev1.PodStatus{
		ObservedGeneration: 3,
		Phase:              corev1.PodFailed,
		Reason:             efv1.ReasonEphemeralContainersUnsupported,
		Message:            msg,
		Conditions: []corev1.PodCondition{
			cond(corev1.PodScheduled, corev1.ConditionTrue, "", "", nowAPI),
			cond(corev1.PodInitialized, corev1.ConditionTrue, "", "", nowAPI),
			cond(corev1.ContainersReady, corev1.ConditionFalse, efv1.ReasonPodFailed, "", nowAPI),
			cond(corev1.PodReady, corev1.ConditionFalse, efv1.ReasonPodFailed, "", nowAPI),
		},
		HostIP:    "10.0.0.7",
		HostIPs:   []corev1.HostIP{{IP: "10.0.0.7"}},
		PodIP:     "10.0.0.7",
		PodIPs:    []corev1.PodIP{{IP: "10.0.0.7"}},
		StartTime: &t0,
		ContainerStatuses: []corev1.ContainerStatus{
			{
				Name: "b", Image: "registry.example/b:1", Started: new(false),
				State: corev1.ContainerState{Terminated: apiTerminated(0, reasons.Completed)},
			},
			{
				Name: "a", Image: "registry.example/a:1", ImageID: "sha256:aaa", RestartCount: 1, Started: new(false),
				State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
					ExitCode: 137, Reason: efv1.ReasonEphemeralContainersUnsupported, Message: msg, StartedAt: startedAPI, FinishedAt: nowAPI,
				}},
			},
			{
				Name: "c", Image: "registry.example/c:1", Started: new(false),
				State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: efv1.ReasonEphemeralContainersUnsupported, Message: msg}},
			},
		},
		QOSClass: corev1.PodQOSGuaranteed,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("FailedStatus (-want +got):\n%s", diff)
	}

	t.Run("pod that never ran", func(t *testing.T) {
		pod := testPod()
		pod.Spec.HostNetwork = true
		var err *UnsupportedError
		if !errors.As(Validate(pod), &err) {
			t.Fatal("Validate: want an *UnsupportedError")
		}
		got := FailedStatus(pod, err.Reason, err.Message, now)
		wantState := corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: efv1.ReasonHostNetworkUnsupported, Message: err.Message}}
		if got.Phase != corev1.PodFailed || got.Reason != efv1.ReasonHostNetworkUnsupported || got.HostIP != "" || got.StartTime != nil {
			t.Errorf("FailedStatus: got phase %s, reason %s, hostIP %q, startTime %v; want Failed, %s, no host IP, no start time",
				got.Phase, got.Reason, got.HostIP, got.StartTime, efv1.ReasonHostNetworkUnsupported)
		}
		if diff := cmp.Diff(wantState, got.ContainerStatuses[0].State); diff != "" {
			t.Errorf("container state (-want +got):\n%s", diff)
		}
	})
}
