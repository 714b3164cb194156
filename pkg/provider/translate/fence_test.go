package translate

import (
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	efv1 "github.com/edgefabric/edgefabric/pkg/apis/edgefabric/v1alpha1"
	hubv1 "github.com/edgefabric/edgefabric/pkg/apis/hub/v1"
	"github.com/edgefabric/edgefabric/pkg/apis/hub/v1/reasons"
)

func TestFencingAnnotations(t *testing.T) {
	tests := []struct {
		name        string
		annotations map[string]string
		grace       time.Duration // the effective grace, for FenceGraceError
		wantFence   bool
		wantErr     string // in the message of an InvalidAnnotation error; "" for none
	}{
		{name: "none", grace: time.Minute},
		{name: "fence true", annotations: map[string]string{efv1.AnnotationFenceOnPartition: "true"}, grace: time.Minute, wantFence: true},
		{name: "fence false", annotations: map[string]string{efv1.AnnotationFenceOnPartition: "false"}, grace: 0},
		{name: "fence yes is refused", annotations: map[string]string{efv1.AnnotationFenceOnPartition: "yes"}, wantErr: `"yes" is neither "true" nor "false"`},
		{name: "fence True is refused", annotations: map[string]string{efv1.AnnotationFenceOnPartition: "True"}, wantErr: efv1.AnnotationFenceOnPartition},
		{name: "grace not a duration", annotations: map[string]string{efv1.AnnotationDeviceLossGrace: "soon"}, wantErr: `"soon" is not a duration`},
		{name: "grace negative", annotations: map[string]string{efv1.AnnotationDeviceLossGrace: "-5s"}, wantErr: efv1.AnnotationDeviceLossGrace},
		{name: "grace fine", annotations: map[string]string{efv1.AnnotationDeviceLossGrace: "8s", efv1.AnnotationFenceOnPartition: "true"}, grace: 8 * time.Second, wantFence: true},
		{name: "fence with a grace too short", annotations: map[string]string{efv1.AnnotationDeviceLossGrace: "1s", efv1.AnnotationFenceOnPartition: "true"}, grace: time.Second, wantFence: true, wantErr: "needs a device-loss grace of at least 2s; the pod's is 1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := testPod()
			for k, v := range tt.annotations {
				pod.Annotations[k] = v
			}
			err := Validate(pod)
			if err == nil {
				err = FenceGraceError(pod, tt.grace)
			}
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("got %v, want no error", err)
				}
				w, err := Workload(pod, nil, "10.0.0.7")
				if err != nil {
					t.Fatal(err)
				}
				if w.GetFenceOnPartition() != tt.wantFence {
					t.Errorf("workload fence_on_partition: got %v, want %v", w.GetFenceOnPartition(), tt.wantFence)
				}
				return
			}
			var ue *UnsupportedError
			if !errors.As(err, &ue) || ue.Reason != efv1.ReasonInvalidAnnotation || !strings.Contains(ue.Message, tt.wantErr) {
				t.Fatalf("got %v, want an %s error saying %q", err, efv1.ReasonInvalidAnnotation, tt.wantErr)
			}
		})
	}
}

func TestPodStatusFencedIsNoCrash(t *testing.T) {
	fencedTerm := &hubv1.ContainerState{State: &hubv1.ContainerState_Terminated_{Terminated: &hubv1.ContainerState_Terminated{
		ExitCode: 137, Reason: reasons.Fenced, Message: "no contact with the hub",
	}}}
	fencedWait := &hubv1.ContainerState{State: &hubv1.ContainerState_Waiting_{Waiting: &hubv1.ContainerState_Waiting{Reason: reasons.Fenced}}}
	tests := []struct {
		name    string
		restart corev1.RestartPolicy
		before  corev1.PodPhase
		state   *hubv1.ContainerState
		want    corev1.PodPhase
	}{
		{name: "Never, stopped with 137, was running", restart: corev1.RestartPolicyNever, before: corev1.PodRunning, state: fencedTerm, want: corev1.PodRunning},
		{name: "OnFailure, was running", restart: corev1.RestartPolicyOnFailure, before: corev1.PodRunning, state: fencedTerm, want: corev1.PodRunning},
		{name: "Always, waiting fenced, was running", restart: corev1.RestartPolicyAlways, before: corev1.PodRunning, state: fencedWait, want: corev1.PodRunning},
		{name: "Never, not started yet", restart: corev1.RestartPolicyNever, before: corev1.PodPending, state: fencedWait, want: corev1.PodPending},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := testPod()
			pod.Spec.RestartPolicy = tt.restart
			pod.Status.Phase = tt.before
			got := PodStatus(pod, &hubv1.WorkloadStatus{Containers: []*hubv1.ContainerStatus{{Name: "app", State: tt.state}}}, "10.0.0.7", time.Now())
			if got.Phase != tt.want {
				t.Errorf("phase: got %s, want %s", got.Phase, tt.want)
			}
			cs := got.ContainerStatuses[0]
			if cs.Ready || (cs.State.Terminated == nil && cs.State.Waiting == nil) {
				t.Errorf("container status: got %+v, want not ready, stopped", cs)
			}
			if r := cs.State.Waiting; r != nil && r.Reason == reasons.CrashLoopBackOff {
				t.Errorf("fenced container shown as crashing: %+v", cs)
			}
		})
	}
}
