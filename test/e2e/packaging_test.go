package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/edgefabric/edgefabric/test/fabrictest"

	"github.com/edgefabric/edgefabric/test/ocitest"
)

// testPackagings runs the same module from each OCI packaging the agent
// understands, and checks the device's content-addressed cache.
func testPackagings(f *fabrictest.Fabric, _ image) {
	t := f.T()
	module := ocitest.BuildGo(t, "examples/hello")
	sum := sha256.Sum256(module)
	moduleFile := filepath.Join("images", "modules", "sha256", hex.EncodeToString(sum[:])+".wasm")
	type run struct {
		pod, ref, id string
	}
	var runs []run
	for _, p := range []ocitest.Packaging{ocitest.Image, ocitest.Index, ocitest.WasmArtifact, ocitest.WasmToOCI} {
		name := "pkg-" + string(p)
		ref, id := f.PushExample("hello", "pkg-"+string(p), p)
		f.Create(f.Pod(name, ref, fabrictest.Env("INTERVAL", "500ms")))
		runs = append(runs, run{name, ref, id})
	}
	for _, r := range runs {
		p := f.WaitPod(r.pod, 60*time.Second, fabrictest.PodReady)
		if got := app(p).ImageID; got != r.id {
			t.Errorf("%s: imageID %q, want %q", r.pod, got, r.id)
		}
		f.LogsUntil(30*time.Second, func(s string) bool { return slices.Contains(fabrictest.Lines(s), "hello from "+r.pod) }, r.pod)
		dir := f.DeviceOf(p).DataDir
		manifest := filepath.Join(dir, "images", "blobs", "sha256", strings.TrimPrefix(r.id, "sha256:"))
		if _, err := os.Stat(manifest); err != nil {
			t.Errorf("%s: manifest %s is not in the device's cache: %v", r.pod, r.id, err)
		}
		if b, err := os.ReadFile(filepath.Join(dir, moduleFile)); err != nil || sha256.Sum256(b) != sum {
			t.Errorf("%s: the module is not in the device's cache under its digest: %v", r.pod, err)
		}
	}
}

// testClock checks that a module sees the real time and really sleeps.
func testClock(f *fabrictest.Fabric, img image) {
	t := f.T()
	f.Create(f.Pod("clock", img.ref, fabrictest.Env("INTERVAL", "500ms")))
	f.WaitPod("clock", 60*time.Second, fabrictest.PodReady)
	out := f.LogsUntil(30*time.Second, func(s string) bool { return slices.Contains(numbered(stripTimestamps(s)), 6) }, "clock", "--timestamps")
	var prev time.Time
	n := 0
	for _, l := range parseTimestamps(f, out) {
		num, text, ok := strings.Cut(l.text, " ")
		if !ok || len(numbered([]string{l.text})) == 0 {
			continue
		}
		own, err := time.Parse(time.RFC3339Nano, text)
		if err != nil {
			t.Fatalf("line %s: %v", l.text, err)
		}
		if d := l.ts.Sub(own); d < -100*time.Millisecond || d > 2*time.Second {
			t.Errorf("line %s: the module's clock says %s, the log %s", num, own, l.ts)
		}
		if !prev.IsZero() {
			if d := own.Sub(prev); d < 450*time.Millisecond || d > 3*time.Second {
				t.Errorf("line %s came %s after the one before, want the 500ms slept", num, d)
			}
		}
		prev = own
		n++
	}
	if n < 6 || time.Since(prev) > 10*time.Second {
		t.Errorf("clock: %d numbered lines, last at %s", n, prev)
	}
}
