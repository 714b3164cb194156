package process_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefabric/edgefabric/pkg/agent/runtime/process"
)

// dockerCapBnd is Docker's default capability set as /proc/self/status
// shows it.
const dockerCapBnd = 0x00000000a80425fb

func TestCapabilities(t *testing.T) {
	tests := []struct {
		name    string
		sec     process.Security
		want    []string
		wantErr string
	}{
		{name: "default", want: process.DefaultCapabilities},
		{name: "drop all", sec: process.Security{CapDrop: []string{"ALL"}}, want: []string{}},
		{name: "drop all add one", sec: process.Security{CapDrop: []string{"all"}, CapAdd: []string{"NET_BIND_SERVICE"}}, want: []string{"CAP_NET_BIND_SERVICE"}},
		{name: "drop some", sec: process.Security{CapDrop: []string{"CAP_CHOWN", "net_raw"}}, want: without(process.DefaultCapabilities, "CAP_CHOWN", "CAP_NET_RAW")},
		{name: "add back mknod", sec: process.Security{CapAdd: []string{"MKNOD"}}, want: process.DockerCapabilities},
		{name: "add beyond Docker's", sec: process.Security{CapAdd: []string{"SYS_ADMIN"}}, wantErr: "CAP_SYS_ADMIN is beyond Docker's default set"},
		{name: "add all", sec: process.Security{CapAdd: []string{"ALL"}}, wantErr: "ALL is beyond Docker's default set"},
		{name: "unknown", sec: process.Security{CapDrop: []string{"FLY"}}, wantErr: `unknown capability "FLY"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := process.Capabilities(tt.sec)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Capabilities: got %v, %v; want an error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(sorted(tt.want), got); diff != "" {
				t.Errorf("Capabilities (-want +got):\n%s", diff)
			}
		})
	}
}

func without(list []string, drop ...string) []string {
	var out []string
	for _, c := range list {
		if !contains(drop, c) {
			out = append(out, c)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, c := range list {
		if c == s {
			return true
		}
	}
	return false
}

func sorted(list []string) []string {
	out := append([]string{}, list...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// report reads the "key=value" lines the test app prints.
func report(out string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			m[k] = v
		}
	}
	return m
}

func capBits(t *testing.T, r map[string]string, key string) uint64 {
	t.Helper()
	n, err := strconv.ParseUint(r[key], 16, 64)
	if err != nil {
		t.Fatalf("%s=%q: %v", key, r[key], err)
	}
	return n
}

// checkConfined asserts what the test app's "sandbox" mode reported: no
// device node, no mount, no more than Docker's capabilities, no_new_privs
// and a seccomp filter.
func checkConfined(t *testing.T, out string) {
	t.Helper()
	r := report(out)
	for _, k := range []string{"mknod-err", "mount-err"} {
		if r[k] != "operation not permitted" {
			t.Errorf("%s: got %q, want EPERM (output %q)", k, r[k], out)
		}
	}
	for _, k := range []string{"CapPrm", "CapEff", "CapBnd"} {
		if got := capBits(t, r, k); got&^dockerCapBnd != 0 {
			t.Errorf("%s: got %016x, beyond Docker's default set %016x", k, got, dockerCapBnd)
		}
	}
	for _, k := range []string{"CapInh", "CapAmb"} {
		if got := capBits(t, r, k); got != 0 {
			t.Errorf("%s: got %016x, want none", k, got)
		}
	}
	if r["NoNewPrivs"] != "1" {
		t.Errorf("NoNewPrivs: got %q, want 1", r["NoNewPrivs"])
	}
	if r["Seccomp"] != "2" {
		t.Errorf("Seccomp: got %q, want 2 (filter)", r["Seccomp"])
	}
}

// isolatedModes are the ways a root agent isolates containers: in user
// namespaces (where this machine has them) and without.
func isolatedModes() []process.Config {
	return []process.Config{{}, {UserNS: process.UserNSOff}}
}

// agentDB makes a file like the agent's store: readable by root only.
func agentDB(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "agent.db")
	if err := os.WriteFile(p, []byte("the device's key"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSandboxRootImage: a container running as root, as a root image does,
// can make no device node, mount nothing, holds no more than Docker's
// capabilities, runs with no_new_privs and a seccomp filter, and cannot
// read the agent's store, not even after a chroot escape attempt.
func TestSandboxRootImage(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("isolation needs root")
	}
	for _, cfg := range modes(t) {
		t.Run(modeName(cfg), func(t *testing.T) {
			r := newRuntime(t, cfg)
			db := agentDB(t)
			var out syncBuffer
			inst, err := r.Start(t.Context(), process.Spec{
				ID: uniqueID("sandbox"), RootFS: rootfs(t), Args: []string{"/bin/app", "sandbox"},
				Env: []string{"SECRET=" + db}, Stdout: &out, Stderr: &out,
			})
			if err != nil {
				t.Fatalf("Start: %v", err)
			}
			wait(t, inst, 30*time.Second)
			checkConfined(t, out.String())
			if r.Isolated() {
				rep := report(out.String())
				if rep["secret-err"] != "true" || rep["escape-secret-err"] != "true" {
					t.Errorf("the container read the agent's store (output %q)", out.String())
				}
				if got := capBits(t, rep, "CapEff"); got == 0 {
					t.Errorf("CapEff: got none, want the default set for root")
				}
			}
		})
	}
}

// TestSandboxExec: an exec'd process is in the container's mount and PID
// namespaces and confined as the container is.
func TestSandboxExec(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("isolation needs root")
	}
	for _, cfg := range isolatedModes() {
		t.Run(modeName(cfg), func(t *testing.T) {
			r := newRuntime(t, cfg)
			var out syncBuffer
			inst, err := r.Start(t.Context(), process.Spec{ID: uniqueID("nsexec"), RootFS: rootfs(t), Args: []string{"/bin/app", "serve"}, Stdout: &out, MemoryLimitBytes: 256 << 20})
			if err != nil {
				t.Fatalf("Start: %v", err)
			}
			defer inst.Stop(0)
			waitOutput(t, &out, "running")
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			var got syncBuffer
			if code, err := inst.Exec(ctx, []string{"/bin/app", "ns"}, nil, &got, &got); err != nil || code != 0 {
				t.Fatalf("Exec ns: got (%d, %v), output %q", code, err, got.String())
			}
			rep := report(got.String())
			for _, ns := range []string{"mnt", "pid"} {
				want, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(inst.Pid()), "ns", ns))
				if err != nil {
					t.Fatal(err)
				}
				self, _ := os.Readlink("/proc/self/ns/" + ns)
				if want == self {
					t.Fatalf("the container shares the test's %s namespace", ns)
				}
				if g, _, _ := strings.Cut(rep[ns], " "); g != want {
					t.Errorf("exec'd process's %s namespace: got %q, want the container's %q", ns, g, want)
				}
			}
			db := agentDB(t)
			var sb syncBuffer
			if _, err := inst.Exec(ctx, []string{"/bin/app", "sandbox"}, nil, &sb, &sb); err != nil {
				t.Fatalf("Exec sandbox: %v", err)
			}
			checkConfined(t, sb.String())
			_ = db
		})
	}
}

// TestSecurityContext: what a pod's securityContext asks is what the
// container gets, and what cannot be given is refused at start.
func TestSecurityContext(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("isolation needs root")
	}
	for _, cfg := range isolatedModes() {
		t.Run(modeName(cfg), func(t *testing.T) {
			r := newRuntime(t, cfg)
			tests := []struct {
				name    string
				sec     process.Security
				user    *process.User
				mode    string
				check   func(t *testing.T, rep map[string]string)
				wantErr string
			}{
				{name: "drop all", sec: process.Security{CapDrop: []string{"ALL"}}, mode: "sandbox", check: func(t *testing.T, rep map[string]string) {
					if capBits(t, rep, "CapBnd") != 0 || capBits(t, rep, "CapEff") != 0 {
						t.Errorf("capabilities: got bounding %s effective %s, want none", rep["CapBnd"], rep["CapEff"])
					}
				}},
				{name: "non-root user holds none", user: &process.User{UID: 1000, GID: 1000}, mode: "sandbox", check: func(t *testing.T, rep map[string]string) {
					if capBits(t, rep, "CapEff") != 0 || capBits(t, rep, "CapPrm") != 0 {
						t.Errorf("capabilities: got permitted %s effective %s, want none", rep["CapPrm"], rep["CapEff"])
					}
				}},
				{name: "read-only root", sec: process.Security{ReadOnlyRootFS: true}, mode: "info", check: func(t *testing.T, rep map[string]string) {
					if !strings.Contains(rep["write-root-err"], "read-only file system") {
						t.Errorf("write to /: got %q, want a read-only file system", rep["write-root-err"])
					}
				}},
				{name: "add beyond Docker's", sec: process.Security{CapAdd: []string{"SYS_ADMIN"}}, mode: "sandbox", wantErr: "beyond Docker's default set"},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					var out syncBuffer
					inst, err := r.Start(t.Context(), process.Spec{
						ID: uniqueID("secctx"), RootFS: rootfs(t), Args: []string{"/bin/app", tt.mode},
						Security: tt.sec, User: tt.user, Stdout: &out, Stderr: &out,
					})
					if tt.wantErr != "" {
						if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
							if inst != nil {
								inst.Stop(0)
							}
							t.Fatalf("Start: got %v, want an error containing %q", err, tt.wantErr)
						}
						return
					}
					if err != nil {
						t.Fatalf("Start: %v", err)
					}
					wait(t, inst, 30*time.Second)
					tt.check(t, report(out.String()))
				})
			}
		})
	}
}
