package e2e

import (
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/edgefabric/edgefabric/test/fabrictest"

	corev1 "k8s.io/api/core/v1"

	efv1 "github.com/edgefabric/edgefabric/pkg/apis/edgefabric/v1alpha1"
	"github.com/edgefabric/edgefabric/pkg/apis/hub/v1/reasons"
	"github.com/edgefabric/edgefabric/test/ocitest"
)

// testRunningStatus checks the status and events of a running pod against
// what a kubelet reports.
func testRunningStatus(f *fabrictest.Fabric, _ image) {
	t := f.T()
	// A tag of its own, so that this pod's device really pulls it.
	ref, imageID := f.PushExample("hello", "status", ocitest.Image)
	created := f.Create(f.Pod("status-running", ref, fabrictest.Env("INTERVAL", "1s")))
	p := f.WaitPod("status-running", 60*time.Second, fabrictest.PodReady)
	cs := app(p)
	if cs.Image != ref || cs.ImageID != imageID {
		t.Errorf("image %q, imageID %q; want %q, %q", cs.Image, cs.ImageID, ref, imageID)
	}
	if r := cs.State.Running; r == nil || r.StartedAt.Before(&created.CreationTimestamp) || r.StartedAt.After(time.Now().Add(time.Second)) {
		t.Errorf("running state: got %+v, want startedAt after the pod was created (%s)", cs.State, created.CreationTimestamp)
	}
	if !cs.Ready || cs.Started == nil || !*cs.Started || cs.RestartCount != 0 || cs.LastTerminationState != (corev1.ContainerState{}) {
		t.Errorf("container status: got ready %v, started %v, restarts %d, lastState %+v", cs.Ready, cs.Started, cs.RestartCount, cs.LastTerminationState)
	}
	for _, ct := range []corev1.PodConditionType{corev1.PodScheduled, corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady} {
		if c := fabrictest.Condition(p, ct); c == nil || c.Status != corev1.ConditionTrue || c.LastTransitionTime.IsZero() {
			t.Errorf("condition %s: got %+v, want True", ct, c)
		}
	}
	if p.Status.HostIP != "127.0.0.1" || p.Status.PodIP != "127.0.0.1" || len(p.Status.PodIPs) != 1 || len(p.Status.HostIPs) != 1 {
		t.Errorf("IPs: host %q %v, pod %q %v; want 127.0.0.1", p.Status.HostIP, p.Status.HostIPs, p.Status.PodIP, p.Status.PodIPs)
	}
	if p.Status.StartTime == nil || p.Status.QOSClass != corev1.PodQOSBestEffort {
		t.Errorf("startTime %v, qosClass %q", p.Status.StartTime, p.Status.QOSClass)
	}

	// Events in the order a kubelet raises them.
	dev := p.Annotations[efv1.AnnotationDevice]
	want := []struct{ typ, reason, message string }{
		{"Normal", efv1.ReasonScheduled, "Scheduled to device " + dev},
		{"Normal", reasons.Pulling, `Pulling image "` + ref + `"`},
		{"Normal", reasons.Pulled, `Successfully pulled image "` + ref + `" in `},
		{"Normal", reasons.Started, "Started container app"},
	}
	f.WaitEvent("status-running", reasons.Started, 30*time.Second)
	evs := f.Events("status-running")
	slices.SortStableFunc(evs, func(a, b corev1.Event) int { return eventTime(a).Compare(eventTime(b)) })
	i := 0
	for _, e := range evs {
		if i < len(want) && e.Reason == want[i].reason && e.Type == want[i].typ && strings.HasPrefix(e.Message, want[i].message) {
			i++
		}
	}
	if i < len(want) {
		t.Errorf("events: want %v in this order, got %q", want, eventReasons(evs))
	}
	for _, e := range evs {
		if e.Source.Component != "edgefabric" || e.Source.Host != nodeName || e.InvolvedObject.UID != p.UID {
			t.Errorf("event %s: source %+v, involved object %+v", e.Reason, e.Source, e.InvolvedObject)
		}
	}

	// kubectl's view.
	out, err := f.Kubectl("get", "pod", "status-running", "--no-headers")
	if err != nil || !regexp.MustCompile(`^status-running\s+1/1\s+Running\s+0\s`).MatchString(out) {
		t.Errorf("kubectl get pod: got %q, %v", out, err)
	}
}

func eventTime(e corev1.Event) time.Time {
	if !e.FirstTimestamp.IsZero() {
		return e.FirstTimestamp.Time
	}
	return e.EventTime.Time
}

// testCrashLoop checks a container that keeps failing: CrashLoopBackOff with
// a back-off that doubles, the last termination, restart count and events.
func testCrashLoop(f *fabrictest.Fabric, img image) {
	t := f.T()
	f.Create(f.Pod("crash-loop", img.ref, fabrictest.Env("COUNT", "1", "INTERVAL", "10ms", "EXIT_CODE", "3")))
	backoff := regexp.MustCompile(`^back-off (\S+) restarting failed container=app pod=default/crash-loop$`)
	var seen []time.Duration
	p := f.WaitPod("crash-loop", 90*time.Second, func(p *corev1.Pod) bool {
		w := app(p).State.Waiting
		if w == nil || w.Reason != reasons.CrashLoopBackOff {
			return false
		}
		m := backoff.FindStringSubmatch(w.Message)
		if m == nil {
			t.Errorf("CrashLoopBackOff message %q", w.Message)
			return true
		}
		d, _ := time.ParseDuration(m[1])
		if len(seen) == 0 || seen[len(seen)-1] != d {
			seen = append(seen, d)
		}
		return d >= 4*time.Second
	})
	// --restart-backoff is 1s: 1s, 2s, 4s; each twice the one before.
	for i := 1; i < len(seen); i++ {
		if seen[i] != 2*seen[i-1] {
			t.Errorf("back-offs seen %v: want each twice the one before", seen)
			break
		}
	}
	if len(seen) < 2 || seen[0] > 2*time.Second {
		t.Errorf("back-offs seen %v, want it to start at 1s or 2s and grow", seen)
	}
	cs := app(p)
	last := cs.LastTerminationState.Terminated
	if last == nil || last.ExitCode != 3 || last.Reason != reasons.Error || last.FinishedAt.IsZero() || last.StartedAt.IsZero() {
		t.Errorf("lastState: got %+v, want terminated with exit code 3, reason Error and times", cs.LastTerminationState)
	}
	if cs.RestartCount < 3 || cs.Ready || p.Status.Phase != corev1.PodRunning {
		t.Errorf("got restartCount %d, ready %v, phase %s; want >= 3, false, Running", cs.RestartCount, cs.Ready, p.Status.Phase)
	}
	if c := fabrictest.Condition(p, corev1.PodReady); c == nil || c.Status != corev1.ConditionFalse || c.Reason != efv1.ReasonContainersNotReady {
		t.Errorf("Ready condition: got %+v, want False ContainersNotReady", c)
	}
	ev := f.WaitEvent("crash-loop", reasons.BackOff, 10*time.Second)
	if ev.Type != corev1.EventTypeWarning || ev.Message != "Back-off restarting failed container app in pod default/crash-loop" {
		t.Errorf("BackOff event: %s %q", ev.Type, ev.Message)
	}
	if ev := f.WaitEvent("crash-loop", reasons.Started, 10*time.Second); ev.Count < 2 {
		t.Errorf("Started event count %d, want one per start (aggregated)", ev.Count)
	}
	// The logs of the last run and the one before, as with a kubelet.
	for _, prev := range []string{"--previous=false", "--previous=true"} {
		if out, err := f.Kubectl("logs", "crash-loop", prev); err != nil || !slices.Equal(numbered(fabrictest.Lines(out)), []int{1}) || !slices.Contains(fabrictest.Lines(out), "hello from crash-loop") {
			t.Errorf("kubectl logs %s of a crash-looping container: got %q, %v", prev, out, err)
		}
	}
	out, err := f.Kubectl("get", "pod", "crash-loop", "--no-headers")
	if err != nil || !strings.Contains(out, reasons.CrashLoopBackOff) && !strings.Contains(out, reasons.Error) {
		t.Errorf("kubectl get pod: got %q, %v", out, err)
	}
}

// testImagePull checks a pod whose image does not exist: ErrImagePull, then
// ImagePullBackOff, with Failed and BackOff events.
func testImagePull(f *fabrictest.Fabric, _ image) {
	t := f.T()
	ref := f.Registry + "/missing:v1"
	f.Create(f.Pod("image-missing", ref))
	var errPull bool
	p := f.WaitPod("image-missing", 60*time.Second, func(p *corev1.Pod) bool {
		w := app(p).State.Waiting
		switch {
		case w == nil:
		case w.Reason == reasons.ErrImagePull:
			errPull = true
		case w.Reason == reasons.ImagePullBackOff:
			return errPull
		}
		return false
	})
	w := app(p).State.Waiting
	if !strings.Contains(w.Message, ref) || p.Status.Phase != corev1.PodPending {
		t.Errorf("ImagePullBackOff: message %q, phase %s", w.Message, p.Status.Phase)
	}
	if c := fabrictest.Condition(p, corev1.ContainersReady); c == nil || c.Status != corev1.ConditionFalse {
		t.Errorf("ContainersReady: %+v", c)
	}
	if ev := f.WaitEvent("image-missing", reasons.Failed, 10*time.Second); ev.Type != corev1.EventTypeWarning || !strings.HasPrefix(ev.Message, `Failed to pull image "`+ref+`"`) {
		t.Errorf("Failed event: %s %q", ev.Type, ev.Message)
	}
	if ev := f.WaitEvent("image-missing", reasons.BackOff, 10*time.Second); ev.Message != `Back-off pulling image "`+ref+`"` {
		t.Errorf("BackOff event: %s %q", ev.Type, ev.Message)
	}
	// Once the image exists the pod runs.
	_, id := f.PushExampleAs("hello", ref, ocitest.WasmToOCI)
	p = f.WaitPod("image-missing", 60*time.Second, fabrictest.PodReady)
	if got := app(p).ImageID; got != id {
		t.Errorf("imageID after the push: got %q, want %q", got, id)
	}
}

// testStartError runs a module that is no WASI command (it exports no
// _start): the container cannot start, as a kubelet reports a runtime's start
// error.
func testStartError(f *fabrictest.Fabric, _ image) {
	t := f.T()
	ref := f.Registry + "/not-a-command:v1"
	ocitest.Push(t, ref, []byte("\x00asm\x01\x00\x00\x00"), ocitest.WasmToOCI) // an empty module
	f.Create(f.Pod("start-error", ref, fabrictest.RestartPolicy(corev1.RestartPolicyNever)))
	p := f.WaitPod("start-error", 60*time.Second, func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
	term := app(p).State.Terminated
	if term == nil || term.Reason != reasons.StartError || term.ExitCode != 128 || !strings.Contains(term.Message, "_start") {
		t.Errorf("state: got %+v, want terminated StartError, exit code 128, a message about _start", app(p).State)
	}
	ev := f.WaitEvent("start-error", reasons.Failed, 30*time.Second)
	if ev.Type != corev1.EventTypeWarning || !strings.HasPrefix(ev.Message, "Error: ") || !strings.Contains(ev.Message, "_start") {
		t.Errorf("Failed event: %s %q", ev.Type, ev.Message)
	}
}
