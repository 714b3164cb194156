package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"

	"github.com/edgefabric/edgefabric/test/kubetest"
	"github.com/edgefabric/edgefabric/test/ocitest"
)

const (
	account   = "e2e"
	nodeName  = "edge-" + account
	namespace = "default"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// binaries builds the provider and edgeagent once per test binary.
func binaries(t *testing.T) (provider, agent string) {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "edgefabric-e2e-bin")
		if buildErr != nil {
			return
		}
		root := ocitest.RepoRoot(t)
		cmd := exec.Command("go", "build", "-o", binDir+"/", "./cmd/provider", "./cmd/edgeagent")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(binDir, "provider"), filepath.Join(binDir, "edgeagent")
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// Fabric is a real control plane, a registry, the provider and agents, all on
// this machine as separate processes.
type Fabric struct {
	t           *testing.T
	Env         *kubetest.Env
	Client      kubernetes.Interface
	Registry    string
	Token       string
	HubAddr     string
	kubeletPort string
	stateDir    string
	logDir      string
	provBin     string
	agentBin    string

	mu       sync.Mutex
	provider *Proc
	agents   map[string]*Agent
}

// Proc is a child process with its output in a log file.
type Proc struct {
	Name string
	Log  string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Agent is an edgeagent process and its data directory.
type Agent struct {
	*Proc
	ID      string
	DataDir string
	args    []string
}

func freePort(t *testing.T) string {
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
func StartFabric(t *testing.T, n int) *Fabric {
	t.Helper()
	prov, agent := binaries(t)
	env := kubetest.Start(t, kubetest.Options{})
	tok := make([]byte, 16)
	_, _ = rand.Read(tok)
	f := &Fabric{
		t: t, Env: env, Client: env.Client, Registry: ocitest.Serve(t),
		Token: hex.EncodeToString(tok), HubAddr: freePort(t),
		stateDir: t.TempDir(), logDir: t.TempDir(), provBin: prov, agentBin: agent,
		agents: map[string]*Agent{},
	}
	_, kp, _ := net.SplitHostPort(freePort(t))
	f.kubeletPort = kp
	ctx := t.Context()
	if _, err := env.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "edgefabric-system"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Client.CoreV1().Secrets("edgefabric-system").Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "bootstrap-token-" + account},
		Type:       "edgefabric.io/bootstrap-token",
		StringData: map[string]string{"token": f.Token, "account": account},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.stopAll)
	t.Cleanup(func() {
		if t.Failed() {
			f.dumpLogs()
		}
	})
	f.StartProvider()
	for i := range n {
		f.StartAgent(fmt.Sprintf("dev-%d", i))
	}
	f.WaitNode(func(n *corev1.Node) bool { return nodeReady(n) && readyDevices(n) == len(f.agents) })
	return f
}

func (f *Fabric) start(name string, bin string, args ...string) *Proc {
	f.t.Helper()
	logPath := filepath.Join(f.logDir, name+".log")
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		f.t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.t.Fatal(err)
	}
	p := &Proc{Name: name, Log: logPath, cmd: cmd, done: make(chan struct{})}
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
	p := f.start("provider", f.provBin,
		"--kubeconfig", f.Env.Kubeconfig,
		"--state-dir", f.stateDir,
		"--hub-listen", f.HubAddr,
		"--kubelet-listen", "127.0.0.1:"+f.kubeletPort,
		"--node-ip", "127.0.0.1",
		"--log-level", "debug",
	)
	f.mu.Lock()
	f.provider = p
	f.mu.Unlock()
	f.waitFile(filepath.Join(f.stateDir, "ca.crt"))
}

// StopProvider stops the provider with SIGTERM and waits for it.
func (f *Fabric) StopProvider() {
	f.t.Helper()
	f.mu.Lock()
	p := f.provider
	f.mu.Unlock()
	p.Stop(f.t, syscall.SIGTERM)
}

// AgentArgs are the flags every test agent gets.
func (f *Fabric) AgentArgs(id, dataDir string) []string {
	return []string{
		"--hub", f.HubAddr,
		"--hub-ca", filepath.Join(f.stateDir, "ca.crt"),
		"--token", f.Token,
		"--data-dir", dataDir,
		"--device-id", id,
		"--advertise-address", "127.0.0.1",
		"--restart-backoff", "1s",
		"--heartbeat-interval", "1s",
		"--cpu-millis", "2000",
		"--memory-bytes", fmt.Sprint(2 << 30),
		"--log-level", "debug",
	}
}

// StartAgent starts a new agent with its own data directory.
func (f *Fabric) StartAgent(id string, extra ...string) *Agent {
	f.t.Helper()
	dir := filepath.Join(f.t.TempDir(), id)
	a := &Agent{ID: id, DataDir: dir, args: append(f.AgentArgs(id, dir), extra...)}
	a.Proc = f.start("agent-"+id, f.agentBin, a.args...)
	f.mu.Lock()
	f.agents[id] = a
	f.mu.Unlock()
	return a
}

// RestartAgent starts a stopped agent again on the same data directory.
func (f *Fabric) RestartAgent(a *Agent) {
	f.t.Helper()
	a.Proc = f.start("agent-"+a.ID, f.agentBin, a.args...)
}

// Agent returns the agent with that device ID.
func (f *Fabric) Agent(id string) *Agent {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.agents[id]
}

// Stop signals the process and waits for it to exit (SIGKILL after 15 s).
func (p *Proc) Stop(t *testing.T, sig syscall.Signal) {
	t.Helper()
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		t.Errorf("%s did not stop on %v within 15s", p.Name, sig)
	}
}

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Output is everything the process logged so far.
func (p *Proc) Output() string {
	b, _ := os.ReadFile(p.Log)
	return string(b)
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
	for _, p := range procs {
		p.Stop(f.t, syscall.SIGTERM)
	}
}

func (f *Fabric) dumpLogs() {
	entries, _ := os.ReadDir(f.logDir)
	for _, e := range entries {
		b, _ := os.ReadFile(filepath.Join(f.logDir, e.Name()))
		lines := strings.Split(string(b), "\n")
		if len(lines) > 60 {
			lines = lines[len(lines)-60:]
		}
		f.t.Logf("---- last lines of %s ----\n%s", e.Name(), strings.Join(lines, "\n"))
	}
}

// waitFile waits for a file the provider writes at start.
func (f *Fabric) waitFile(path string) {
	f.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("%s did not appear within 60s", path)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// until watches obj kind through lw until cond holds or timeout.
func until[T runtime.Object](t *testing.T, timeout time.Duration, lw cache.ListerWatcher, obj T, cond func(T) bool) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	var last T
	_, err := watchtools.UntilWithSync(ctx, lw, obj, nil, func(ev watch.Event) (bool, error) {
		o, ok := ev.Object.(T)
		if !ok {
			return false, nil
		}
		last = o
		return ev.Type != watch.Deleted && cond(o), nil
	})
	if err != nil {
		t.Fatalf("waiting for %T: %v; last seen: %+v", obj, err, last)
	}
	return last
}

// WaitNode waits until the account's node satisfies cond.
func (f *Fabric) WaitNode(cond func(*corev1.Node) bool) *corev1.Node {
	f.t.Helper()
	lw := cache.NewListWatchFromClient(f.Client.CoreV1().RESTClient(), "nodes", "", fields.OneTermEqualSelector("metadata.name", nodeName))
	return until(f.t, 90*time.Second, lw, &corev1.Node{}, cond)
}

// WaitPod waits until the pod satisfies cond.
func (f *Fabric) WaitPod(name string, timeout time.Duration, cond func(*corev1.Pod) bool) *corev1.Pod {
	f.t.Helper()
	lw := cache.NewListWatchFromClient(f.Client.CoreV1().RESTClient(), "pods", namespace, fields.OneTermEqualSelector("metadata.name", name))
	return until(f.t, timeout, lw, &corev1.Pod{}, cond)
}

// WaitPodGone waits until the pod no longer exists.
func (f *Fabric) WaitPodGone(name string, timeout time.Duration) {
	f.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		_, err := f.Client.CoreV1().Pods(namespace).Get(f.t.Context(), name, metav1.GetOptions{})
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
		return out.String(), fmt.Errorf("kubectl %s: %v: %s", strings.Join(args, " "), err, errb.String())
	}
	return out.String(), nil
}

// PushExample builds examples/<name> for wasip1 and pushes it; it returns the
// image reference and the image ID the pod will report.
func (f *Fabric) PushExample(name, tag string, p ocitest.Packaging) (string, string) {
	f.t.Helper()
	mod := ocitest.BuildGo(f.t, filepath.Join(ocitest.RepoRoot(f.t), "examples", name))
	ref := f.Registry + "/" + name + ":" + tag
	return ref, ocitest.Push(f.t, ref, mod, p)
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

// pod is a minimal pod for the edge node.
func pod(name, image string, mutate ...func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec: corev1.PodSpec{
			NodeName:                      nodeName,
			TerminationGracePeriodSeconds: new(int64(2)),
			Tolerations:                   []corev1.Toleration{{Key: "virtual-kubelet.io/provider", Operator: corev1.TolerationOpEqual, Value: "edgefabric", Effect: corev1.TaintEffectNoSchedule}},
			Containers:                    []corev1.Container{{Name: "app", Image: image}},
		},
	}
	for _, m := range mutate {
		m(p)
	}
	return p
}

func (f *Fabric) Create(p *corev1.Pod) *corev1.Pod {
	f.t.Helper()
	out, err := f.Client.CoreV1().Pods(p.Namespace).Create(f.t.Context(), p, metav1.CreateOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	return out
}

func running(p *corev1.Pod) bool {
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

func lines(s string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}
