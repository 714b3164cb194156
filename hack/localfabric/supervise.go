package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// superviseMode is the hidden mode of the background process that up starts.
const superviseMode = "supervise"

// readyFDEnv names the file descriptor on which the supervisor reports start-up:
// one line, "ready" or "error: ...", then EOF.
const readyFDEnv = "LOCALFABRIC_READY_FD"

func pidFile(cfg Config) string { return filepath.Join(cfg.Dir, "fabric.pid") }

// running returns the pid of the fabric's supervisor (up) or foreground process
// (demo), if one runs.
func running(cfg Config) (int, bool) {
	pid, bin, ok := readPidFile(pidFile(cfg))
	if !ok || !alive(pid, bin) {
		return 0, false
	}
	return pid, true
}

// preflight is the part of up and demo that runs in the foreground: refuse to start
// twice, get the control plane, check the binaries, wipe the state directory.
func preflight(ctx context.Context, cfg *Config) error {
	if pid, ok := running(*cfg); ok {
		return fmt.Errorf("a local fabric is already running (pid %d); stop it with `make down`", pid)
	}
	if err := checkLANs(cfg.LANs, cfg.agentCount()); err != nil {
		if cfg.LANs > 1 {
			return err
		}
		if !cfg.Loopback {
			fmt.Fprintf(os.Stderr, "localfabric: the agents run on loopback: %v\n", err)
		}
		cfg.Loopback = true
	}
	// Stray children and LANs of a supervisor that was killed hard.
	killRecorded(dirsOf(cfg.Dir).pids)
	teardownLANs()
	if cfg.AssetsDir == "" {
		dir, err := buildControlPlane(ctx, cfg.Root)
		if err != nil {
			return err
		}
		cfg.AssetsDir = dir
	}
	if cfg.HelmBin == "" {
		bin, err := buildHelm(ctx, cfg.Root)
		if err != nil {
			return err
		}
		cfg.HelmBin = bin
	}
	for _, b := range []string{"etcd", "kube-apiserver", "kube-scheduler", "kube-controller-manager", "kubectl"} {
		if _, err := os.Stat(filepath.Join(cfg.AssetsDir, b)); err != nil {
			return fmt.Errorf("control plane in %s: %w", cfg.AssetsDir, err)
		}
	}
	if !cfg.ControlPlaneOnly {
		for _, b := range []string{cfg.ProviderBin, cfg.AgentBin} {
			if _, err := os.Stat(b); err != nil {
				return fmt.Errorf("%w (run `make build`, or pass -control-plane-only)", err)
			}
		}
	}
	return prepare(cfg.Dir)
}

// buildControlPlane runs hack/build-controlplane.sh, which prints the directory of
// the binaries at once when they are cached and builds them first otherwise.
func buildControlPlane(ctx context.Context, root string) (string, error) {
	script := filepath.Join(root, "hack", "build-controlplane.sh")
	cmd := exec.CommandContext(ctx, "bash", script)
	cmd.Dir = root
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s: %w", script, err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(lines[len(lines)-1]), nil
}

// up starts the supervisor in a new session and returns once it reports the fabric
// ready; if it does not, up stops it and returns the error with the end of its log.
func up(ctx context.Context, cfg Config) error {
	if err := preflight(ctx, &cfg); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	logPath := filepath.Join(dirsOf(cfg.Dir).logs, "localfabric.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer func() { _ = logFile.Close() }()
	readR, readyW, err := os.Pipe()
	if err != nil {
		return err
	}
	defer func() { _ = readR.Close() }()

	cmd := exec.Command(self, append([]string{superviseMode}, cfg.flags()...)...)
	cmd.Dir = cfg.Root
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.ExtraFiles = []*os.File{readyW} // fd 3
	cmd.Env = append(os.Environ(), readyFDEnv+"=3")
	// A session of its own: the terminal's hang-up and Ctrl-C do not reach it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		_ = readyW.Close()
		return fmt.Errorf("start supervisor: %w", err)
	}
	_ = readyW.Close()
	pid := cmd.Process.Pid
	if err := os.WriteFile(pidFile(cfg), fmt.Appendf(nil, "%d %s\n", pid, self), 0o644); err != nil {
		_ = cmd.Process.Kill()
		return err
	}
	// Not waited for: it outlives this process.
	_ = cmd.Process.Release()

	fmt.Printf("starting the local fabric (supervisor pid %d, log %s)...\n", pid, logPath)
	_ = readR.SetReadDeadline(time.Now().Add(cfg.ReadyTimeout + 30*time.Second))
	type result struct {
		msg string
		err error
	}
	done := make(chan result, 1)
	go func() {
		line, err := bufio.NewReader(readR).ReadString('\n')
		if err == io.EOF {
			err = nil
		}
		done <- result{strings.TrimSpace(line), err}
	}()
	var res result
	select {
	case res = <-done:
	case <-ctx.Done():
		res.err = errors.New("interrupted")
	}
	if res.err == nil && res.msg == "ready" {
		return printInfo(cfg)
	}
	why := res.msg
	switch {
	case res.err != nil:
		why = res.err.Error()
	case why == "":
		why = "the supervisor exited without reporting"
	}
	fmt.Fprintf(os.Stderr, "the local fabric did not come up: %s\nlast lines of %s:\n%s\n", strings.TrimPrefix(why, "error: "), logPath, logTail(logPath, 40))
	stop(cfg)
	return errors.New("up failed; logs are in " + dirsOf(cfg.Dir).logs)
}

// supervise runs the fabric until ctx ends (SIGTERM from down).
func supervise(ctx context.Context, cfg Config, logger *slog.Logger) error {
	var ready io.WriteCloser = nopWriteCloser{io.Discard}
	if fd, err := strconv.Atoi(os.Getenv(readyFDEnv)); err == nil {
		// Not for the children: up reads until the first line or EOF.
		syscall.CloseOnExec(fd)
		ready = os.NewFile(uintptr(fd), "ready")
	}
	reported := false
	f := newFabric(cfg, logger)
	err := f.run(ctx, func(info Info) {
		logger.Info("fabric ready", "kubeconfig", info.Kubeconfig, "registry", info.Registry, "hub", info.Hub, "env", info.EnvFile)
		_, _ = io.WriteString(ready, "ready\n")
		_ = ready.Close()
		reported = true
	})
	if !reported {
		msg := "stopped before it was ready"
		if err != nil {
			msg = err.Error()
		}
		_, _ = io.WriteString(ready, "error: "+msg+"\n")
		_ = ready.Close()
	}
	if pid, _, ok := readPidFile(pidFile(cfg)); ok && pid == os.Getpid() {
		_ = os.Remove(pidFile(cfg))
	}
	logger.Info("fabric stopped")
	return err
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// down stops the fabric and says whether there was one.
func down(cfg Config) error {
	if stop(cfg) {
		fmt.Println("local fabric stopped")
	} else {
		fmt.Println("no local fabric is running")
	}
	return nil
}

// stop stops the fabric's supervisor (which stops its children), then kills any
// child left over from a supervisor that died. It reports whether anything ran.
func stop(cfg Config) bool {
	stopped := false
	if pid, ok := running(cfg); ok {
		fmt.Printf("stopping the local fabric (pid %d)...\n", pid)
		_ = syscall.Kill(pid, syscall.SIGTERM)
		deadline := time.Now().Add(60 * time.Second)
		for alive(pid, "") && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond) // not our child: nothing to wait on
		}
		if alive(pid, "") {
			fmt.Fprintf(os.Stderr, "pid %d did not stop within 60s; killing it\n", pid)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		stopped = true
	}
	if killed := killRecorded(dirsOf(cfg.Dir).pids); len(killed) > 0 {
		fmt.Fprintf(os.Stderr, "killed left-over processes: %s\n", strings.Join(killed, ", "))
		stopped = true
	}
	teardownLANs()
	_ = os.Remove(pidFile(cfg))
	return stopped
}

func status(cfg Config) error {
	pid, ok := running(cfg)
	if !ok {
		fmt.Println("no local fabric is running")
		return nil
	}
	fmt.Printf("the local fabric is running (pid %d)\n", pid)
	return printInfo(cfg)
}

// printInfo prints the env file and how to use it.
func printInfo(cfg Config) error {
	envFile := filepath.Join(cfg.Dir, "env")
	b, err := os.ReadFile(envFile)
	if err != nil {
		return err
	}
	rel := envFile
	if r, err := filepath.Rel(cfg.Root, envFile); err == nil && !strings.HasPrefix(r, "..") {
		rel = r
	}
	fmt.Printf(`
The local fabric is up. Its settings (%s):

%s
Use it from this shell:

  . %s
  kubectl get nodes -o wide

Logs: %s/   Stop it: make down
`, rel, b, rel, dirsOf(cfg.Dir).logs)
	return nil
}

// flags renders cfg as the flags that parseFlags reads back.
func (cfg Config) flags() []string {
	return []string{
		"-dir=" + cfg.Dir,
		"-assets=" + cfg.AssetsDir,
		"-helm=" + cfg.HelmBin,
		"-provider-bin=" + cfg.ProviderBin,
		"-agent-bin=" + cfg.AgentBin,
		"-agents=" + strconv.Itoa(cfg.Agents),
		"-lans=" + strconv.Itoa(cfg.LANs),
		"-loopback=" + strconv.FormatBool(cfg.Loopback),
		"-account=" + cfg.Account,
		"-node=" + cfg.NodeName,
		"-apiserver-port=" + strconv.Itoa(cfg.APIServerPort),
		"-registry-port=" + strconv.Itoa(cfg.RegistryPort),
		"-hub-port=" + strconv.Itoa(cfg.HubPort),
		"-kubelet-port=" + strconv.Itoa(cfg.KubeletPort),
		"-control-plane-only=" + strconv.FormatBool(cfg.ControlPlaneOnly),
		"-ready-timeout=" + cfg.ReadyTimeout.String(),
	}
}
