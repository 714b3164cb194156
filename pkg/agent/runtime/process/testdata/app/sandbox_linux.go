package main

import (
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// sandbox tries what a sandboxed container may not do and reports each
// outcome: making a device node, mounting, reading the file SECRET names
// (before and after a chroot escape attempt); then its confinement as
// /proc/self/status gives it.
func sandbox() {
	fmt.Printf("mknod-err=%v\n", unix.Mknod("/tmp/disk", unix.S_IFBLK|0o600, int(unix.Mkdev(8, 0))))
	fmt.Printf("mount-err=%v\n", unix.Mount("tmpfs", "/tmp", "tmpfs", 0, ""))
	secret := os.Getenv("SECRET")
	_, err := os.ReadFile(secret)
	fmt.Printf("secret-err=%v\n", err != nil)
	// The classic chroot escape: chroot into a subdirectory while keeping
	// the working directory above it, then climb.
	if err := os.MkdirAll("/tmp/jail", 0o755); err == nil {
		if err := unix.Chroot("/tmp/jail"); err == nil {
			for k := 0; k < 64; k++ {
				_ = unix.Chdir("..")
			}
			_ = unix.Chroot(".")
		}
	}
	_, err = os.ReadFile(secret)
	fmt.Printf("escape-secret-err=%v\n", err != nil)
	status()
}

// status prints the confinement lines of /proc/self/status.
func status() {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		fmt.Printf("status-err=%v\n", err)
		return
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch k {
		case "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp":
			fmt.Printf("%s=%s\n", k, strings.TrimSpace(v))
		}
	}
}

// namespaces prints the process's mount and PID namespaces.
func namespaces() {
	for _, ns := range []string{"mnt", "pid"} {
		l, err := os.Readlink("/proc/self/ns/" + ns)
		fmt.Printf("%s=%s err=%v\n", ns, l, err)
	}
}
