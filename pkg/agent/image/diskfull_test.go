package image_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgefabric/edgefabric/pkg/agent/image"
	"github.com/edgefabric/edgefabric/test/disktest"
	"github.com/edgefabric/edgefabric/test/ocitest"
	"github.com/edgefabric/edgefabric/test/poll"
)

// TestDiskFull: a pull that fills the device's disk fails with an error
// that says so and names the image, leaves no partial download behind,
// and has the GC remove the images no workload uses at once, whatever
// the budget, so that the next try can succeed.
func TestDiskFull(t *testing.T) {
	disk := disktest.Small(t, "2m")
	reg := ocitest.Serve(t)
	refs := pushPadded(t, reg, "full", 2, 1<<10) // two images of 1 MiB
	dir := filepath.Join(disk, "images")
	store, err := image.New(image.Config{Dir: dir, MaxBytes: 1 << 30}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Pull(t.Context(), refs[0], ""); err != nil {
		t.Fatal(err)
	}
	inUse := image.InUse{Refs: refs[1:]} // a workload wants refs[1] now
	done := make(chan error)
	go func() { done <- store.RunGC(t.Context(), time.Hour, func() image.InUse { return inUse }) }()
	t.Cleanup(func() { <-done }) //nolint:errcheck // it ends with the test's context

	_, err = store.Pull(t.Context(), refs[1], "")
	if err == nil {
		t.Fatal("a pull onto a full disk succeeded")
	}
	t.Logf("error: %v", err)
	if want := "no space left on device while pulling " + refs[1]; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not contain %q", err, want)
	}
	if got := dirEntries(t, filepath.Join(dir, "tmp")); len(got) != 0 {
		t.Errorf("partial downloads left behind: %v", got)
	}
	// refs[0], unused, is removed at once, though the budget is far off.
	poll.Until(t, 10*time.Second, func() bool {
		_, err := store.Lookup(refs[0])
		return errors.Is(err, image.ErrNotPresent)
	})
	if _, err := store.Pull(t.Context(), refs[1], ""); err != nil {
		t.Errorf("pull after the GC made room: %v", err)
	}
}
