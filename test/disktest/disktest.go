// Package disktest gives tests a small disk of their own, to fill: a tmpfs
// mounted on a temporary directory and unmounted when the test ends.
package disktest

import (
	"os"
	"os/exec"
	"testing"
)

// Small mounts a tmpfs of size (as mount's size= option takes it, e.g. "4m")
// on a new directory and returns it, or skips the test where it cannot (not
// root, no tmpfs).
func Small(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("mount a tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}
