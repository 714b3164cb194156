package process_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefabric/edgefabric/pkg/agent/runtime/process"
)

// hostRootFile is a file of the device's root that only root may read.
const hostRootFile = "/proc/sys/kernel/usermodehelper/bset"

// usernsRuntime is a runtime whose isolated containers run in user
// namespaces; the test is skipped where the kernel has none to give.
func usernsRuntime(t *testing.T, cfg process.Config) *process.Runtime {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("isolation needs root")
	}
	r := newRuntime(t, cfg)
	if ok, why := r.UserNamespaces(); !ok {
		t.Skipf("no user namespaces here: %s", why)
	}
	return r
}

// hostIDs are the real, effective, saved and file system uids of pid as the
// device sees them.
func hostIDs(t *testing.T, pid int, key string) string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			return strings.Join(strings.Fields(v), " ")
		}
	}
	t.Fatalf("no %s in /proc/%d/status", key, pid)
	return ""
}

// checkUserNS asserts what the test app's "userns" mode reported of a
// process that is the container's root, mapped to base: uid and gid 0
// inside, its ids the host's from base, and none of the device root's
// powers (its file, mknod, mount, /proc/sys) while its own root file system
// is its own.
func checkUserNS(t *testing.T, out string, base uint32) {
	t.Helper()
	r := report(out)
	wantMap := fmt.Sprintf("0 %d %d", base, process.UserNSSize)
	want := map[string]string{
		"uid": "0", "gid": "0", "uid_map": wantMap, "gid_map": wantMap,
		"hostfile-err":   "permission denied",
		"mknod-err":      "operation not permitted",
		"mount-err":      "operation not permitted",
		"root-write-err": "nil",
	}
	got := map[string]string{}
	for k := range want {
		got[k] = r[k]
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("the container's root (-want +got):\n%s\noutput %q", diff, out)
	}
	// Read-only, and not the namespace's to write even if it were not.
	if e := r["procsys-err"]; e != "read-only file system" && e != "permission denied" {
		t.Errorf("write /proc/sys: got %q, want it refused", e)
	}
	checkConfined(t, out)
	// Root of its namespace: the default set, as root without one.
	if got, want := capBits(t, r, "CapEff"), uint64(dockerCapBnd)&^(1<<27); got != want {
		t.Errorf("CapEff: got %016x, want the default set %016x", got, want)
	}
}

// TestUserNamespace: a root image runs as uid 0 of a user namespace that
// maps it to an unprivileged range of the device's uids: it cannot read a
// file only the device's root may, make device nodes, mount or write
// /proc/sys, owns its root file system, and reads and writes its volume,
// whose files stay the device's own ids on disk. An exec'd process is in
// the same user namespace, as the same mapped root; two containers running
// at once have distinct ranges.
func TestUserNamespace(t *testing.T) {
	r := usernsRuntime(t, process.Config{})
	vol := t.TempDir()
	// The agent's file (root's, 0600) in the volume is the container
	// root's to read through its idmapped mount.
	if err := os.WriteFile(filepath.Join(vol, "in.txt"), []byte("from the agent"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"HOSTFILE=" + hostRootFile, "VOLFILE=/data/in.txt"}
	var out syncBuffer
	inst, err := r.Start(t.Context(), process.Spec{
		ID: uniqueID("userns"), RootFS: rootfs(t), Args: []string{"/bin/app", "serve"}, Env: env,
		Mounts: []process.Mount{{Name: "data", Source: vol, Target: "/data"}}, Stdout: &out, Stderr: &out,
	})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer inst.Stop(0)
	waitOutput(t, &out, "running")

	// The device sees the container's root as the first id of a range.
	ids := strings.Fields(hostIDs(t, inst.Pid(), "Uid"))
	base, err := strconv.ParseUint(ids[0], 10, 32)
	if err != nil {
		t.Fatal(err)
	}
	if base < process.DefaultUserNSBase || (base-process.DefaultUserNSBase)%process.UserNSSize != 0 {
		t.Fatalf("container root's host uid: got %d, want the start of a range from %d", base, process.DefaultUserNSBase)
	}
	for _, key := range []string{"Uid", "Gid"} {
		if got, want := hostIDs(t, inst.Pid(), key), strings.Join([]string{ids[0], ids[0], ids[0], ids[0]}, " "); got != want {
			t.Errorf("host %s of the container's root: got %q, want %q", key, got, want)
		}
	}

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var got syncBuffer
	if code, err := inst.Exec(ctx, []string{"/bin/app", "userns"}, nil, &got, &got); err != nil || code != 0 {
		t.Fatalf("Exec userns: got (%d, %v), output %q", code, err, got.String())
	}
	checkUserNS(t, got.String(), uint32(base))
	rep := report(got.String())
	for _, ns := range []string{"user", "mnt", "pid"} {
		want, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(inst.Pid()), "ns", ns))
		if err != nil {
			t.Fatal(err)
		}
		if g, _, _ := strings.Cut(rep[ns], " "); g != want {
			t.Errorf("exec'd process's %s namespace: got %q, want the container's %q", ns, g, want)
		}
	}
	if rep["volfile"] != "from the agent" || rep["volwrite-err"] != "nil" {
		t.Errorf("volume: got read %q (%s), write %s; want the agent's file read and a file written", rep["volfile"], rep["volfile-err"], rep["volwrite-err"])
	}
	// What the container wrote is root's on the device, readable by the
	// agent.
	fi, err := os.Stat(filepath.Join(vol, "in.txt.out"))
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 0 || st.Gid != 0 {
		t.Errorf("file the container's root wrote: owned by %d:%d on the device, want 0:0", st.Uid, st.Gid)
	}
	if b, err := os.ReadFile(filepath.Join(vol, "in.txt.out")); err != nil || string(b) != "from the container" {
		t.Errorf("agent reads the container's file: got %q, %v", b, err)
	}

	// The main process as the container's root, and a second container
	// running at once, in a range of its own.
	var out2 syncBuffer
	inst2, err := r.Start(t.Context(), process.Spec{
		ID: uniqueID("userns2"), RootFS: rootfs(t), Args: []string{"/bin/app", "userns"}, Env: env[:1], Stdout: &out2, Stderr: &out2,
	})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	wait(t, inst2, 30*time.Second)
	m := strings.Fields(report(out2.String())["uid_map"])
	if len(m) != 3 {
		t.Fatalf("second container's uid_map: got %q (output %q)", report(out2.String())["uid_map"], out2.String())
	}
	base2, _ := strconv.ParseUint(m[1], 10, 32)
	if base2 == base {
		t.Errorf("two running containers share the host range from %d", base)
	}
	checkUserNS(t, out2.String(), uint32(base2))

	// A user the namespace does not map is refused at start.
	_, err = r.Start(t.Context(), process.Spec{ID: uniqueID("userns3"), RootFS: rootfs(t), Args: []string{"/bin/app", "info"}, User: &process.User{UID: 70000}})
	if err == nil || !strings.Contains(err.Error(), "maps ids 0 to 65535 only") {
		t.Errorf("Start as uid 70000: got %v, want it refused", err)
	}
}

// TestUserNamespaceUnsupported: where the state directory's file system
// takes no idmapped mounts (ramfs), auto runs containers without a user
// namespace and says why, required refuses to start the runtime, off does
// not try.
func TestUserNamespaceUnsupported(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounts need root")
	}
	state := t.TempDir()
	if out, err := exec.Command("mount", "-t", "ramfs", "ramfs", state).CombinedOutput(); err != nil {
		t.Skipf("mount ramfs: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", state).Run() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	tests := []struct {
		mode    string
		wantErr string
		wantOn  bool
		wantWhy string
	}{
		{mode: process.UserNSAuto, wantWhy: "idmapped mounts of " + state},
		{mode: process.UserNSRequired, wantErr: "user namespaces are required: idmapped mounts of " + state},
		{mode: process.UserNSOff},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			r, err := process.New(process.Config{StateDir: state, UserNS: tt.mode}, log)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					if r != nil {
						r.Close()
					}
					t.Fatalf("New: got %v, want an error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			on, why := r.UserNamespaces()
			if on != tt.wantOn || !strings.Contains(why, tt.wantWhy) || (tt.wantWhy == "" && why != "") {
				t.Errorf("UserNamespaces: got (%v, %q), want (%v, containing %q)", on, why, tt.wantOn, tt.wantWhy)
			}
			if tt.mode != process.UserNSAuto {
				return
			}
			// The container runs, as the device's root in its sandbox.
			var out syncBuffer
			inst, err := r.Start(t.Context(), process.Spec{
				ID: uniqueID("nouserns"), RootFS: rootfs(t), Args: []string{"/bin/app", "userns"}, Env: []string{"HOSTFILE=" + hostRootFile},
				Stdout: &out, Stderr: &out,
			})
			if err != nil {
				t.Fatalf("Start: %v", err)
			}
			wait(t, inst, 30*time.Second)
			if got := report(out.String())["uid_map"]; got != "0 0 4294967295" {
				t.Errorf("uid_map without a user namespace: got %q, want the device's", got)
			}
			checkConfined(t, out.String())
		})
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     process.Config
		wantErr string
	}{
		{name: "zero"},
		{name: "modes", cfg: process.Config{UserNS: process.UserNSRequired}},
		{name: "unknown mode", cfg: process.Config{UserNS: "yes"}, wantErr: `user namespaces "yes"`},
		{name: "base below a range", cfg: process.Config{UserNSBase: 1000}, wantErr: "below 65536"},
		{name: "past the last uid", cfg: process.Config{UserNSBase: 1 << 31, UserNSRanges: 1 << 15}, wantErr: "past the last uid"},
		{name: "negative ranges", cfg: process.Config{UserNSRanges: -1}, wantErr: "at least 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("Validate: got %v, want %q", err, tt.wantErr)
			}
		})
	}
}
