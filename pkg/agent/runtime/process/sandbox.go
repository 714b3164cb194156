package process

import (
	"fmt"
	"slices"
	"strings"
)

// Security is how a container is confined beyond its namespaces and root: a
// pod's securityContext as the device enforces it. The zero value is the
// default sandbox: DefaultCapabilities, a writable root.
type Security struct {
	// CapAdd and CapDrop change DefaultCapabilities (names with or without
	// "CAP_"; "ALL" in CapDrop drops every one). An add beyond
	// DockerCapabilities is refused: Start fails.
	CapAdd, CapDrop []string
	// ReadOnlyRootFS mounts the container's root filesystem read-only (its
	// volumes, /dev and /proc keep their own modes).
	ReadOnlyRootFS bool
}

// DockerCapabilities is Docker's default capability set: the most a native
// process gets on a device, whatever its pod asks for.
var DockerCapabilities = []string{
	"CAP_AUDIT_WRITE", "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
	"CAP_MKNOD", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW", "CAP_SETFCAP", "CAP_SETGID", "CAP_SETPCAP",
	"CAP_SETUID", "CAP_SYS_CHROOT",
}

// DefaultCapabilities is what a container running as root holds unless its
// pod adds or drops some: Docker's set without CAP_MKNOD. Docker keeps
// CAP_MKNOD because its device cgroup stops a container from opening the
// devices it makes; a device here may have no device cgroup, so the
// capability goes (and the seccomp filter refuses device nodes anyway).
var DefaultCapabilities = slices.DeleteFunc(slices.Clone(DockerCapabilities), func(c string) bool { return c == "CAP_MKNOD" })

// linuxCapabilities are the names of Linux's capabilities, by number.
var linuxCapabilities = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
	"CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
	"CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
	"CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
	"CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
	"CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
	"CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
}

// capabilityName returns the canonical name ("CAP_NET_RAW") of a name as a
// pod gives it ("NET_RAW", "net_raw", "CAP_NET_RAW").
func capabilityName(name string) (string, bool) {
	n := strings.ToUpper(strings.TrimSpace(name))
	if !strings.HasPrefix(n, "CAP_") {
		n = "CAP_" + n
	}
	return n, slices.Contains(linuxCapabilities, n)
}

// Capabilities is the capability set of a container with sec: the
// DefaultCapabilities with sec.CapDrop removed and sec.CapAdd added, sorted.
// It refuses an unknown name and an add beyond DockerCapabilities.
func Capabilities(sec Security) ([]string, error) {
	set := map[string]bool{}
	for _, c := range DefaultCapabilities {
		set[c] = true
	}
	for _, d := range sec.CapDrop {
		if strings.EqualFold(strings.TrimSpace(d), "ALL") {
			clear(set)
			continue
		}
		n, ok := capabilityName(d)
		if !ok {
			return nil, fmt.Errorf("capabilities.drop: unknown capability %q", d)
		}
		delete(set, n)
	}
	for _, a := range sec.CapAdd {
		if strings.EqualFold(strings.TrimSpace(a), "ALL") {
			return nil, fmt.Errorf("capabilities.add: ALL is beyond Docker's default set, the most a native process may hold on this device (%s)", strings.Join(DockerCapabilities, ", "))
		}
		n, ok := capabilityName(a)
		if !ok {
			return nil, fmt.Errorf("capabilities.add: unknown capability %q", a)
		}
		if !slices.Contains(DockerCapabilities, n) {
			return nil, fmt.Errorf("capabilities.add: %s is beyond Docker's default set, the most a native process may hold on this device (%s)", n, strings.Join(DockerCapabilities, ", "))
		}
		set[n] = true
	}
	out := make([]string, 0, len(set))
	for c := range set {
		out = append(out, c)
	}
	slices.Sort(out)
	return out, nil
}

// capabilityMask turns names (canonical, as Capabilities returns) into a
// bit mask by capability number.
func capabilityMask(names []string) uint64 {
	var m uint64
	for _, n := range names {
		if k := slices.Index(linuxCapabilities, n); k >= 0 {
			m |= 1 << uint(k)
		}
	}
	return m
}
