package image

import (
	"os"

	"golang.org/x/sys/unix"
)

// syncTree flushes what was written under dir to the disk: on Linux, the
// whole filesystem dir is on, in one call (one fsync per file of an
// unpacked image costs seconds on an SD card).
func syncTree(dir string) error {
	if noSync {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return unix.Syncfs(int(d.Fd()))
}
