// Package fabrictest runs a whole edgefabric on this machine for tests and
// benchmarks: a real control plane (test/kubetest), a registry from
// go-containerregistry (test/ocitest), and the provider and agents built from
// the tree as separate processes, as `make build` builds them.
//
// StartFabric brings it up and stops it when the test ends; a test drives it
// through the Fabric's client and kubectl and reads the processes' logs. Call
// Main from the test binary's TestMain so the built binaries are removed.
package fabrictest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	mathrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/edgefabric/edgefabric/pkg/agent/logs"
	efv1 "github.com/edgefabric/edgefabric/pkg/apis/edgefabric/v1alpha1"
	"github.com/edgefabric/edgefabric/test/kubetest"
	"github.com/edgefabric/edgefabric/test/ocitest"
)

// Namespace is where the Fabric's pods, events and logs are looked up.
const Namespace = "default"

// DefaultAccount is the account of a fabric started without WithAccount.
const DefaultAccount = "fabric"

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// binaries builds the provider and edgeagent once per test binary, as
// `make build` does (static, stripped), so that what is tested is what ships.
func binaries(t testing.TB) (provider, agent string) {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "edgefabric-test-bin")
		if buildErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", binDir+"/", "./cmd/provider", "./cmd/edgeagent")
		cmd.Dir = ocitest.RepoRoot(t)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(binDir, "provider"), filepath.Join(binDir, "edgeagent")
}

// Main runs the tests of a package that starts fabrics and removes the
// binaries they built. Call it from TestMain.
func Main(m *testing.M) {
	// envtest logs through controller-runtime's logger; without one it
	// complains with a stack trace.
	ctrllog.SetLogger(logr.Discard())
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// Fabric is a real control plane, a registry, the provider and agents, all on
// this machine as separate processes. A Fabric reports failures to the test it
// was made for; For gives a view of the same fabric for a subtest.
type Fabric struct {
	t testing.TB
	*fabric
}

// fabric is what every view of a Fabric shares.
type fabric struct {
	Env         *kubetest.Env
	Client      kubernetes.Interface
	kubeOpts    kubetest.Options
	Account     string // the account of the bootstrap token Token
	NodeName    string // the account's virtual node
	Registry    string
	Token       string
	HubAddr     string // where the provider's hub listens
	AgentHub    string // what agents dial: HubAddr, or the proxy in front of it
	Proxy       *Proxy // nil unless WithHubProxy
	agentFlags  []string
	provArgs    []string
	agentDebug  func(i int) string
	shipped     bool   // no test timings or debug logs: see WithShippedDefaults
	KubeletPort string // the port of the provider's kubelet API on 127.0.0.1
	StateDir    string // the provider's --state-dir (ca.crt, ca.key)
	logDir      string
	dataDir     string // agents' data directories live below it
	provBin     string
	agentBin    string

	mu       sync.Mutex
	provider *Proc
	agents   map[string]*Agent

	// provIdentity, if set, gives provKubeconfig; see WithProviderKubeconfig.
	provIdentity   func(testing.TB, *kubetest.Env) string
	provKubeconfig string // the provider's kubeconfig; empty means Env.Kubeconfig
}

// For returns the same fabric reporting to t, for subtests (which may run in
// parallel; the processes still stop when the test that started them ends).
func (f *Fabric) For(t testing.TB) *Fabric { return &Fabric{t: t, fabric: f.fabric} }

// FabricOption changes how StartFabric sets up the fabric.
type FabricOption func(*fabric)

// WithAgentFlags adds flags to those every agent gets.
func WithAgentFlags(flags ...string) FabricOption {
	return func(f *fabric) { f.agentFlags = append(f.agentFlags, flags...) }
}

// WithProviderArgs adds flags to the provider's command line.
func WithProviderArgs(args ...string) FabricOption {
	return func(f *fabric) { f.provArgs = append(f.provArgs, args...) }
}

// WithScheduler runs kube-scheduler and kube-controller-manager beside the
// API server, for pods placed by the scheduler and controllers that
// replace them.
func WithScheduler() FabricOption {
	return func(f *fabric) { f.kubeOpts.Scheduler, f.kubeOpts.ControllerManager = true, true }
}

// WithAccount names the account of the bootstrap token and the agents
// StartFabric starts (DefaultAccount otherwise).
func WithAccount(account string) FabricOption {
	return func(f *fabric) { f.Account, f.NodeName = account, "edge-"+account }
}

// WithAgentDebug gives the i-th agent StartFabric starts --debug-listen addr(i).
func WithAgentDebug(addr func(i int) string) FabricOption {
	return func(f *fabric) { f.agentDebug = addr }
}

// WithShippedDefaults runs the provider and the agents with the defaults they
// ship with, for benchmarks, instead of the test timings (1 s restart back-off
// and heartbeat) and debug logs they get otherwise.
func WithShippedDefaults() FabricOption {
	return func(f *fabric) { f.shipped = true }
}

// WithProviderKubeconfig runs the provider with the kubeconfig that identity
// returns instead of the control plane's admin one. identity is called once
// the control plane runs, the namespace edgefabric-system exists and the
// bootstrap token is there, before the provider starts (the chart tests
// install the chart there and return a token of its ServiceAccount).
func WithProviderKubeconfig(identity func(t testing.TB, env *kubetest.Env) string) FabricOption {
	return func(f *fabric) { f.provIdentity = identity }
}

// WithHubProxy puts a TCP proxy between the agents and the hub, so that a test
// can make the provider unreachable (Proxy.Cut) while it keeps running.
func WithHubProxy() FabricOption {
	return func(f *fabric) { f.Proxy = &Proxy{} }
}

// Proc is a child process with its output in a log file. The processes of
// one name (a restarted agent, say) share the file, each appending to it.
type Proc struct {
	Name   string
	Log    string
	offset int64 // where this process's output starts in Log
	cmd    *exec.Cmd
	done   chan struct{}
	err    error
}

// Agent is an edgeagent process and its data directory.
type Agent struct {
	*Proc
	ID      string
	DataDir string
	Args    []string // the flags it was started with
	// Netns is the agent's network namespace; "" for an agent on the host.
	Netns string
}

// FreePort returns a loopback address with a port that was free a moment ago.
func FreePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// StartFabric brings up the control plane, a registry, the provider and n agents
// and waits until the account's node is Ready with all n devices.
func StartFabric(t testing.TB, n int, opts ...FabricOption) *Fabric {
	t.Helper()
	prov, agent := binaries(t)
	tok := make([]byte, 16)
	_, _ = rand.Read(tok)
	f := &Fabric{t: t, fabric: &fabric{
		Registry: ocitest.Serve(t),
		Token:    hex.EncodeToString(tok), HubAddr: FreePort(t),
		StateDir: t.TempDir(), logDir: t.TempDir(), dataDir: t.TempDir(), provBin: prov, agentBin: agent,
		agents: map[string]*Agent{}, Account: DefaultAccount, NodeName: "edge-" + DefaultAccount,
	}}
	for _, o := range opts {
		o(f.fabric)
	}
	kopts := f.kubeOpts
	kopts.CRDDirectoryPaths = []string{filepath.Join(ocitest.RepoRoot(t), "deploy", "helm", "edgefabric", "crds")}
	env := kubetest.Start(t, kopts)
	f.Env, f.Client = env, env.Client
	f.AgentHub = f.HubAddr
	if f.Proxy != nil {
		f.Proxy.target = f.HubAddr
		f.Proxy.addr = FreePort(t)
		f.AgentHub = f.Proxy.addr
		if err := f.Proxy.Restore(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(f.Proxy.Cut)
	}
	_, kp, _ := net.SplitHostPort(FreePort(t))
	f.KubeletPort = kp
	ctx := t.Context()
	if _, err := env.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "edgefabric-system"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.CreateToken("bootstrap-token-"+f.Account, f.Token, f.Account, "")
	t.Cleanup(f.stopAll)
	t.Cleanup(func() {
		if t.Failed() {
			f.dumpLogs()
		}
	})
	if f.provIdentity != nil {
		f.provKubeconfig = f.provIdentity(t, env)
	}
	f.StartProvider()
	for i := range n {
		var extra []string
		if f.agentDebug != nil {
			extra = []string{"--debug-listen", f.agentDebug(i)}
		}
		f.StartAgent(fmt.Sprintf("dev-%d", i), extra...)
	}
	if n > 0 {
		// With no agents there is no node yet: the caller starts them (on LANs, say).
		f.WaitNode(func(n *corev1.Node) bool { return NodeReady(n) && ReadyDevices(n) == len(f.agents) })
	}
	return f
}

// TokenFile writes token to a new file (mode 0600) and returns its path, for
// an agent's --token-file: the token never shows in ps, and each agent gets
// its own file because the agent removes it once it joined.
func (f *Fabric) TokenFile(token string) string {
	f.t.Helper()
	tf, err := os.CreateTemp(f.logDir, "token-*")
	if err != nil {
		f.t.Fatal(err)
	}
	defer tf.Close()
	if _, err := tf.WriteString(token + "\n"); err != nil {
		f.t.Fatal(err)
	}
	return tf.Name()
}

// CreateToken creates a bootstrap-token Secret for account; expiration, if not
// empty, is its RFC 3339 expiry.
func (f *Fabric) CreateToken(name, token, account, expiration string) {
	f.t.Helper()
	data := map[string]string{"token": token, "account": account}
	if expiration != "" {
		data["expiration"] = expiration
	}
	if _, err := f.Client.CoreV1().Secrets("edgefabric-system").Create(f.t.Context(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Type:       efv1.SecretTypeBootstrapToken,
		StringData: data,
	}, metav1.CreateOptions{}); err != nil {
		f.t.Fatal(err)
	}
}

func (f *Fabric) start(name string, bin string, args ...string) *Proc {
	f.t.Helper()
	logPath := filepath.Join(f.logDir, name+".log")
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		f.t.Fatal(err)
	}
	fi, err := lf.Stat()
	if err != nil {
		f.t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.t.Fatal(err)
	}
	p := &Proc{Name: name, Log: logPath, offset: fi.Size(), cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		lf.Close()
		close(p.done)
	}()
	return p
}

// StartProvider starts (or starts again) the provider process.
func (f *Fabric) StartProvider() {
	f.t.Helper()
	kubeconfig := f.Env.Kubeconfig
	if f.provKubeconfig != "" {
		kubeconfig = f.provKubeconfig
	}
	args := append([]string{
		"--kubeconfig", kubeconfig,
		"--state-dir", f.StateDir,
		"--hub-listen", f.HubAddr,
		"--kubelet-listen", "127.0.0.1:" + f.KubeletPort,
		"--node-ip", "127.0.0.1",
		"--kubelet-client-ca", f.Env.KubeletClientCA,
	}, f.testFlags("--log-level", "debug")...)
	p := f.start("provider", f.provBin, append(args, f.provArgs...)...)
	f.mu.Lock()
	f.provider = p
	f.mu.Unlock()
	f.waitFile(filepath.Join(f.StateDir, "ca.crt"))
}

// StopProvider stops the provider with SIGTERM and waits for it.
func (f *Fabric) StopProvider() {
	f.t.Helper()
	f.mu.Lock()
	p := f.provider
	f.mu.Unlock()
	p.Stop(f.t, syscall.SIGTERM)
}

// testFlags is flags, unless the fabric runs with the shipped defaults.
func (f *fabric) testFlags(flags ...string) []string {
	if f.shipped {
		return nil
	}
	return flags
}

// AgentArgs are the flags every agent of the fabric gets.
func (f *Fabric) AgentArgs(id, dataDir string) []string {
	args := append([]string{
		"--hub", f.AgentHub,
		"--hub-ca", filepath.Join(f.StateDir, "ca.crt"),
		"--token-file", f.TokenFile(f.Token),
		"--data-dir", dataDir,
		"--device-id", id,
		"--advertise-address", "127.0.0.1",
		"--cpu-millis", "2000",
		"--memory-bytes", fmt.Sprint(2 << 30),
	}, f.testFlags("--restart-backoff", "1s", "--heartbeat-interval", "1s", "--log-level", "debug")...)
	return append(args, f.agentFlags...)
}

// StartAgent starts a new agent with its own data directory.
func (f *Fabric) StartAgent(id string, extra ...string) *Agent {
	f.t.Helper()
	dir := filepath.Join(f.dataDir, id)
	return f.StartAgentArgs(id, dir, append(f.AgentArgs(id, dir), extra...)...)
}

// StartAgentArgs starts an agent with exactly args, for agents that are meant
// to differ from the usual ones (another token, no token).
func (f *Fabric) StartAgentArgs(id, dataDir string, args ...string) *Agent {
	f.t.Helper()
	a := &Agent{ID: id, DataDir: dataDir, Args: args}
	a.Proc = f.start("agent-"+id, f.agentBin, a.Args...)
	f.mu.Lock()
	f.agents[id] = a
	f.mu.Unlock()
	return a
}

// RestartAgent starts a stopped agent again on the same data directory, with
// the same flags or, if args are given, with those.
func (f *Fabric) RestartAgent(a *Agent, args ...string) {
	f.t.Helper()
	if len(args) == 0 {
		args = a.Args
	}
	p := f.start("agent-"+a.ID, f.agentBin, args...)
	f.mu.Lock()
	a.Proc = p
	f.mu.Unlock()
}

// AgentBin is the edgeagent binary the fabric's agents run, for tests of its
// other commands (join, status).
func (f *Fabric) AgentBin() string { return f.agentBin }

// Agent returns the agent with that device ID.
func (f *Fabric) Agent(id string) *Agent {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.agents[id]
}

// Forget drops an agent that stopped for good (a refused one) from the fabric.
func (f *Fabric) Forget(a *Agent) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.agents, a.ID)
}

// Provider returns the current provider process.
func (f *Fabric) Provider() *Proc {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.provider
}

// Logs are the files where the agent keeps the logs of a pod's container
// (supervisor.LogFiles).
func (a *Agent) Logs(p *corev1.Pod, container string) logs.Files {
	return logs.Files{Dir: filepath.Join(a.DataDir, "logs"), Prefix: string(p.UID) + "_" + container + "."}
}

// Stop signals the process and waits for it to exit. A process still there
// after 15 s gets SIGQUIT, which makes a Go program write its goroutines to
// its log, then SIGKILL; the test fails.
func (p *Proc) Stop(t testing.TB, sig syscall.Signal) {
	t.Helper()
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
		return
	case <-time.After(15 * time.Second):
	}
	_ = p.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
	t.Errorf("%s did not stop on %v within 15s; last lines of its log:\n%s", p.Name, sig, Tail(p.Output(), 60))
}

// Pid is the process ID.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Running reports whether the process has not exited.
func (p *Proc) Running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// ExitCode is the process's exit status once it has exited, -1 before.
func (p *Proc) ExitCode() int {
	if p.Running() {
		return -1
	}
	return p.cmd.ProcessState.ExitCode()
}

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Output is everything the process logged so far (not what processes of the
// same name logged before it).
func (p *Proc) Output() string {
	b, _ := os.ReadFile(p.Log)
	if int64(len(b)) < p.offset {
		return ""
	}
	return string(b[p.offset:])
}

// CheckAlive fails the test if the provider or an agent of the fabric has
// exited on its own: whatever a test did, nothing may crash.
func (f *Fabric) CheckAlive() {
	f.t.Helper()
	f.mu.Lock()
	procs := []*Proc{f.provider}
	for _, a := range f.agents {
		procs = append(procs, a.Proc)
	}
	f.mu.Unlock()
	for _, p := range procs {
		if !p.Running() {
			f.t.Errorf("%s exited (%v); last lines:\n%s", p.Name, p.err, Tail(p.Output(), 30))
		}
	}
}

func (f *Fabric) stopAll() {
	f.mu.Lock()
	procs := []*Proc{}
	for _, a := range f.agents {
		procs = append(procs, a.Proc)
	}
	if f.provider != nil {
		procs = append(procs, f.provider)
	}
	f.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Go(func() { p.Stop(f.t, syscall.SIGTERM) })
	}
	wg.Wait()
}

// KeepLogs copies the processes' logs into dir, in a directory named after
// the test.
func (f *Fabric) KeepLogs(dir string) {
	dst := filepath.Join(dir, strings.ReplaceAll(f.t.Name(), "/", "_"))
	if err := os.MkdirAll(dst, 0o755); err != nil {
		f.t.Log(err)
		return
	}
	entries, _ := os.ReadDir(f.logDir)
	for _, e := range entries {
		if b, err := os.ReadFile(filepath.Join(f.logDir, e.Name())); err == nil {
			_ = os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644)
		}
	}
	f.t.Logf("process logs kept in %s", dst)
}

func (f *Fabric) dumpLogs() {
	entries, _ := os.ReadDir(f.logDir)
	for _, e := range entries {
		b, _ := os.ReadFile(filepath.Join(f.logDir, e.Name()))
		f.t.Logf("---- last lines of %s ----\n%s", e.Name(), Tail(string(b), 80))
	}
}

// Tail is the last n lines of s.
func Tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitFile waits for a file the provider writes at start.
func (f *Fabric) waitFile(path string) {
	f.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if p := f.Provider(); p != nil && !p.Running() {
			f.t.Fatalf("provider exited before writing %s:\n%s", path, Tail(p.Output(), 40))
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("%s did not appear within 60s", path)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// WaitNode waits until the account's node satisfies cond.
func (f *Fabric) WaitNode(cond func(*corev1.Node) bool) *corev1.Node {
	f.t.Helper()
	lw := cache.NewListWatchFromClient(f.Client.CoreV1().RESTClient(), "nodes", "", fields.OneTermEqualSelector("metadata.name", f.NodeName))
	return kubetest.Until(f.t, 90*time.Second, lw, &corev1.Node{}, cond)
}

// WaitPod waits until the pod satisfies cond.
func (f *Fabric) WaitPod(name string, timeout time.Duration, cond func(*corev1.Pod) bool) *corev1.Pod {
	f.t.Helper()
	lw := cache.NewListWatchFromClient(f.Client.CoreV1().RESTClient(), "pods", Namespace, fields.OneTermEqualSelector("metadata.name", name))
	return kubetest.Until(f.t, timeout, lw, &corev1.Pod{}, cond)
}

// WaitPodGone waits until the pod no longer exists.
func (f *Fabric) WaitPodGone(name string, timeout time.Duration) {
	f.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		_, err := f.Client.CoreV1().Pods(Namespace).Get(f.t.Context(), name, metav1.GetOptions{})
		if err != nil {
			return
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("pod %s still exists after %s", name, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Kubectl runs the real kubectl against the fabric.
func (f *Fabric) Kubectl(args ...string) (string, error) {
	cmd := exec.CommandContext(f.t.Context(), f.Env.KubectlPath, append([]string{"--kubeconfig", f.Env.Kubeconfig}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("kubectl %s: %s: %w", strings.Join(args, " "), errb.String(), err)
	}
	return out.String(), nil
}

// PushExample builds examples/<name> for wasip1 and pushes it as
// <registry>/<name>:<tag>; it returns the image reference and the image ID the
// pod will report.
func (f *Fabric) PushExample(name, tag string, p ocitest.Packaging) (string, string) {
	f.t.Helper()
	return f.PushExampleAs(name, f.Registry+"/"+name+":"+tag, p)
}

// PushExampleAs builds examples/<name> for wasip1 and pushes it as ref.
func (f *Fabric) PushExampleAs(name, ref string, p ocitest.Packaging) (string, string) {
	f.t.Helper()
	mod := ocitest.BuildGo(f.t, filepath.Join(ocitest.RepoRoot(f.t), "examples", name))
	return ref, ocitest.Push(f.t, ref, mod, p)
}

// NodeReady reports whether the node's Ready condition is True.
func NodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// ReadyDevices reads "N/M devices ready" from the node's Ready condition.
func ReadyDevices(n *corev1.Node) int {
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

// Pod is a minimal pod bound to the fabric's node, changed by mutate.
func (f *Fabric) Pod(name, image string, mutate ...func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: Namespace},
		Spec: corev1.PodSpec{
			NodeName:                      f.NodeName,
			TerminationGracePeriodSeconds: new(int64(2)),
			Tolerations:                   []corev1.Toleration{{Key: efv1.TaintKey, Operator: corev1.TolerationOpEqual, Value: efv1.TaintValue, Effect: corev1.TaintEffectNoSchedule}},
			Containers:                    []corev1.Container{{Name: "app", Image: image}},
		},
	}
	for _, m := range mutate {
		m(p)
	}
	return p
}

// Create creates the pod.
func (f *Fabric) Create(p *corev1.Pod) *corev1.Pod {
	f.t.Helper()
	out, err := f.Client.CoreV1().Pods(p.Namespace).Create(f.t.Context(), p, metav1.CreateOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	return out
}

// PodReady reports whether the pod is Running and Ready.
func PodReady(p *corev1.Pod) bool {
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

// Lines splits s into lines.
func Lines(s string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

// Events lists the events about the named pod.
func (f *Fabric) Events(podName string) []corev1.Event {
	f.t.Helper()
	l, err := f.Client.CoreV1().Events(Namespace).List(f.t.Context(), metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("involvedObject.name", podName).String(),
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return l.Items
}

// WaitEvent waits for an event about the named pod with that reason and
// returns it.
func (f *Fabric) WaitEvent(podName, reason string, timeout time.Duration) *corev1.Event {
	f.t.Helper()
	sel := fields.AndSelectors(
		fields.OneTermEqualSelector("involvedObject.name", podName),
		fields.OneTermEqualSelector("reason", reason),
	)
	lw := cache.NewListWatchFromClient(f.Client.CoreV1().RESTClient(), "events", Namespace, sel)
	return kubetest.Until(f.t, timeout, lw, &corev1.Event{}, func(*corev1.Event) bool { return true })
}

// LogsUntil runs `kubectl logs args...` until its output satisfies cond and
// returns that output.
func (f *Fabric) LogsUntil(timeout time.Duration, cond func(string) bool, args ...string) string {
	f.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		out, err := f.Kubectl(append([]string{"logs"}, args...)...)
		if err == nil && cond(out) {
			return out
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("kubectl logs %s: no satisfying output within %s; last: %q, %v", strings.Join(args, " "), timeout, out, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// WaitFileGrows waits until the file at path is larger than size and
// returns its new size. A file that does not exist has size -1.
func (f *Fabric) WaitFileGrows(path string, size int64, timeout time.Duration) int64 {
	f.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if n := FileSize(path); n > size {
			return n
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("%s did not grow beyond %d bytes within %s", path, size, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// WaitLogsRemoved waits until the agent has removed every file of lf, within
// timeout: it does that once the pod is deleted and its containers ended.
func (f *Fabric) WaitLogsRemoved(lf logs.Files, timeout time.Duration) {
	f.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		atts, err := lf.Attempts()
		if err == nil && len(atts) == 0 {
			return
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("log files %s still there (attempts %v, %v) %s later", lf, atts, err, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// WaitFileStops waits until the file at path stops growing (the same size
// two seconds apart), within timeout: what writes it has stopped.
func (f *Fabric) WaitFileStops(path string, timeout time.Duration) {
	f.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		size := FileSize(path)
		time.Sleep(2 * time.Second)
		if FileSize(path) == size {
			return
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("%s still grows %s later: what writes it did not stop", path, timeout)
		}
	}
}

// FileSize is the size of the file at path, -1 if it does not exist.
func FileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return -1
	}
	return fi.Size()
}

// DeviceOf returns the agent the pod was placed on.
func (f *Fabric) DeviceOf(p *corev1.Pod) *Agent {
	f.t.Helper()
	dev := p.Annotations[efv1.AnnotationDevice]
	a := f.Agent(dev)
	if a == nil {
		f.t.Fatalf("pod %s is annotated with device %q, which is not an agent of the fabric", p.Name, dev)
	}
	return a
}

// Container returns the status of the pod's container named name, or nil.
func Container(p *corev1.Pod, name string) *corev1.ContainerStatus {
	for i := range p.Status.ContainerStatuses {
		if p.Status.ContainerStatuses[i].Name == name {
			return &p.Status.ContainerStatuses[i]
		}
	}
	return nil
}

// Condition returns the pod's condition of type t, or nil.
func Condition(p *corev1.Pod, t corev1.PodConditionType) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == t {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

// Env sets the first container's environment from name, value pairs.
func Env(kv ...string) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		for i := 0; i+1 < len(kv); i += 2 {
			p.Spec.Containers[0].Env = append(p.Spec.Containers[0].Env, corev1.EnvVar{Name: kv[i], Value: kv[i+1]})
		}
	}
}

// RestartPolicy sets the pod's restart policy.
func RestartPolicy(r corev1.RestartPolicy) func(*corev1.Pod) {
	return func(p *corev1.Pod) { p.Spec.RestartPolicy = r }
}

// LogLine returns the first line of a process's log with message msg that
// holds every one of kvs ("key=value"), or "".
func LogLine(out, msg string, kvs ...string) string {
	for _, l := range Lines(out) {
		if !strings.Contains(l, `msg="`+msg+`"`) {
			continue
		}
		ok := true
		for _, kv := range kvs {
			ok = ok && strings.Contains(l, " "+kv)
		}
		if ok {
			return l
		}
	}
	return ""
}

// WaitLog waits until the process has logged msg n times in all.
func (f *Fabric) WaitLog(p *Proc, msg string, n int, timeout time.Duration) {
	f.t.Helper()
	deadline := time.Now().Add(timeout)
	for strings.Count(p.Output(), `msg="`+msg+`"`) < n {
		if time.Now().After(deadline) {
			f.t.Fatalf("%s did not log %q %d times within %s:\n%s", p.Name, msg, n, timeout, Tail(p.Output(), 20))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// WaitEdgeDevice waits until kubectl shows the EdgeDevice name in phase, or,
// with phase "", until it no longer exists.
func (f *Fabric) WaitEdgeDevice(name, phase string, timeout time.Duration) {
	f.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		out, err := f.Kubectl("get", "edgedevice", name, "-o", "jsonpath={.status.phase}")
		switch {
		case phase == "" && err != nil && strings.Contains(out+err.Error(), "NotFound"):
			return
		case phase != "" && err == nil && strings.TrimSpace(out) == phase:
			return
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("EdgeDevice %s: want phase %q (\"\": gone) within %s; got %q, %v", name, phase, timeout, out, err)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// T is the test the fabric reports to.
func (f *Fabric) T() testing.TB { return f.t }

// PortForward starts `kubectl port-forward` to the pod's port, for as long
// as the test runs, and returns the local address it forwards from.
func (f *Fabric) PortForward(pod string, port int) string {
	t := f.T()
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	cmd := exec.CommandContext(ctx, f.Env.KubectlPath, "--kubeconfig", f.Env.Kubeconfig, "port-forward", "--address", "127.0.0.1", "pod/"+pod, fmt.Sprintf(":%d", port))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
	})
	re := regexp.MustCompile(`Forwarding from (127\.0\.0\.1:\d+) ->`)
	found := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(stdout)
		for s.Scan() {
			if m := re.FindStringSubmatch(s.Text()); m != nil {
				found <- m[1]
			}
		}
	}()
	select {
	case addr := <-found:
		return addr
	case <-time.After(60 * time.Second):
		t.Fatalf("kubectl port-forward did not start: %s", errb.String())
		return ""
	}
}

// ServicePort is a free TCP port for a workload to serve on, below the
// ephemeral range, so that no outgoing connection on this busy machine takes
// it between now and the pod's start.
func ServicePort(tb testing.TB) int {
	tb.Helper()
	for range 100 {
		p := 20000 + mathrand.IntN(12000)
		l, err := net.Listen("tcp", fmt.Sprintf(":%d", p))
		if err == nil {
			l.Close()
			return p
		}
	}
	tb.Fatal("no free port in 20000-31999")
	return 0
}
