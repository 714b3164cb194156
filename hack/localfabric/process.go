package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// proc is a child process of the fabric: in its own process group (so stopping it
// stops whatever it started), its output in logs/<name>.log, its pid in
// pids/<name>.pid for `down` to find if the supervisor itself is gone.
type proc struct {
	name    string
	path    string
	cmd     *exec.Cmd
	logPath string
	pidPath string

	done     chan struct{} // closed after the process exited and exitErr is set
	exitErr  error
	stopping atomic.Bool // set before stop signals the process
}

// startProc starts path with args, in network namespace netns unless that is "".
// onExit is called from another goroutine if the process exits before stop is
// called.
func startProc(dirs fabricDirs, name, netns, path string, args []string, onExit func(*proc)) (*proc, error) {
	logPath := filepath.Join(dirs.logs, name+".log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(path, args...)
	if netns != "" {
		// ip execs path inside the namespace, so the pid stays path's.
		cmd = exec.Command("ip", append([]string{"netns", "exec", netns, path}, args...)...)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = childSysProcAttr()
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, path: path, cmd: cmd, logPath: logPath, pidPath: filepath.Join(dirs.pids, name+".pid"), done: make(chan struct{})}
	if err := os.WriteFile(p.pidPath, fmt.Appendf(nil, "%d %s\n", cmd.Process.Pid, path), 0o644); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		_ = logFile.Close()
		return nil, err
	}
	go func() {
		p.exitErr = cmd.Wait()
		_ = logFile.Close()
		close(p.done)
		if !p.stopping.Load() && onExit != nil {
			onExit(p)
		}
	}()
	return p, nil
}

// stop sends SIGTERM to the process group, then SIGKILL after grace, and waits.
func (p *proc) stop(grace time.Duration) {
	p.stopping.Store(true)
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-p.done:
	case <-timer.C:
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
	// Whatever the leader left behind in its group goes too.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	_ = os.Remove(p.pidPath)
}

func (p *proc) exitedErr() error {
	return fmt.Errorf("%s %s; last lines of %s:\n%s", p.name, exitStatus(p.exitErr), p.logPath, logTail(p.logPath, 20))
}

// waitHTTP polls url until it answers 200 OK, the process exits, or ctx ends.
// client may be nil for a plain client that skips TLS verification (a probe of a
// local child process).
func (p *proc) waitHTTP(ctx context.Context, url string, client *http.Client) error {
	if client == nil {
		client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} // a liveness probe of a local child
	}
	client.Timeout = 2 * time.Second
	defer client.CloseIdleConnections()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var lastErr error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("%s answered %s", url, resp.Status)
		}
		lastErr = err
		select {
		case <-p.done:
			return p.exitedErr()
		case <-ctx.Done():
			return fmt.Errorf("%s not healthy: %w (last try: %w); last lines of %s:\n%s", p.name, ctx.Err(), lastErr, p.logPath, logTail(p.logPath, 20))
		case <-tick.C:
		}
	}
}

// waitFile waits until path exists, the process exits, or ctx ends.
func (p *proc) waitFile(ctx context.Context, path string) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		select {
		case <-p.done:
			return p.exitedErr()
		case <-ctx.Done():
			return fmt.Errorf("wait for %s to write %s: %w; last lines of %s:\n%s", p.name, path, ctx.Err(), p.logPath, logTail(p.logPath, 20))
		case <-tick.C:
		}
	}
}

// killRecorded kills the process groups recorded in pid files in dir whose process
// still runs the recorded binary, and removes the files. It returns the names of
// the ones it killed.
func killRecorded(dir string) []string {
	entries, _ := os.ReadDir(dir)
	var killed []string
	for _, e := range entries {
		path := filepath.Join(dir, e.Name())
		if pid, bin, ok := readPidFile(path); ok && alive(pid, bin) {
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			_ = syscall.Kill(pid, syscall.SIGKILL)
			killed = append(killed, strings.TrimSuffix(e.Name(), ".pid"))
		}
		_ = os.Remove(path)
	}
	return killed
}

// readPidFile reads "<pid> <binary path>".
func readPidFile(path string) (pid int, bin string, ok bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, "", false
	}
	pidStr, bin, _ := strings.Cut(strings.TrimSpace(string(b)), " ")
	pid, err = strconv.Atoi(pidStr)
	if err != nil || pid <= 1 {
		return 0, "", false
	}
	return pid, bin, true
}

// alive reports whether pid is running and, where /proc tells, runs bin, so that a
// recycled pid is never signalled.
func alive(pid int, bin string) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return !isDir("/proc/self") // no /proc (macOS): trust the pid
	}
	if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		// A zombie has exited; only its parent's wait is missing.
		if _, rest, ok := strings.Cut(string(st), ") "); ok && strings.HasPrefix(rest, "Z") {
			return false
		}
	}
	argv0, _, _ := strings.Cut(string(cmdline), "\x00")
	return bin == "" || argv0 == bin
}

func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

// pickPort returns preferred if it is free on host, else a free random port.
func pickPort(host string, preferred int) (int, error) {
	if preferred > 0 {
		if l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(preferred))); err == nil {
			_ = l.Close()
			return preferred, nil
		}
	}
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// exitStatus describes how a process ended, from exec.Cmd.Wait's error.
func exitStatus(err error) string {
	if err == nil {
		return "exited with status 0"
	}
	return "exited: " + err.Error()
}

// logTail returns the last n lines of the file at path, or "" if it cannot be read.
func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
