package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/edgefabric/edgefabric/test/kubetest"
	"github.com/edgefabric/edgefabric/test/ocitest"
)

// The account every benchmark fabric uses, and its virtual node.
const (
	account   = "bench"
	nodeName  = "edge-" + account
	namespace = "default"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// binaries builds the provider and the agent once per test binary, the agent
// as `make build` does (static, stripped), so that what is measured is what
// ships.
func binaries(tb testing.TB) (provider, agent string) {
	tb.Helper()
	buildOnce.Do(func() {
		if binDir, buildErr = os.MkdirTemp("", "edgefabric-bench-bin"); buildErr != nil {
			return
		}
		root := ocitest.RepoRoot(tb)
		for _, args := range [][]string{
			{"build", "-trimpath", "-o", binDir + "/", "./cmd/provider"},
			{"build", "-trimpath", "-ldflags", "-s -w", "-o", binDir + "/", "./cmd/edgeagent"},
		} {
			cmd := exec.Command("go", args...)
			cmd.Dir = root
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("go %s: %s: %w", strings.Join(args, " "), out, err)
				return
			}
		}
	})
	if buildErr != nil {
		tb.Fatal(buildErr)
	}
	return filepath.Join(binDir, "provider"), filepath.Join(binDir, "edgeagent")
}

func TestMain(m *testing.M) {
	// envtest logs through controller-runtime's logger; without one it
	// complains with a stack trace.
	ctrllog.SetLogger(logr.Discard())
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// fabric is a real control plane, a registry, the provider and agents, each
// a process of its own on this machine.
type fabric struct {
	tb       testing.TB
	env      *kubetest.Env
	client   kubernetes.Interface
	registry string
	token    string
	hubAddr  string
	stateDir string
	logDir   string
	agentBin string

	mu       sync.Mutex
	provider *proc
	agents   []*agent
}

// proc is a child process with its output in a log file.
type proc struct {
	name string
	log  string
	cmd  *exec.Cmd
	done chan struct{}
}

// agent is an edgeagent process.
type agent struct {
	*proc
	id      string
	dataDir string
	args    []string
}

// fabricOptions change what startFabric runs. The zero value runs agents
// with the flags of the end-to-end tests and the provider with its defaults.
type fabricOptions struct {
	// ProviderArgs are added to the provider's command line.
	ProviderArgs []string
	// AgentArgs are added to every agent's command line.
	AgentArgs []string
	// AgentDebug, if set, gives the i-th agent --debug-listen AgentDebug(i).
	AgentDebug func(i int) string
}

// startFabric brings up the control plane, a registry, the provider and n
// agents, and waits until the account's node is Ready with all n devices.
// Everything is stopped on tb.Cleanup.
func startFabric(tb testing.TB, n int, opts fabricOptions) *fabric {
	tb.Helper()
	provBin, agentBin := binaries(tb)
	env := kubetest.Start(tb, kubetest.Options{})
	tok := make([]byte, 16)
	_, _ = rand.Read(tok)
	f := &fabric{
		tb: tb, env: env, client: env.Client, registry: ocitest.Serve(tb),
		token: hex.EncodeToString(tok), hubAddr: freeAddr(tb),
		stateDir: tb.TempDir(), logDir: tb.TempDir(), agentBin: agentBin,
	}
	ctx := context.Background()
	if _, err := env.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "edgefabric-system"}}, metav1.CreateOptions{}); err != nil {
		tb.Fatal(err)
	}
	if _, err := env.Client.CoreV1().Secrets("edgefabric-system").Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "bootstrap-token-" + account},
		Type:       "edgefabric.io/bootstrap-token",
		StringData: map[string]string{"token": f.token, "account": account},
	}, metav1.CreateOptions{}); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if dir := os.Getenv("EDGEFABRIC_BENCH_LOGS"); dir != "" {
			f.keepLogs(dir)
		}
	})
	tb.Cleanup(f.stopAll)
	tb.Cleanup(func() {
		if tb.Failed() {
			f.dumpLogs()
		}
	})
	args := append([]string{
		"--kubeconfig", env.Kubeconfig,
		"--state-dir", f.stateDir,
		"--hub-listen", f.hubAddr,
		"--kubelet-listen", freeAddr(tb),
		"--node-ip", "127.0.0.1",
	}, opts.ProviderArgs...)
	f.provider = f.start("provider", provBin, args...)
	f.waitFile(filepath.Join(f.stateDir, "ca.crt"))
	for i := range n {
		args := opts.AgentArgs
		if opts.AgentDebug != nil {
			args = append(slices.Clone(args), "--debug-listen", opts.AgentDebug(i))
		}
		f.startAgent(fmt.Sprintf("dev-%d", i), args...)
	}
	f.waitNode(func(node *corev1.Node) bool { return nodeReady(node) && readyDevices(node) == n })
	return f
}

func freeAddr(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func (f *fabric) start(name, bin string, args ...string) *proc {
	f.tb.Helper()
	logPath := filepath.Join(f.logDir, name+".log")
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		f.tb.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.tb.Fatal(err)
	}
	p := &proc{name: name, log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		_ = lf.Close()
		close(p.done)
	}()
	return p
}

// startAgent starts an agent with its own data directory.
func (f *fabric) startAgent(id string, extra ...string) *agent {
	f.tb.Helper()
	dir := filepath.Join(f.tb.TempDir(), id)
	args := append([]string{
		"--hub", f.hubAddr,
		"--hub-ca", filepath.Join(f.stateDir, "ca.crt"),
		"--token", f.token,
		"--data-dir", dir,
		"--device-id", id,
		"--advertise-address", "127.0.0.1",
		"--cpu-millis", "2000",
		"--memory-bytes", fmt.Sprint(2 << 30),
	}, extra...)
	a := &agent{proc: f.start("agent-"+id, f.agentBin, args...), id: id, dataDir: dir, args: args}
	f.mu.Lock()
	f.agents = append(f.agents, a)
	f.mu.Unlock()
	return a
}

// restartAgent stops the agent and starts it again with the same flags and
// data directory.
func (f *fabric) restartAgent(a *agent) {
	f.tb.Helper()
	a.stop(f.tb)
	p := f.start("agent-"+a.id, f.agentBin, a.args...)
	f.mu.Lock()
	a.proc = p
	f.mu.Unlock()
}

// pid is the process ID.
func (p *proc) pid() int { return p.cmd.Process.Pid }

// stop sends SIGTERM and waits, killing the process group after 15 s.
func (p *proc) stop(tb testing.TB) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return
	case <-time.After(15 * time.Second):
	}
	// SIGQUIT makes a Go program write its goroutines to its log and exit.
	_ = p.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
	kept := filepath.Join(os.TempDir(), fmt.Sprintf("edgefabric-bench-%s-%d.log", p.name, p.cmd.Process.Pid))
	if b, err := os.ReadFile(p.log); err == nil {
		_ = os.WriteFile(kept, b, 0o644)
	}
	tb.Logf("%s did not stop on SIGTERM within 15s; its goroutines are at the end of %s", p.name, kept)
}

func (f *fabric) stopAll() {
	f.mu.Lock()
	procs := []*proc{}
	for _, a := range f.agents {
		procs = append(procs, a.proc)
	}
	if f.provider != nil {
		procs = append(procs, f.provider)
	}
	f.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Go(func() { p.stop(f.tb) })
	}
	wg.Wait()
}

func (f *fabric) dumpLogs() {
	entries, _ := os.ReadDir(f.logDir)
	for _, e := range entries {
		b, _ := os.ReadFile(filepath.Join(f.logDir, e.Name()))
		lines := strings.Split(string(b), "\n")
		if len(lines) > 40 {
			lines = lines[len(lines)-40:]
		}
		f.tb.Logf("---- last lines of %s ----\n%s", e.Name(), strings.Join(lines, "\n"))
	}
}

// keepLogs copies the processes' logs into dir (EDGEFABRIC_BENCH_LOGS), under
// the benchmark's name.
func (f *fabric) keepLogs(dir string) {
	dst := filepath.Join(dir, strings.ReplaceAll(f.tb.Name(), "/", "_"))
	if err := os.MkdirAll(dst, 0o755); err != nil {
		f.tb.Log(err)
		return
	}
	entries, _ := os.ReadDir(f.logDir)
	for _, e := range entries {
		if b, err := os.ReadFile(filepath.Join(f.logDir, e.Name())); err == nil {
			_ = os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644)
		}
	}
	f.tb.Logf("process logs kept in %s", dst)
}

// waitFile waits for a file the provider writes at start.
func (f *fabric) waitFile(path string) {
	f.tb.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		select {
		case <-f.provider.done:
			f.tb.Fatalf("provider exited before writing %s", path)
		default:
		}
		if time.Now().After(deadline) {
			f.tb.Fatalf("%s did not appear within 60s", path)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitNode watches the account's node until cond holds.
func (f *fabric) waitNode(cond func(*corev1.Node) bool) *corev1.Node {
	f.tb.Helper()
	return waitNodeNamed(f.tb, f.client, nodeName, cond)
}

func waitNodeNamed(tb testing.TB, client kubernetes.Interface, name string, cond func(*corev1.Node) bool) *corev1.Node {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	lw := cache.NewListWatchFromClient(client.CoreV1().RESTClient(), "nodes", "", fields.OneTermEqualSelector("metadata.name", name))
	var last *corev1.Node
	_, err := watchtools.UntilWithSync(ctx, lw, &corev1.Node{}, nil, func(ev watch.Event) (bool, error) {
		n, ok := ev.Object.(*corev1.Node)
		if !ok {
			return false, nil
		}
		last = n
		return ev.Type != watch.Deleted && cond(n), nil
	})
	if err != nil {
		tb.Fatalf("waiting for node %s: %v; last seen: %+v", name, err, last)
	}
	return last
}

// pushHello builds examples/hello for wasip1 and pushes it as an OCI image.
func (f *fabric) pushHello() string {
	f.tb.Helper()
	mod := ocitest.BuildGo(f.tb, "examples/hello")
	ref := f.registry + "/hello:v1"
	ocitest.Push(f.tb, ref, mod, ocitest.Image)
	return ref
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// readyDevices reads "N/M devices ready" from the Ready condition.
func readyDevices(n *corev1.Node) int {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
			var k, m int
			if _, err := fmt.Sscanf(c.Message, "%d/%d", &k, &m); err == nil {
				return k
			}
		}
	}
	return 0
}

func podReady(p *corev1.Pod) bool {
	if p.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
