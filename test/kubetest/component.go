package kubetest

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
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// component is a control-plane binary run as a child process in its own process
// group, with its output in a log file and a health endpoint to poll.
type component struct {
	name      string
	cmd       *exec.Cmd
	logPath   string
	healthURL string

	done      chan struct{} // closed once the process has exited and exitErr is set
	exitErr   error
	stopping  atomic.Bool   // set before stop signals the process
	watchDone chan struct{} // closed when watch's goroutine has ended; nil without watch
}

func startComponent(name, path, logDir, healthURL string, args ...string) (*component, error) {
	logPath := filepath.Join(logDir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &component{name: name, cmd: cmd, logPath: logPath, healthURL: healthURL, done: make(chan struct{})}
	go func() {
		c.exitErr = cmd.Wait()
		_ = logFile.Close()
		close(c.done)
	}()
	return c, nil
}

// watch fails the test if the process exits before stop is called.
func (c *component) watch(t testing.TB) {
	c.watchDone = make(chan struct{})
	go func() {
		defer close(c.watchDone)
		<-c.done
		if !c.stopping.Load() {
			t.Errorf("%s exited unexpectedly (%s)\nlast lines of its log:\n%s", c.name, exitStatus(c.exitErr), logTail(c.logPath, 30))
		}
	}()
}

// waitHealthy polls the health endpoint until it answers 200, the process exits,
// timeout passes or ctx ends.
func (c *component) waitHealthy(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{
		Timeout: 2 * time.Second,
		// The components serve a self-signed certificate; only liveness matters here.
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, // a health probe of a local child process
	}
	defer client.CloseIdleConnections()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var lastErr error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.healthURL, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("%s answered %s", c.healthURL, resp.Status)
		}
		lastErr = err
		select {
		case <-c.done:
			return fmt.Errorf("%s exited before it was healthy (%s)\nlast lines of its log:\n%s", c.name, exitStatus(c.exitErr), logTail(c.logPath, 30))
		case <-ctx.Done():
			return fmt.Errorf("%s not healthy after %s: %w\nlast lines of its log:\n%s", c.name, timeout, lastErr, logTail(c.logPath, 30))
		case <-tick.C:
		}
	}
}

// stop terminates the process group, waiting up to 20 s before killing it.
func (c *component) stop(t testing.TB) {
	c.stopping.Store(true)
	pgid := c.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	if !waitClosed(c.done, 20*time.Second) {
		t.Logf("%s did not stop in 20s; killing it", c.name)
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-c.done
	}
	if c.watchDone != nil {
		// It may still be reporting an exit that came before stop; the test must
		// not end under it.
		<-c.watchDone
	}
}

// waitClosed waits until done is closed or d passes, and reports whether done
// was closed.
func waitClosed(done <-chan struct{}, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-done:
		return true
	case <-timer.C:
		return false
	}
}

// exitStatus describes how a process ended, from exec.Cmd.Wait's error.
func exitStatus(err error) string {
	if err == nil {
		return "status 0"
	}
	return err.Error()
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}

const schedulerConfig = `apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: %q
  qps: 1000
  burst: 2000
leaderElection:
  leaderElect: false
`

func startScheduler(assets, kubeconfig, dir string) (*component, error) {
	configPath := filepath.Join(dir, "kube-scheduler.yaml")
	if err := os.WriteFile(configPath, fmt.Appendf(nil, schedulerConfig, kubeconfig), 0o600); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	certDir := filepath.Join(dir, "kube-scheduler-certs")
	return startComponent("kube-scheduler", filepath.Join(assets, "kube-scheduler"), dir,
		"https://127.0.0.1:"+strconv.Itoa(port)+"/readyz",
		"--config="+configPath,
		"--authentication-kubeconfig="+kubeconfig,
		"--authorization-kubeconfig="+kubeconfig,
		"--bind-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(port),
		"--cert-dir="+certDir,
		"--v=1",
	)
}

// startControllerManager runs every on-by-default controller; none of them needs a
// cloud. certDir is envtest's API server certificate directory, which holds the
// service-account signing key; apiServerCA is the CA of the API server's serving
// certificate, published as kube-root-ca.crt in every namespace.
func startControllerManager(assets, kubeconfig, dir, certDir string, apiServerCA []byte) (*component, error) {
	saKey := filepath.Join(certDir, "sa-signer.key")
	if _, err := os.Stat(saKey); err != nil {
		return nil, fmt.Errorf("service-account signing key of envtest's API server: %w", err)
	}
	if len(apiServerCA) == 0 {
		return nil, errors.New("envtest's API server has no serving CA")
	}
	rootCA := filepath.Join(dir, "apiserver-ca.crt")
	if err := os.WriteFile(rootCA, apiServerCA, 0o600); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	return startComponent("kube-controller-manager", filepath.Join(assets, "kube-controller-manager"), dir,
		"https://127.0.0.1:"+strconv.Itoa(port)+"/healthz",
		"--kubeconfig="+kubeconfig,
		"--authentication-kubeconfig="+kubeconfig,
		"--authorization-kubeconfig="+kubeconfig,
		"--leader-elect=false",
		"--controllers=*",
		"--kube-api-qps=1000",
		"--kube-api-burst=2000",
		"--service-account-private-key-file="+saKey,
		"--root-ca-file="+rootCA,
		"--use-service-account-credentials=false",
		"--bind-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(port),
		"--cert-dir="+filepath.Join(dir, "kube-controller-manager-certs"),
		"--v=1",
	)
}
