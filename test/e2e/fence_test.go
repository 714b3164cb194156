package e2e

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	efv1 "github.com/edgefabric/edgefabric/pkg/apis/edgefabric/v1alpha1"
	"github.com/edgefabric/edgefabric/pkg/apis/hub/v1/reasons"
	"github.com/edgefabric/edgefabric/test/fabrictest"
	"github.com/edgefabric/edgefabric/test/ocitest"
)

// TestFenceOnPartition cuts a device off the hub (its LAN's uplink) while it
// runs a pod with edgefabric.io/fence-on-partition and one without: the
// fenced pod stops on the cut-off device before the provider places it on
// another device, so that its two copies never run at the same time, while
// the other pod keeps running through the cut (edge autonomy). When the
// uplink comes back, the device does not run its stale copy again.
func TestFenceOnPartition(t *testing.T) {
	fabrictest.NeedLANs(t)
	f := startFabric(t, 0)
	lan := f.StartLAN()
	a := lan.StartAgent("fence-a")
	f.WaitNode(func(n *corev1.Node) bool { return fabrictest.NodeReady(n) && fabrictest.ReadyDevices(n) == 1 })

	ref, _ := f.PushExample("hello", "fence", ocitest.Image)
	annotate := func(kv ...string) func(*corev1.Pod) {
		return func(p *corev1.Pod) {
			if p.Annotations == nil {
				p.Annotations = map[string]string{}
			}
			for i := 0; i+1 < len(kv); i += 2 {
				p.Annotations[kv[i]] = kv[i+1]
			}
		}
	}
	interval := fabrictest.Env("INTERVAL", "100ms")
	const grace = 8 * time.Second
	f.Create(f.Pod("fenced", ref, interval, annotate(efv1.AnnotationFenceOnPartition, "true", efv1.AnnotationDeviceLossGrace, grace.String())))
	f.Create(f.Pod("autonomous", ref, interval, annotate(efv1.AnnotationDeviceLossGrace, "10m")))
	fenced := f.WaitPod("fenced", 90*time.Second, fabrictest.PodReady)
	auto := f.WaitPod("autonomous", 90*time.Second, fabrictest.PodReady)
	if f.DeviceOf(fenced) != a || f.DeviceOf(auto) != a {
		t.Fatalf("pods on %s and %s, want both on %s", f.DeviceOf(fenced).ID, f.DeviceOf(auto).ID, a.ID)
	}
	// Bad values are refused, with a reason that says why.
	f.Create(f.Pod("bad-fence", ref, annotate(efv1.AnnotationFenceOnPartition, "yes")))
	bad := f.WaitPod("bad-fence", 30*time.Second, func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
	if bad.Status.Reason != efv1.ReasonInvalidAnnotation || !strings.Contains(bad.Status.Message, `"yes" is neither "true" nor "false"`) {
		t.Errorf("pod bad-fence: reason %q message %q, want InvalidAnnotation saying why", bad.Status.Reason, bad.Status.Message)
	}
	f.Create(f.Pod("short-fence", ref, annotate(efv1.AnnotationFenceOnPartition, "true", efv1.AnnotationDeviceLossGrace, "1s")))
	short := f.WaitPod("short-fence", 30*time.Second, func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
	if short.Status.Reason != efv1.ReasonInvalidAnnotation || !strings.Contains(short.Status.Message, "at least 2s") {
		t.Errorf("pod short-fence: reason %q message %q, want InvalidAnnotation asking for a longer grace", short.Status.Reason, short.Status.Message)
	}
	for _, name := range []string{"bad-fence", "short-fence"} {
		if d := f.WaitPod(name, time.Second, func(*corev1.Pod) bool { return true }).Annotations[efv1.AnnotationDevice]; d != "" {
			t.Errorf("pod %s with a bad annotation was placed on %s", name, d)
		}
	}

	// A second device, on the hub's side of the cut, where the pod can move.
	b := f.StartAgent("fence-b")
	f.WaitNode(func(n *corev1.Node) bool { return fabrictest.NodeReady(n) && fabrictest.ReadyDevices(n) == 2 })

	fencedLog := newestLog(t, a.Logs(fenced, "app"))
	autoLog := newestLog(t, a.Logs(auto, "app"))
	lan.CutUplink()
	cut := time.Now()

	moved := f.WaitPod("fenced", 90*time.Second, func(p *corev1.Pod) bool {
		return p.Annotations[efv1.AnnotationDevice] == b.ID && fabrictest.PodReady(p)
	})
	t.Logf("fenced pod Running on %s %v after the cut (grace %s)", b.ID, time.Since(cut).Round(100*time.Millisecond), grace)
	f.WaitEvent("fenced", efv1.ReasonDeviceLost, 10*time.Second)

	// The cut-off copy stopped, a margin before the grace ended; the new copy
	// started after it: their lines never overlap.
	lastA := lastLine(t, fencedLog)
	firstB := firstLine(t, newestLog(t, b.Logs(moved, "app")))
	t.Logf("copy on %s: last line %v after the cut; copy on %s: first line %v after the cut",
		a.ID, lastA.Sub(cut).Round(10*time.Millisecond), b.ID, firstB.Sub(cut).Round(10*time.Millisecond))
	if !lastA.Before(firstB) {
		t.Errorf("two copies ran at once: the copy on %s wrote at %v, the copy on %s had started at %v", a.ID, lastA, b.ID, firstB)
	}
	if ran := lastA.Sub(cut); ran >= grace {
		t.Errorf("the cut-off copy ran %v after the cut, not less than the grace %v", ran, grace)
	}
	if size := fabrictest.FileSize(fencedLog); func() bool { time.Sleep(time.Second); return fabrictest.FileSize(fencedLog) != size }() {
		t.Errorf("the cut-off copy on %s still writes", a.ID)
	}
	if !strings.Contains(a.Output(), "fencing workload") {
		t.Errorf("agent %s did not log that it fenced the pod:\n%s", a.ID, fabrictest.Tail(a.Output(), 30))
	}

	// The pod without the annotation ran through it all, and still does.
	size := fabrictest.FileSize(autoLog)
	f.WaitFileGrows(autoLog, size, 10*time.Second)

	// The agent restarts while still cut off: it resumes the autonomous pod
	// from its store, but not the fenced one.
	a.Stop(t, syscall.SIGKILL)
	lan.RestartAgent(a)
	deadline := time.Now().Add(30 * time.Second)
	for newestLog(t, a.Logs(auto, "app")) == autoLog {
		if time.Now().After(deadline) {
			t.Fatalf("agent %s restarted while cut off did not resume the autonomous pod", a.ID)
		}
		time.Sleep(200 * time.Millisecond)
	}
	autoLog = newestLog(t, a.Logs(auto, "app"))
	f.WaitFileGrows(autoLog, 0, 10*time.Second)
	time.Sleep(2 * time.Second)
	if got := newestLog(t, a.Logs(fenced, "app")); got != fencedLog {
		t.Errorf("agent %s restarted while cut off resurrected the fenced pod (new log %s)", a.ID, got)
	}

	// The uplink comes back: the device hears it no longer holds the pod
	// and does not run it again; its Fenced event reaches the API.
	lan.RestoreUplink()
	f.WaitNode(func(n *corev1.Node) bool { return fabrictest.NodeReady(n) && fabrictest.ReadyDevices(n) == 2 })
	ev := f.WaitEvent("fenced", reasons.Fenced, 30*time.Second)
	if !strings.Contains(ev.Message, "no contact with the hub") {
		t.Errorf("Fenced event: %q", ev.Message)
	}
	// It removes the stale copy's logs, as for any pod it no longer holds,
	// and does not start it again: no log comes back.
	f.WaitLogsRemoved(a.Logs(fenced, "app"), 30*time.Second)
	time.Sleep(3 * time.Second)
	if atts, err := a.Logs(fenced, "app").Attempts(); err != nil || len(atts) != 0 {
		t.Errorf("the device ran its stale copy again after the uplink came back: log attempts %v, %v", atts, err)
	}
	if p := f.WaitPod("fenced", 10*time.Second, fabrictest.PodReady); p.Annotations[efv1.AnnotationDevice] != b.ID {
		t.Errorf("pod fenced went back to %s", p.Annotations[efv1.AnnotationDevice])
	}
	if got := newestLog(t, a.Logs(auto, "app")); got != autoLog {
		t.Errorf("the autonomous pod restarted when the uplink came back (new log %s)", got)
	}
	if p := f.WaitPod("autonomous", 10*time.Second, fabrictest.PodReady); p.Annotations[efv1.AnnotationDevice] != a.ID {
		t.Errorf("pod autonomous: device %s, want %s", p.Annotations[efv1.AnnotationDevice], a.ID)
	}
	f.CheckAlive()
}

// logTimes returns the times of the numbered lines hello wrote to a
// container log file (CRI format: the record's time first).
func logTimes(t *testing.T, path string) []time.Time {
	t.Helper()
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	var out []time.Time
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 5 || fs[1] != "stdout" {
			continue
		}
		if _, err := strconv.Atoi(fs[3]); err != nil {
			continue
		}
		ts, err := time.Parse(time.RFC3339Nano, fs[0])
		if err != nil {
			t.Fatalf("%s: %q: %v", filepath.Base(path), sc.Text(), err)
		}
		out = append(out, ts)
	}
	return out
}

// waitLogTimes is logTimes once the file holds a numbered line.
func waitLogTimes(t *testing.T, path string) []time.Time {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if ts := logTimes(t, path); len(ts) > 0 {
			return ts
		}
		if time.Now().After(deadline) {
			t.Fatalf("no numbered lines in %s", path)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func firstLine(t *testing.T, path string) time.Time { return waitLogTimes(t, path)[0] }

func lastLine(t *testing.T, path string) time.Time {
	ts := waitLogTimes(t, path)
	return ts[len(ts)-1]
}

// TestFenceOnPartitionComesBack cuts off the only device of a pod that fences
// on partition: the device stops it, the provider has nowhere else to place
// it, and when the uplink comes back the pod runs on the device again, after
// the old copy stopped.
func TestFenceOnPartitionComesBack(t *testing.T) {
	fabrictest.NeedLANs(t)
	f := startFabric(t, 0)
	lan := f.StartLAN()
	a := lan.StartAgent("only")
	f.WaitNode(func(n *corev1.Node) bool { return fabrictest.NodeReady(n) && fabrictest.ReadyDevices(n) == 1 })
	ref, _ := f.PushExample("hello", "fence-back", ocitest.Image)
	p := f.Pod("single", ref, fabrictest.Env("INTERVAL", "100ms"))
	p.Annotations = map[string]string{efv1.AnnotationFenceOnPartition: "true", efv1.AnnotationDeviceLossGrace: "4s"}
	f.Create(p)
	p = f.WaitPod("single", 90*time.Second, fabrictest.PodReady)
	oldLog := newestLog(t, a.Logs(p, "app"))

	lan.CutUplink()
	cut := time.Now()
	f.WaitEvent("single", efv1.ReasonDeviceLost, 30*time.Second)
	lastOld := lastLine(t, oldLog)
	if ran := lastOld.Sub(cut); ran >= 4*time.Second {
		t.Errorf("the cut-off copy ran %v after the cut, not less than the grace 4s", ran)
	}
	lan.RestoreUplink()
	restored := time.Now()
	back := f.WaitPod("single", 90*time.Second, func(q *corev1.Pod) bool {
		return q.Annotations[efv1.AnnotationDevice] == a.ID && fabrictest.PodReady(q) && q.Annotations[efv1.AnnotationFencingEpoch] != p.Annotations[efv1.AnnotationFencingEpoch]
	})
	// The new copy writes (to the same attempt's file: a new assignment
	// starts counting restarts again), and nothing ran in between.
	newLog := newestLog(t, a.Logs(back, "app"))
	var resumed time.Time
	deadline := time.Now().Add(10 * time.Second)
	for resumed.IsZero() {
		for _, ts := range logTimes(t, newLog) {
			if ts.After(lastOld) {
				resumed = ts
				break
			}
		}
		if resumed.IsZero() && time.Now().After(deadline) {
			t.Fatalf("pod Ready again on %s but %s shows no new lines", a.ID, newLog)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if resumed.Before(restored) {
		t.Errorf("the pod ran again at %v, before the uplink came back at %v", resumed, restored)
	}
	t.Logf("old copy's last line %v after the cut; Running again on %s after the uplink came back (epoch %s → %s)",
		lastOld.Sub(cut).Round(10*time.Millisecond), a.ID, p.Annotations[efv1.AnnotationFencingEpoch], back.Annotations[efv1.AnnotationFencingEpoch])
	f.CheckAlive()
}
