package e2e

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/edgefabric/edgefabric/test/fabrictest"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// tsLine is one line of `kubectl logs --timestamps`.
type tsLine struct {
	ts   time.Time
	text string
}

// parseTimestamps splits `kubectl logs --timestamps` output, failing the test
// on a line without an RFC 3339 timestamp with nanoseconds.
func parseTimestamps(f *fabrictest.Fabric, out string) []tsLine {
	f.T().Helper()
	var ls []tsLine
	for _, l := range fabrictest.Lines(out) {
		tsText, text, _ := strings.Cut(l, " ")
		ts, err := time.Parse(time.RFC3339Nano, tsText)
		if err != nil || !strings.Contains(tsText, ".") {
			f.T().Fatalf("line %q does not start with an RFC3339Nano timestamp: %v", l, err)
		}
		ls = append(ls, tsLine{ts, text})
	}
	return ls
}

// stripTimestamps returns the lines of `kubectl logs --timestamps` output
// without their timestamps.
func stripTimestamps(out string) []string {
	var ls []string
	for _, l := range fabrictest.Lines(out) {
		_, text, _ := strings.Cut(l, " ")
		ls = append(ls, text)
	}
	return ls
}

// numbered returns the numbers of hello's numbered lines, in order.
func numbered(ls []string) []int {
	var out []int
	for _, l := range ls {
		first, _, _ := strings.Cut(l, " ")
		if n, err := strconv.Atoi(first); err == nil {
			out = append(out, n)
		}
	}
	return out
}

// testLogsFollow follows a running container's logs: lines arrive as the
// container writes them.
func testLogsFollow(f *fabrictest.Fabric, img image) {
	t := f.T()
	f.Create(f.Pod("logs-follow", img.ref, fabrictest.Env("INTERVAL", "200ms")))
	f.WaitPod("logs-follow", 60*time.Second, fabrictest.PodReady)

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, f.Env.KubectlPath, "--kubeconfig", f.Env.Kubeconfig, "logs", "-f", "--tail=1", "logs-follow")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel()
		_ = cmd.Wait()
	}()
	sc := bufio.NewScanner(stdout)
	var got []int
	var arrived []time.Time
	for len(got) < 6 && sc.Scan() {
		if ns := numbered([]string{sc.Text()}); len(ns) == 1 {
			got = append(got, ns[0])
			arrived = append(arrived, time.Now())
		}
	}
	if len(got) < 6 {
		t.Fatalf("kubectl logs -f: got numbered lines %v before the stream ended (%v)", got, sc.Err())
	}
	for i := 1; i < len(got); i++ {
		if got[i] != got[i-1]+1 {
			t.Errorf("kubectl logs -f: lines %v, want consecutive numbers", got)
			break
		}
	}
	// The lines came as they were written, not all at once.
	if d := arrived[len(arrived)-1].Sub(arrived[1]); d < 400*time.Millisecond {
		t.Errorf("kubectl logs -f: 4 lines written 200ms apart arrived within %s", d)
	}
}

// testLogsExited reads the logs of a container while it runs to its end and
// after: `logs -f` ends when the container exits, and the logs of an exited
// container can be read with --tail and --timestamps.
func testLogsExited(f *fabrictest.Fabric, img image) {
	t := f.T()
	f.Create(f.Pod("logs-count", img.ref, fabrictest.RestartPolicy(corev1.RestartPolicyNever), fabrictest.Env("COUNT", "8", "INTERVAL", "300ms")))
	f.WaitPod("logs-count", 60*time.Second, fabrictest.PodReady)

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, f.Env.KubectlPath, "--kubeconfig", f.Env.Kubeconfig, "logs", "-f", "logs-count")
	out, err := cmd.Output()
	if ctx.Err() != nil {
		t.Fatalf("kubectl logs -f did not end within 30s of following a container that exits after 2.4s; got %q", out)
	}
	if err != nil {
		t.Fatalf("kubectl logs -f: %v", err)
	}
	want := []int{1, 2, 3, 4, 5, 6, 7, 8}
	if got := numbered(fabrictest.Lines(string(out))); !slices.Equal(got, want) {
		t.Errorf("kubectl logs -f: numbered lines %v, want %v:\n%s", got, want, out)
	}
	if !slices.Contains(fabrictest.Lines(string(out)), "hello from logs-count") || !slices.Contains(fabrictest.Lines(string(out)), "hello: starting") {
		t.Errorf("kubectl logs -f: want stdout and stderr lines, got:\n%s", out)
	}

	p := f.WaitPod("logs-count", 30*time.Second, func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodSucceeded })
	all, err := f.Kubectl("logs", "logs-count")
	if err != nil || !slices.Equal(numbered(fabrictest.Lines(all)), want) {
		t.Errorf("kubectl logs of the exited container: got %q, %v", all, err)
	}
	tail, err := f.Kubectl("logs", "logs-count", "--tail=2")
	if got := numbered(fabrictest.Lines(tail)); err != nil || len(fabrictest.Lines(tail)) != 2 || !slices.Equal(got, []int{7, 8}) {
		t.Errorf("kubectl logs --tail=2: got %q, %v; want lines 7 and 8", tail, err)
	}
	stamped, err := f.Kubectl("logs", "logs-count", "--timestamps")
	if err != nil {
		t.Fatal(err)
	}
	ts := parseTimestamps(f, stamped)
	term := app(p).State.Terminated
	for i, l := range ts {
		if i > 0 && l.ts.Before(ts[i-1].ts) {
			t.Errorf("--timestamps: %s before %s", l.ts, ts[i-1].ts)
		}
		if l.ts.Before(term.StartedAt.Time) || l.ts.After(term.FinishedAt.Add(time.Second)) {
			t.Errorf("--timestamps: line %q at %s, outside the container's run %s..%s", l.text, l.ts, term.StartedAt, term.FinishedAt)
		}
	}
	if len(ts) != len(fabrictest.Lines(all)) || ts[len(ts)-1].text != fabrictest.Lines(all)[len(fabrictest.Lines(all))-1] {
		t.Errorf("--timestamps gave other lines than without:\n%s\n%s", stamped, all)
	}
	// There is no previous attempt to show: a bad request, as from a kubelet.
	if s, err := f.Kubectl("logs", "logs-count", "--previous"); err == nil ||
		!strings.Contains(err.Error(), "(BadRequest)") ||
		!strings.Contains(err.Error(), `previous terminated container "app" in pod default/logs-count not found`) {
		t.Errorf("kubectl logs --previous without a previous attempt: got %q, %v; want a BadRequest about it", s, err)
	} else {
		t.Logf("kubectl logs --previous without a previous attempt: %v", err)
	}
}

// testLogsSince reads a running container's recent logs with --since and
// --since-time.
func testLogsSince(f *fabrictest.Fabric, img image) {
	t := f.T()
	f.Create(f.Pod("logs-since", img.ref, fabrictest.Env("INTERVAL", "200ms")))
	f.WaitPod("logs-since", 60*time.Second, fabrictest.PodReady)
	all := f.LogsUntil(30*time.Second, func(s string) bool { return slices.Contains(numbered(stripTimestamps(s)), 20) }, "logs-since", "--timestamps")

	asked := time.Now()
	out, err := f.Kubectl("logs", "logs-since", "--since=1s", "--timestamps")
	if err != nil {
		t.Fatal(err)
	}
	recent := parseTimestamps(f, out)
	if len(recent) == 0 || len(recent) > 10 {
		t.Errorf("--since=1s of a line every 200ms: got %d lines:\n%s", len(recent), out)
	}
	for _, l := range recent {
		if l.ts.Before(asked.Add(-1100*time.Millisecond)) || strings.HasPrefix(l.text, "hello from") {
			t.Errorf("--since=1s gave line %q of %s, asked at %s", l.text, l.ts, asked)
		}
	}

	// --since-time from line 10 on: the API server keeps whole seconds.
	var from time.Time
	for _, l := range parseTimestamps(f, all) {
		if slices.Equal(numbered([]string{l.text}), []int{10}) {
			from = l.ts
		}
	}
	out, err = f.Kubectl("logs", "logs-since", "--timestamps", "--since-time="+from.Format(time.RFC3339Nano))
	if err != nil {
		t.Fatal(err)
	}
	got := parseTimestamps(f, out)
	if len(got) == 0 {
		t.Fatal("--since-time gave nothing")
	}
	sec := from.Truncate(time.Second)
	for _, l := range got {
		if l.ts.Before(sec) {
			t.Errorf("--since-time=%s gave line %q of %s", from.Format(time.RFC3339Nano), l.text, l.ts)
		}
	}
	var texts []string
	for _, l := range got {
		texts = append(texts, l.text)
	}
	if ns := numbered(texts); len(ns) == 0 || ns[0] > 10 || slices.Contains(texts, "hello from logs-since") {
		t.Errorf("--since-time=%s: got numbered lines %v, want from line 10 or a little before, without the greeting", from.Format(time.RFC3339Nano), ns)
	}
}

// testLogsPrevious reads the logs of the attempt before the current one.
func testLogsPrevious(f *fabrictest.Fabric, img image) {
	t := f.T()
	f.Create(f.Pod("logs-previous", img.ref, fabrictest.Env("COUNT", "3", "INTERVAL", "1s")))
	deadline := time.Now().Add(60 * time.Second)
	for {
		// Read both logs between two looks at the pod that agree: the same
		// attempt fabrictest.PodReady, after at least one restart.
		before := f.WaitPod("logs-previous", 60*time.Second, func(p *corev1.Pod) bool {
			return app(p).RestartCount >= 1 && app(p).State.Running != nil
		})
		prev, perr := f.Kubectl("logs", "logs-previous", "--previous", "--timestamps")
		cur, cerr := f.Kubectl("logs", "logs-previous", "--timestamps")
		after, err := f.Client.CoreV1().Pods(namespace).Get(t.Context(), "logs-previous", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if app(after).RestartCount != app(before).RestartCount || app(after).State.Running == nil {
			if time.Now().After(deadline) {
				t.Fatal("the container kept restarting while its logs were read")
			}
			continue
		}
		if perr != nil || cerr != nil {
			t.Fatalf("kubectl logs: --previous: %v; current: %v", perr, cerr)
		}
		p, c := parseTimestamps(f, prev), parseTimestamps(f, cur)
		var ptexts []string
		for _, l := range p {
			ptexts = append(ptexts, l.text)
		}
		if !slices.Equal(numbered(ptexts), []int{1, 2, 3}) || !slices.Contains(ptexts, "hello from logs-previous") {
			t.Errorf("--previous: want the whole previous attempt, got:\n%s", prev)
		}
		if len(c) == 0 || !p[len(p)-1].ts.Before(c[0].ts) {
			t.Errorf("--previous ends after the current attempt begins:\nprevious:\n%s\ncurrent:\n%s", prev, cur)
		}
		started := app(after).State.Running.StartedAt.Time
		if p[len(p)-1].ts.After(started.Add(time.Second)) || c[0].ts.Before(started) {
			t.Errorf("current attempt started at %s; previous ends %s, current begins %s", started, p[len(p)-1].ts, c[0].ts)
		}
		return
	}
}

// testLogsRotation fills a container's log past several rotations (the
// agents rotate at logMaxBytes and keep two files): the device keeps only the
// newest lines, `logs -f` follows across rotations without losing a line,
// and reading ends when the container exits.
func testLogsRotation(f *fabrictest.Fabric, img image) {
	t := f.T()
	const count = 4000 // about 80 bytes a line on disk: five rotations
	f.Create(f.Pod("logs-rotation", img.ref, fabrictest.RestartPolicy(corev1.RestartPolicyNever), fabrictest.Env("COUNT", strconv.Itoa(count), "INTERVAL", "2ms")))
	p := f.WaitPod("logs-rotation", 60*time.Second, fabrictest.PodReady)
	lf := f.DeviceOf(p).Logs(p, "app")

	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, f.Env.KubectlPath, "--kubeconfig", f.Env.Kubeconfig, "logs", "-f", "--tail=0", "logs-rotation")
	out, err := cmd.Output()
	if ctx.Err() != nil || err != nil {
		t.Fatalf("kubectl logs -f across rotations: %v, %v; got %d bytes", ctx.Err(), err, len(out))
	}
	followed := numbered(fabrictest.Lines(string(out)))
	if len(followed) < 1000 || followed[len(followed)-1] != count {
		t.Fatalf("kubectl logs -f: %d numbered lines ending with %v, want many, up to %d", len(followed), followed[len(followed)-1:], count)
	}
	for i := 1; i < len(followed); i++ {
		if followed[i] != followed[i-1]+1 {
			t.Fatalf("kubectl logs -f lost lines across a rotation: %d then %d", followed[i-1], followed[i])
		}
	}

	f.WaitPod("logs-rotation", 30*time.Second, func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodSucceeded })
	entries, err := os.ReadDir(lf.Dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	var total int64
	for _, e := range entries {
		name, ok := strings.CutPrefix(e.Name(), lf.Prefix)
		if !ok {
			continue
		}
		names = append(names, name)
		if fi, err := e.Info(); err == nil {
			total += fi.Size()
		}
	}
	// 0.log, the newest rotated file, and the done marker.
	if len(names) != 3 || !slices.Contains(names, "0.log") || !slices.Contains(names, "0.done") || slices.Contains(names, "0.log.1") {
		t.Errorf("the container's log files are %v, want 0.log, one rotated file (not the first) and 0.done", names)
	}
	if total > 2*logMaxBytes+16<<10 {
		t.Errorf("the container's log files hold %d bytes, want about two files of %d at most", total, logMaxBytes)
	}
	all, err := f.Kubectl("logs", "logs-rotation")
	if err != nil {
		t.Fatal(err)
	}
	kept := numbered(fabrictest.Lines(all))
	if len(kept) == 0 || kept[0] == 1 || kept[len(kept)-1] != count || len(kept) != count-kept[0]+1 {
		t.Errorf("kubectl logs after rotation: %d lines from %v to %v, want the newest lines without a gap, up to %d", len(kept), kept[:1], kept[len(kept)-1:], count)
	}
	if strings.Contains(all, "hello from") {
		t.Error("the first lines were not rotated away")
	}
}
