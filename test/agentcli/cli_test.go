// Package agentcli tests the edgeagent commands for a person at the device,
// join and status, as real processes against a real fabric (test/fabrictest).
package agentcli

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/edgefabric/edgefabric/pkg/agent/localapi"
	"github.com/edgefabric/edgefabric/test/fabrictest"
	"github.com/edgefabric/edgefabric/test/ocitest"
)

func TestMain(m *testing.M) { fabrictest.Main(m) }

// edgeagent runs the agent binary with args and returns stdout, stderr and the
// exit code.
func edgeagent(t *testing.T, bin string, args ...string) (string, string, int) {
	t.Helper()
	return edgeagentEnv(t, nil, bin, args...)
}

// edgeagentEnv is edgeagent with env added to the process's environment.
func edgeagentEnv(t *testing.T, env []string, bin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), bin, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("edgeagent %s: %v", strings.Join(args, " "), err)
		}
		code = ee.ExitCode()
	}
	return stdout.String(), stderr.String(), code
}

func TestJoinAndStatus(t *testing.T) {
	f := fabrictest.StartFabric(t, 1)
	bin := f.AgentBin()
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "etc", "config.yaml")
	dataDir := filepath.Join(dir, "data")
	unitDir := filepath.Join(dir, "units")
	tokenFile := filepath.Join(dir, "etc", "bootstrap-token")
	joinArgs := []string{"join", "--hub", f.AgentHub, "--token-file", f.TokenFile(f.Token), "--hub-ca", filepath.Join(f.StateDir, "ca.crt"),
		"--config", cfgPath, "--data-dir", dataDir, "--unit-dir", unitDir}

	t.Run("join --dry-run", func(t *testing.T) {
		out, errOut, code := edgeagent(t, bin, append(joinArgs, "--systemd", "on", "--dry-run")...)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		for _, want := range []string{
			"# would write " + cfgPath, "hub: " + f.AgentHub, "tokenFile: " + tokenFile, "dataDir: " + dataDir,
			"# would write " + tokenFile + " (mode 0600): the bootstrap token",
			"# would write " + filepath.Join(unitDir, "edgeagent.service"),
			"ExecStart=" + bin + " run --config " + cfgPath,
			"systemctl daemon-reload", "systemctl enable --now edgeagent.service",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("dry run output lacks %q:\n%s", want, out)
			}
		}
		for _, p := range []string{cfgPath, filepath.Join(unitDir, "edgeagent.service")} {
			if _, err := os.Stat(p); !os.IsNotExist(err) {
				t.Errorf("the dry run wrote %s (stat: %v)", p, err)
			}
		}
		if strings.Contains(out, f.Token) || strings.Contains(errOut, f.Token) {
			t.Errorf("the dry run shows the token:\n%s%s", out, errOut)
		}
		verifyUnit(t, out)
	})

	// With systemd: the unit is written where --unit-dir says, is valid
	// (systemd-analyze verify), and systemctl is asked to load, enable and
	// start it, in that order. No systemd runs on the test machines, so
	// systemctl is a script on PATH that records its arguments (and fails
	// when told to): what is tested is edgeagent's side of the contract.
	t.Run("join --systemd on", func(t *testing.T) {
		sdir := t.TempDir()
		stub, calls := filepath.Join(sdir, "bin"), filepath.Join(sdir, "calls")
		if err := os.MkdirAll(stub, 0o755); err != nil {
			t.Fatal(err)
		}
		script := "#!/bin/sh\necho \"$*\" >> \"$SYSTEMCTL_CALLS\"\n[ \"$*\" != \"$SYSTEMCTL_FAIL\" ] || { echo \"Failed to $*\" >&2; exit 3; }\n"
		if err := os.WriteFile(filepath.Join(stub, "systemctl"), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		cfg, units := filepath.Join(sdir, "etc", "config.yaml"), filepath.Join(sdir, "units")
		args := []string{"join", "--hub", f.AgentHub, "--token-file", f.TokenFile(f.Token), "--hub-ca", filepath.Join(f.StateDir, "ca.crt"),
			"--config", cfg, "--data-dir", filepath.Join(sdir, "data"), "--unit-dir", units, "--systemd", "on"}
		env := []string{"PATH=" + stub + ":" + os.Getenv("PATH"), "SYSTEMCTL_CALLS=" + calls}
		out, errOut, code := edgeagentEnv(t, env, bin, args...)
		if code != 0 {
			t.Fatalf("exit %d: %s%s", code, out, errOut)
		}
		unit, err := os.ReadFile(filepath.Join(units, "edgeagent.service"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(unit), "ExecStart="+bin+" run --config "+cfg) {
			t.Errorf("unit does not run the agent on its config:\n%s", unit)
		}
		verifyUnit(t, "edgeagent.service (mode 0644):\n"+string(unit)+"# would run:")
		got, err := os.ReadFile(calls)
		if err != nil {
			t.Fatal(err)
		}
		if want := "daemon-reload\nenable --now edgeagent.service\nrestart edgeagent.service\n"; string(got) != want {
			t.Errorf("systemctl calls:\n%s\nwant:\n%s", got, want)
		}
		if !strings.Contains(out, "started edgeagent.service") {
			t.Errorf("join output does not say it started the unit:\n%s", out)
		}
		// systemctl failing is a clear error, not a success.
		out, errOut, code = edgeagentEnv(t, append(env, "SYSTEMCTL_FAIL=enable --now edgeagent.service"), bin, args...)
		if code != 1 || !strings.Contains(errOut, "systemctl enable --now edgeagent.service: exit status 3") {
			t.Errorf("with systemctl failing: exit %d, stdout %q, stderr %q", code, out, errOut)
		}
	})

	t.Run("join refuses", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			args []string
			want string
		}{
			{"no token", []string{"join", "--hub", f.AgentHub, "--hub-ca", filepath.Join(f.StateDir, "ca.crt")}, "bootstrap token is required"},
			{"no CA", []string{"join", "--hub", f.AgentHub, "--token", "x"}, "CA certificate is required"},
			{"CA not PEM", []string{"join", "--hub", f.AgentHub, "--token", "x", "--hub-ca", cfgPath + ".missing"}, "--hub-ca"},
			{"bad hub", []string{"join", "--hub", "nohostport", "--token", "x", "--hub-ca", filepath.Join(f.StateDir, "ca.crt"), "--config", filepath.Join(dir, "bad.yaml")}, "hub address"},
		} {
			_, errOut, code := edgeagent(t, bin, tc.args...)
			if code != 1 || !strings.Contains(errOut, tc.want) {
				t.Errorf("%s: exit %d, stderr %q; want exit 1 and %q", tc.name, code, errOut, tc.want)
			}
		}
	})

	// Without systemd, join writes the config and says how to start the agent.
	out, errOut, code := edgeagent(t, bin, append(joinArgs, "--systemd", "off")...)
	if code != 0 {
		t.Fatalf("join: exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "edgeagent run --config "+cfgPath) {
		t.Errorf("join output does not say how to start the agent:\n%s", out)
	}
	if fi, err := os.Stat(cfgPath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("config file: %v, mode %v; want mode 0600", err, fi.Mode())
	}
	if fi, err := os.Stat(tokenFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v, mode %v; want mode 0600 (it holds the token)", err, fi.Mode())
	}

	// No agent yet: status says so and exits 1.
	_, errOut, code = edgeagent(t, bin, "status", "--data-dir", dataDir)
	if code != 1 || !strings.Contains(errOut, "no agent is running with data directory "+dataDir) {
		t.Errorf("status with no agent: exit %d, stderr %q", code, errOut)
	}

	// The agent runs from the config join wrote, and joins the fabric.
	a := f.StartAgentArgs("joined", dataDir, "run", "--config", cfgPath, "--device-id", "joined",
		"--advertise-address", "127.0.0.1", "--heartbeat-interval", "1s", "--cpu-millis", "1000")
	f.WaitNode(func(n *corev1.Node) bool { return fabrictest.NodeReady(n) && fabrictest.ReadyDevices(n) == 2 })

	deadline := time.Now().Add(30 * time.Second)
	for {
		out, errOut, code = edgeagent(t, bin, "status", "--data-dir", dataDir)
		if code == 0 && strings.Contains(out, "connected") && !strings.Contains(out, "disconnected") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status of the joined agent: exit %d, stderr %q, output:\n%s", code, errOut, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Joined: no token is left on the device, in the config, the token
	// file or the data directory.
	if _, err := os.Stat(tokenFile); !os.IsNotExist(err) {
		t.Errorf("token file after the join: %v, want it removed", err)
	}
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Type()&os.ModeSocket != 0 {
			return nil
		}
		if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, []byte(f.Token)) {
			t.Errorf("%s holds the bootstrap token after the join", p)
		}
		return nil
	})
	for _, want := range []string{"Device:", "joined", "Account:", f.Account, "Certificate expires:", "Hub:", f.AgentHub + ", connected", "Clusters:", "account " + f.Account, "Workloads:"} {
		if !strings.Contains(out, want) {
			t.Errorf("status output lacks %q:\n%s", want, out)
		}
	}

	// A pod: the device that runs it lists it as running.
	ref, _ := f.PushExample("hello", "v1", ocitest.Image)
	p := f.Create(f.Pod("status-hello", ref, fabrictest.Env("INTERVAL", "1s")))
	p = f.WaitPod(p.Name, 90*time.Second, fabrictest.PodReady)
	dev := f.DeviceOf(p)
	var st localapi.Status
	deadline = time.Now().Add(30 * time.Second)
	for {
		out, errOut, code = edgeagent(t, bin, "status", "--data-dir", dev.DataDir, "--json")
		if code != 0 {
			t.Fatalf("status --json of %s: exit %d: %s", dev.ID, code, errOut)
		}
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("status --json: %v\n%s", err, out)
		}
		if len(st.Workloads) == 1 && len(st.Workloads[0].Containers) == 1 && st.Workloads[0].Containers[0].State == "Running" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status of %s does not show the pod running:\n%s", dev.ID, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if w := st.Workloads[0]; w.Namespace != p.Namespace || w.Name != p.Name || w.UID != string(p.UID) || w.Phase != "Running" || st.Device != dev.ID || !st.Connected {
		t.Errorf("status of %s: %+v; want pod %s/%s (%s) Running on a connected device", dev.ID, st, p.Namespace, p.Name, p.UID)
	}
	out, _, _ = edgeagent(t, bin, "status", "--data-dir", dev.DataDir)
	if !strings.Contains(out, "default/status-hello") || !strings.Contains(out, "Running") {
		t.Errorf("status of %s does not list the pod:\n%s", dev.ID, out)
	}

	// The agent stops: its socket goes with it.
	a.Stop(t, syscall.SIGTERM)
	_, errOut, code = edgeagent(t, bin, "status", "--data-dir", dataDir)
	if code != 1 || !strings.Contains(errOut, "no agent is running") {
		t.Errorf("status after the agent stopped: exit %d, stderr %q", code, errOut)
	}
	f.Forget(a)
	f.CheckAlive()
}

// verifyUnit checks the systemd unit in join's dry-run output with systemd's
// own offline checker, systemd-analyze verify (directives, the ExecStart
// binary), where the machine has it.
func verifyUnit(t *testing.T, dryRun string) {
	t.Helper()
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("systemd-analyze not found: the unit is not verified")
		return
	}
	_, rest, ok := strings.Cut(dryRun, "edgeagent.service (mode 0644):\n")
	unit, _, ok2 := strings.Cut(rest, "# would run:")
	if !ok || !ok2 {
		t.Fatalf("no unit in the dry run output:\n%s", dryRun)
	}
	file := filepath.Join(t.TempDir(), "edgeagent.service")
	if err := os.WriteFile(file, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(analyze, "verify", "--man=no", file).CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s\nunit:\n%s", err, out, unit)
	}
}
