package main

import (
	"errors"
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

// userns reports who the process is and what its root may do: its ids and
// their mapping to the host's, reading a file of the host's root that only
// root may read (HOSTFILE), mknod, mount, writing /proc/sys (the value it
// has, so that nothing changes if it is allowed), making and chowning a
// file in its root, and its confinement.
func userns() {
	fmt.Printf("uid=%d\ngid=%d\n", os.Getuid(), os.Getgid())
	for _, f := range []string{"uid_map", "gid_map"} {
		b, err := os.ReadFile("/proc/self/" + f)
		fmt.Printf("%s=%s\n%s-err=%v\n", f, strings.Join(strings.Fields(string(b)), " "), f, err)
	}
	_, err := os.ReadFile(os.Getenv("HOSTFILE"))
	fmt.Printf("hostfile-err=%v\n", errText(err))
	fmt.Printf("mknod-err=%v\n", unix.Mknod("/tmp/disk", unix.S_IFBLK|0o600, int(unix.Mkdev(8, 0))))
	fmt.Printf("mount-err=%v\n", unix.Mount("tmpfs", "/tmp", "tmpfs", 0, ""))
	const sysctl = "/proc/sys/kernel/domainname"
	v, err := os.ReadFile(sysctl)
	if err == nil {
		err = os.WriteFile(sysctl, v, 0o644)
	}
	fmt.Printf("procsys-err=%v\n", errText(err))
	err = os.WriteFile("/owned-by-root", []byte("x"), 0o600)
	if err == nil {
		err = os.Chown("/owned-by-root", 1000, 1000)
	}
	fmt.Printf("root-write-err=%v\n", errText(err))
	if v := os.Getenv("VOLFILE"); v != "" {
		b, err := os.ReadFile(v)
		fmt.Printf("volfile=%s\nvolfile-err=%v\n", b, errText(err))
		fmt.Printf("volwrite-err=%v\n", errText(os.WriteFile(v+".out", []byte("from the container"), 0o600)))
	}
	namespaces()
	status()
}

// errText is err's text without the path: "permission denied", or "nil".
func errText(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	if err == nil {
		return "nil"
	}
	return err.Error()
}

// namespaces prints the process's mount and PID namespaces.
func namespaces() {
	for _, ns := range []string{"mnt", "pid", "user"} {
		l, err := os.Readlink("/proc/self/ns/" + ns)
		fmt.Printf("%s=%s err=%v\n", ns, l, err)
	}
}
