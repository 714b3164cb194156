package logs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var epoch = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// fakeClock returns epoch, epoch+1s, epoch+2s, ... on successive calls.
func fakeClock() func() time.Time {
	var mu sync.Mutex
	n := 0
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		n++
		return epoch.Add(time.Duration(n-1) * time.Second)
	}
}

// neighbour is a file of another container in every test's directory, which
// no test may read or delete.
const neighbour = "pod_app2.0.log"

// testFiles is a container's logs in a directory of their own but for
// neighbour, checked at the end of the test.
func testFiles(t *testing.T) Files {
	t.Helper()
	dir := t.TempDir()
	other := filepath.Join(dir, neighbour)
	if err := os.WriteFile(other, []byte("2026-11-27T00:00:00Z stdout F not mine\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if b, err := os.ReadFile(other); err != nil || string(b) != "2026-11-27T00:00:00Z stdout F not mine\n" {
			t.Errorf("another container's log file: %q, %v", b, err)
		}
	})
	return Files{Dir: dir, Prefix: "pod_app."}
}

// names are the container's files, without their prefix.
func names(t *testing.T, lf Files) []string {
	t.Helper()
	entries, err := os.ReadDir(lf.Dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if rest, ok := strings.CutPrefix(e.Name(), lf.Prefix); ok {
			out = append(out, rest)
		}
	}
	return out
}

// TestSharedDirectory keeps two containers of a pod, and another pod, in one
// directory: each reads, rotates and prunes only its own files, and Remove
// with the pod's prefix deletes the pod's and nothing else.
func TestSharedDirectory(t *testing.T) {
	dir := t.TempDir()
	a := Files{Dir: dir, Prefix: "pod_a."}
	b := Files{Dir: dir, Prefix: "pod_b."}
	other := Files{Dir: dir, Prefix: "other_a."}
	for attempt := range 3 {
		for _, lf := range []Files{a, b, other} {
			w := openTest(t, lf, attempt, 64, 2)
			write(t, w.Stdout(), fmt.Sprintf("%s attempt %d, a line long enough to rotate\n", lf.Prefix, attempt))
			write(t, w.Stdout(), fmt.Sprintf("%s attempt %d again\n", lf.Prefix, attempt))
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, lf := range []Files{a, b, other} {
		lines := func(attempt int) string {
			return fmt.Sprintf("%s attempt %d, a line long enough to rotate\n%[1]s attempt %d again\n", lf.Prefix, attempt)
		}
		if got, want := readAll(t, lf, Options{TailLines: -1}), lines(2); got != want {
			t.Errorf("%s: Read = %q, want %q", lf.Prefix, got, want)
		}
		if got, want := readAll(t, lf, Options{TailLines: -1, Previous: true}), lines(1); got != want {
			t.Errorf("%s: Read previous = %q, want %q", lf.Prefix, got, want)
		}
		if got, err := lf.Attempts(); err != nil || !slices.Equal(got, []int{1, 2}) {
			t.Errorf("%s: Attempts() = %v, %v; want [1 2]", lf.Prefix, got, err)
		}
		if diff := cmp.Diff([]string{"1.done", "1.log", "1.log.1", "2.done", "2.log", "2.log.1"}, names(t, lf)); diff != "" {
			t.Errorf("%s: files mismatch (-want +got):\n%s", lf.Prefix, diff)
		}
	}
	if err := (Files{Dir: dir, Prefix: "pod_"}).Remove(); err != nil {
		t.Fatal(err)
	}
	if got := append(names(t, a), names(t, b)...); len(got) != 0 {
		t.Errorf("files left of the removed pod: %v", got)
	}
	if got := len(names(t, other)); got != 6 {
		t.Errorf("the other pod has %d files left, want 6", got)
	}
	if err := (Files{Dir: filepath.Join(dir, "missing"), Prefix: "pod_"}).Remove(); err != nil {
		t.Errorf("Remove in a missing directory: %v", err)
	}
}

func openTest(t *testing.T, dir Files, attempt int, maxBytes int64, maxFiles int) *Writer {
	t.Helper()
	w, err := Open(dir, attempt, maxBytes, maxFiles)
	if err != nil {
		t.Fatal(err)
	}
	w.now = fakeClock()
	t.Cleanup(func() { w.Close() })
	return w
}

func write(t *testing.T, w interface{ Write([]byte) (int, error) }, s string) {
	t.Helper()
	if _, err := w.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
}

func readAll(t *testing.T, dir Files, opts Options) string {
	t.Helper()
	var b bytes.Buffer
	if err := Read(t.Context(), dir, opts, &b); err != nil {
		t.Fatalf("Read(%+v): %v", opts, err)
	}
	return b.String()
}

func TestReadOptions(t *testing.T) {
	dir := testFiles(t)
	w := openTest(t, dir, 0, 0, 0)
	write(t, w.Stdout(), "one\ntwo\n") // epoch+0s, +1s
	write(t, w.Stderr(), "three\n")    // +2s
	write(t, w.Stdout(), "four\nfive") // +3s, "five" unterminated
	if err := w.Close(); err != nil {  // "five" written as P at +4s
		t.Fatal(err)
	}
	ts := func(sec int) string { return epoch.Add(time.Duration(sec) * time.Second).Format(time.RFC3339Nano) }

	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"all", Options{TailLines: -1}, "one\ntwo\nthree\nfour\nfive"},
		{"tail 0", Options{TailLines: 0}, ""},
		{"tail 2", Options{TailLines: 2}, "four\nfive"},
		{"tail more than there is", Options{TailLines: 100}, "one\ntwo\nthree\nfour\nfive"},
		// kubectl logs --tail=<huge>: 2n overflowed and the reader panicked.
		{"tail the largest int64", Options{TailLines: math.MaxInt64}, "one\ntwo\nthree\nfour\nfive"},
		{"tail beyond a 32-bit int", Options{TailLines: 1<<32 + 1}, "one\ntwo\nthree\nfour\nfive"},
		{"tail the largest int64 since", Options{TailLines: math.MaxInt64, Since: epoch.Add(3 * time.Second)}, "four\nfive"},
		{"negative tail is all", Options{TailLines: math.MinInt64}, "one\ntwo\nthree\nfour\nfive"},
		{"limit bytes the largest int64", Options{TailLines: -1, LimitBytes: math.MaxInt64}, "one\ntwo\nthree\nfour\nfive"},
		{"since", Options{TailLines: -1, Since: epoch.Add(2 * time.Second)}, "three\nfour\nfive"},
		{"since and tail", Options{TailLines: 1, Since: epoch.Add(2 * time.Second)}, "five"},
		{"timestamps", Options{TailLines: 2, Timestamps: true}, ts(3) + " four\n" + ts(4) + " five"},
		{"limit bytes", Options{TailLines: -1, LimitBytes: 6}, "one\ntw"},
		{"limit bytes on a line end", Options{TailLines: -1, LimitBytes: 4}, "one\n"},
		{"follow a finished attempt returns", Options{TailLines: -1, Follow: true}, "one\ntwo\nthree\nfour\nfive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := readAll(t, dir, tt.opts)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Read(%+v) mismatch (-want +got):\n%s", tt.opts, diff)
			}
		})
	}
}

// TestReadHugeTail reads many lines with tails no log is that long: all of
// them come back. `kubectl logs --tail=9223372036854775807` overflowed 2n
// and panicked the agent once more than a thousand lines were gathered.
func TestReadHugeTail(t *testing.T) {
	dir := testFiles(t)
	w := openTest(t, dir, 0, 0, 0)
	var want strings.Builder
	for i := range 3000 {
		fmt.Fprintf(&want, "line %d\n", i)
	}
	write(t, w.Stdout(), want.String())
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	for _, tail := range []int64{math.MaxInt64, math.MaxInt64 / 2, 1<<32 + 1, 1 << 31, 3000, 2999} {
		want := want.String()
		if tail == 2999 {
			_, want, _ = strings.Cut(want, "\n")
		}
		if got := readAll(t, dir, Options{TailLines: tail}); got != want {
			t.Errorf("Read with TailLines %d: got %d bytes, want %d", tail, len(got), len(want))
		}
	}
}

func TestFileFormat(t *testing.T) {
	dir := testFiles(t)
	w := openTest(t, dir, 0, 0, 0)
	long := strings.Repeat("x", maxChunk+10)
	write(t, w.Stdout(), "a b\n")
	write(t, w.Stderr(), "err\n")
	write(t, w.Stdout(), long+"\n")
	write(t, w.Stdout(), "\n")
	write(t, w.Stdout(), "tail")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(dir.path("0.log"))
	if err != nil {
		t.Fatal(err)
	}
	ts := func(sec int) string { return epoch.Add(time.Duration(sec) * time.Second).Format(time.RFC3339Nano) }
	want := []string{
		ts(0) + " stdout F a b",
		ts(1) + " stderr F err",
		ts(2) + " stdout P " + long[:maxChunk],
		ts(3) + " stdout F " + long[maxChunk:],
		ts(4) + " stdout F ",
		ts(5) + " stdout P tail",
		"",
	}
	if diff := cmp.Diff(want, strings.Split(string(b), "\n")); diff != "" {
		t.Errorf("0.log mismatch (-want +got):\n%s", diff)
	}
	if _, err := os.Stat(dir.path("0.done")); err != nil {
		t.Errorf("done marker: %v", err)
	}
	got := readAll(t, dir, Options{TailLines: -1})
	if diff := cmp.Diff("a b\nerr\n"+long+"\n\ntail", got); diff != "" {
		t.Errorf("Read mismatch (-want +got):\n%s", diff)
	}
	if got := readAll(t, dir, Options{TailLines: 3}); got != long+"\n\ntail" {
		t.Errorf("Read with TailLines 3 = %.40q..., want the long line, the empty one and the tail", got)
	}
}

func TestPartialLinesAcrossWrites(t *testing.T) {
	dir := testFiles(t)
	w := openTest(t, dir, 0, 0, 0)
	write(t, w.Stdout(), "hel")
	write(t, w.Stderr(), "oops\n")
	write(t, w.Stdout(), "lo\n")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := readAll(t, dir, Options{TailLines: -1}), "oops\nhello\n"; got != want {
		t.Errorf("Read = %q, want %q", got, want)
	}
}

func TestRotation(t *testing.T) {
	dir := testFiles(t)
	w := openTest(t, dir, 0, 200, 3)
	var want []string
	for i := range 50 {
		line := fmt.Sprintf("line %02d", i)
		want = append(want, line)
		write(t, w.Stdout(), line+"\n")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir.Dir)
	if err != nil {
		t.Fatal(err)
	}
	var logFiles []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), dir.Prefix+"0.log") {
			logFiles = append(logFiles, e.Name())
			info, _ := e.Info()
			if info.Size() > 200+64 {
				t.Errorf("%s is %d bytes, want about 200 at most", e.Name(), info.Size())
			}
		}
	}
	if len(logFiles) != 3 {
		t.Errorf("log files = %v, want 3", logFiles)
	}
	got := strings.Split(strings.TrimSuffix(readAll(t, dir, Options{TailLines: -1}), "\n"), "\n")
	if len(got) >= len(want) || len(got) < 5 {
		t.Fatalf("read %d lines after rotation, want fewer than %d and some", len(got), len(want))
	}
	// What is left is the newest lines, in order and without gaps.
	if diff := cmp.Diff(want[len(want)-len(got):], got); diff != "" {
		t.Errorf("lines mismatch (-want +got):\n%s", diff)
	}
	if got := readAll(t, dir, Options{TailLines: 2}); got != "line 48\nline 49\n" {
		t.Errorf("tail 2 = %q", got)
	}
}

func TestAttempts(t *testing.T) {
	dir := testFiles(t)
	var b bytes.Buffer
	if err := Read(t.Context(), dir, Options{TailLines: -1}, &b); !errors.Is(err, ErrNoLogs) {
		t.Fatalf("Read of empty dir: got %v, want ErrNoLogs", err)
	}
	if err := Read(t.Context(), Files{Dir: filepath.Join(dir.Dir, "missing"), Prefix: dir.Prefix}, Options{TailLines: -1}, &b); !errors.Is(err, ErrNoLogs) {
		t.Fatalf("Read of missing dir: got %v, want ErrNoLogs", err)
	}

	for attempt := range 3 {
		w := openTest(t, dir, attempt, 0, 0)
		write(t, w.Stdout(), fmt.Sprintf("attempt %d\n", attempt))
		if attempt == 0 {
			if err := Read(t.Context(), dir, Options{Previous: true, TailLines: -1}, &b); !errors.Is(err, ErrNoPrevious) {
				t.Fatalf("Read previous with one attempt: got %v, want ErrNoPrevious", err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"newest", Options{TailLines: -1}, "attempt 2\n"},
		{"previous", Options{TailLines: -1, Previous: true}, "attempt 1\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := readAll(t, dir, tt.opts); got != tt.want {
				t.Errorf("Read(%+v) = %q, want %q", tt.opts, got, tt.want)
			}
		})
	}
	if diff := cmp.Diff([]string{"1.done", "1.log", "2.done", "2.log"}, names(t, dir)); diff != "" {
		t.Errorf("files mismatch (-want +got):\n%s", diff)
	}
}

func TestReopenAttemptAppends(t *testing.T) {
	dir := testFiles(t)
	w := openTest(t, dir, 0, 0, 0)
	write(t, w.Stdout(), "first\n")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w = openTest(t, dir, 0, 0, 0)
	if _, err := os.Stat(dir.path("0.done")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("done marker after reopening: %v, want it removed", err)
	}
	write(t, w.Stdout(), "second\n")
	if got := readAll(t, dir, Options{TailLines: -1}); got != "first\nsecond\n" {
		t.Errorf("Read = %q", got)
	}
}

func TestWriteAfterClose(t *testing.T) {
	w := openTest(t, testFiles(t), 0, 0, 0)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := w.Stdout().Write([]byte("x\n")); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Write after Close: got %v, want os.ErrClosed", err)
	}
}

func TestConcurrentStreams(t *testing.T) {
	dir := testFiles(t)
	w := openTest(t, dir, 0, 4096, 0)
	var wg sync.WaitGroup
	for _, s := range []struct {
		name string
		w    interface{ Write([]byte) (int, error) }
	}{{"out", w.Stdout()}, {"err", w.Stderr()}} {
		wg.Go(func() {
			for i := range 200 {
				// Split each line over two writes to exercise the buffers.
				if _, err := fmt.Fprintf(s.w, "%s %03d", s.name, i); err != nil {
					t.Error(err)
				}
				if _, err := s.w.Write([]byte(" end\n")); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(readAll(t, dir, Options{TailLines: -1}), "\n"), "\n")
	if len(got) != 400 {
		t.Fatalf("read %d lines, want 400", len(got))
	}
	next := map[string]int{}
	for _, l := range got {
		var name string
		var i int
		if _, err := fmt.Sscanf(l, "%s %03d end", &name, &i); err != nil || next[name] != i {
			t.Fatalf("line %q out of order or garbled (want %s %03d)", l, name, next[name])
		}
		next[name]++
	}
}

// notifyBuffer is an io.Writer whose content tests can wait for.
type notifyBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	changed chan struct{}
}

func newNotifyBuffer() *notifyBuffer { return &notifyBuffer{changed: make(chan struct{}, 1)} }

func (n *notifyBuffer) Write(p []byte) (int, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	defer func() {
		select {
		case n.changed <- struct{}{}:
		default:
		}
	}()
	return n.b.Write(p)
}

func (n *notifyBuffer) String() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.b.String()
}

// waitFor waits until the buffer holds want.
func (n *notifyBuffer) waitFor(t *testing.T, want string) {
	t.Helper()
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	for n.String() != want {
		select {
		case <-n.changed:
		case <-timeout.C:
			t.Fatalf("waiting for %q, have %q", want, n.String())
		}
	}
}

// startFollow runs Read with Follow in a goroutine; the returned channel gets
// its error.
func startFollow(ctx context.Context, dir Files, opts Options, w *notifyBuffer) <-chan error {
	opts.Follow = true
	errc := make(chan error, 1)
	go func() { errc <- Read(ctx, dir, opts, w) }()
	return errc
}

func waitErr(t *testing.T, errc <-chan error) error {
	t.Helper()
	select {
	case err := <-errc:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("Read with Follow did not return")
		return nil
	}
}

func TestFollow(t *testing.T) {
	tests := []struct {
		name     string
		maxBytes int64
		maxFiles int
	}{
		{"no rotation", 0, 0},
		{"rotating", 100, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := testFiles(t)
			w := openTest(t, dir, 0, tt.maxBytes, tt.maxFiles)
			write(t, w.Stdout(), "before\n")
			buf := newNotifyBuffer()
			errc := startFollow(t.Context(), dir, Options{TailLines: -1}, buf)
			buf.waitFor(t, "before\n")
			want := "before\n"
			for i := range 10 {
				line := fmt.Sprintf("line %d\n", i)
				write(t, w.Stdout(), line)
				want += line
				buf.waitFor(t, want)
			}
			write(t, w.Stderr(), "unterminated")
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if err := waitErr(t, errc); err != nil {
				t.Fatalf("Read: %v", err)
			}
			if got, want := buf.String(), want+"unterminated"; got != want {
				t.Errorf("followed %q, want %q", got, want)
			}
		})
	}
}

func TestFollowWithTail(t *testing.T) {
	dir := testFiles(t)
	w := openTest(t, dir, 0, 0, 0)
	write(t, w.Stdout(), "old 1\nold 2\n")
	buf := newNotifyBuffer()
	errc := startFollow(t.Context(), dir, Options{TailLines: 1}, buf)
	buf.waitFor(t, "old 2\n")
	write(t, w.Stdout(), "new\n")
	buf.waitFor(t, "old 2\nnew\n")
	w.Close()
	if err := waitErr(t, errc); err != nil {
		t.Fatal(err)
	}
}

func TestFollowStopsWithContext(t *testing.T) {
	dir := testFiles(t)
	w := openTest(t, dir, 0, 0, 0)
	write(t, w.Stdout(), "x\n")
	ctx, cancel := context.WithCancel(t.Context())
	buf := newNotifyBuffer()
	errc := startFollow(ctx, dir, Options{TailLines: -1}, buf)
	buf.waitFor(t, "x\n")
	cancel()
	if err := waitErr(t, errc); err != nil {
		t.Errorf("Read after cancel: %v, want nil", err)
	}
}

func TestFollowStopsWhenNewerAttemptStarts(t *testing.T) {
	// An attempt that was never closed (the agent crashed) is finished
	// once the next one has started.
	dir := testFiles(t)
	w, err := Open(dir, 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	write(t, w.Stdout(), "crashed\n")
	buf := newNotifyBuffer()
	errc := startFollow(t.Context(), dir, Options{TailLines: -1}, buf)
	buf.waitFor(t, "crashed\n")
	w.f.Close() // abandon without the done marker
	openTest(t, dir, 1, 0, 0)
	if err := waitErr(t, errc); err != nil {
		t.Fatal(err)
	}
}

func TestFollowPreviousReturns(t *testing.T) {
	dir := testFiles(t)
	w0 := openTest(t, dir, 0, 0, 0)
	write(t, w0.Stdout(), "zero\n")
	w0.Close()
	w1 := openTest(t, dir, 1, 0, 0)
	write(t, w1.Stdout(), "one\n")
	buf := newNotifyBuffer()
	errc := startFollow(t.Context(), dir, Options{TailLines: -1, Previous: true}, buf)
	if err := waitErr(t, errc); err != nil {
		t.Fatal(err)
	}
	if got := buf.String(); got != "zero\n" {
		t.Errorf("followed previous = %q, want %q", got, "zero\n")
	}
}

func TestParseName(t *testing.T) {
	tests := []struct {
		name string
		want logFile
		ok   bool
	}{
		{"0.log", logFile{name: "0.log", attempt: 0, kind: kindCurrent}, true},
		{"12.log.3", logFile{name: "12.log.3", attempt: 12, kind: kindRotated, seq: 3}, true},
		{"4.done", logFile{name: "4.done", attempt: 4, kind: kindDone}, true},
		{"01.log", logFile{}, false},
		{"x.log", logFile{}, false},
		{"1.log.x", logFile{}, false},
		{"1.log.0", logFile{}, false},
		{"1.txt", logFile{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseName(tt.name)
			if ok != tt.ok {
				t.Fatalf("parseName(%q) ok = %v, want %v", tt.name, ok, tt.ok)
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(logFile{})); diff != "" {
				t.Errorf("parseName(%q) mismatch (-want +got):\n%s", tt.name, diff)
			}
		})
	}
}
