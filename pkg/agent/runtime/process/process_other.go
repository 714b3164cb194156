//go:build !linux

package process

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
)

func canIsolate() bool { return false }

// probeUserNS is never asked: containers are not isolated here.
func probeUserNS(string, uint32) error { return errors.New("user namespaces are Linux's") }

func detectCgroups(*slog.Logger) cgroupDriver { return nil }

func (i *Instance) prepare() error {
	i.root = i.spec.RootFS
	return nil
}

func (i *Instance) command(argv []string, stdin io.Reader, stdout, stderr io.Writer, _ bool) (*exec.Cmd, error) {
	if len(argv) == 0 {
		return nil, errors.New("empty command")
	}
	exe, err := lookPath(i.root, argv[0], i.spec.Env)
	if err != nil {
		return nil, err
	}
	env := append([]string{}, i.spec.Env...)
	env = append(env, "EDGEFABRIC_ROOT="+i.root)
	for _, m := range i.spec.Mounts {
		env = append(env, volumeEnv(m.Name)+"="+m.Source)
	}
	return &exec.Cmd{
		Path: filepath.Join(i.root, exe), Args: argv, Env: env, Dir: filepath.Join(i.root, i.spec.WorkingDir),
		Stdin: stdin, Stdout: stdout, Stderr: stderr,
	}, nil
}

func (i *Instance) attachCgroup(*exec.Cmd) error { return nil }

// startCmd starts cmd: elsewhere than Linux there is no sandbox to start it
// in.
func (i *Instance) startCmd(cmd *exec.Cmd, _ bool) error { return cmd.Start() }
func (i *Instance) afterStart()                          {}
func (i *Instance) afterStartPid(int)                    {}
func (i *Instance) signalTerm()                          { _ = i.cmd.Process.Signal(os.Interrupt) }
func (i *Instance) kill()                                { _ = i.cmd.Process.Kill() }
func (i *Instance) cleanup()                             {}

func killGroup(pid int) {
	if p, err := os.FindProcess(pid); err == nil {
		_ = p.Kill()
	}
}

func exitCode(ps *os.ProcessState) int { return ps.ExitCode() }
func signalOf(*os.ProcessState) string { return "" }
func treeRSS(int) int64                { return 0 }

func clearStale(string) error { return nil }

func onTerminal(*exec.Cmd) {}
