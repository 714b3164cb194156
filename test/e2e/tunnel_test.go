package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"

	statsv1alpha1 "k8s.io/kubelet/pkg/apis/stats/v1alpha1"

	"github.com/edgefabric/edgefabric/test/fabrictest"
	"github.com/edgefabric/edgefabric/test/ocitest"
)

// TestTunnel drives exec, attach and port-forward through the tunnel with the
// real kubectl, against examples/httpserver serving its containerPort from a
// preopened socket on the device.
func TestTunnel(t *testing.T) {
	// The API server's node proxy (stats) refuses loopback addresses: the
	// kubelet API listens on one of the machine's other addresses if it has one.
	var opts []fabrictest.FabricOption
	hostIP := nonLoopbackIP()
	if hostIP != "" {
		l, err := net.Listen("tcp", net.JoinHostPort(hostIP, "0"))
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		opts = append(opts, fabrictest.WithProviderArgs("--kubelet-listen", addr, "--node-ip", hostIP))
	}
	f := startFabric(t, 1, opts...)
	ref, _ := f.PushExample("httpserver", "v1", ocitest.Image)
	port := fabrictest.ServicePort(t)
	f.Create(f.Pod("web", ref, func(p *corev1.Pod) {
		c := &p.Spec.Containers[0]
		c.Ports = []corev1.ContainerPort{{ContainerPort: int32(port)}}
		c.Env = []corev1.EnvVar{{Name: "GREETING", Value: "hi there"}}
		// A volume is preopened before the listening socket, as the
		// ServiceAccount token volume is in a real cluster: the server must
		// find its socket after it.
		p.Spec.Volumes = []corev1.Volume{{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
		c.VolumeMounts = []corev1.VolumeMount{{Name: "scratch", MountPath: "/scratch"}}
	}))
	f.WaitPod("web", 90*time.Second, running)
	t.Run("exec", func(t *testing.T) { testExec(t, f.For(t)) })
	t.Run("exec -it", func(t *testing.T) { testExecTTY(t, f.For(t)) })
	t.Run("exec another module", func(t *testing.T) { testExecOtherModule(t, f.For(t)) })
	t.Run("port-forward", func(t *testing.T) { testPortForward(t, f.For(t), port) })
	t.Run("attach", func(t *testing.T) { testAttach(t, f.For(t), ref) })
	t.Run("stats", func(t *testing.T) {
		if hostIP == "" {
			t.Skip("the machine has no address but loopback, which the API server does not proxy to")
		}
		testStats(t, f.For(t))
	})
	f.CheckAlive()
}

func running(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodRunning && app(p).State.Running != nil
}

// kubectl runs kubectl with stdin and returns stdout, stderr and the exit code.
func kubectl(f *fabrictest.Fabric, stdin io.Reader, args ...string) (string, string, int) {
	ctx, cancel := context.WithTimeout(f.T().Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, f.Env.KubectlPath, append([]string{"--kubeconfig", f.Env.Kubeconfig}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return out.String(), errb.String(), ee.ExitCode()
	case err != nil:
		f.T().Fatalf("kubectl %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errb.String(), 0
}

func testExec(t *testing.T, f *fabrictest.Fabric) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	sum := sha256.Sum256(big)
	tests := []struct {
		name       string
		stdin      []byte
		args       []string
		wantOut    string
		wantErr    string
		wantCode   int
		wantStdout bool // wantOut is compared exactly, not as a substring
	}{
		{name: "entrypoint by path", args: []string{"exec", "web", "--", "/app/module.wasm", "echo", "hello", "world"}, wantOut: "hello world\n", wantStdout: true},
		{name: "entrypoint by name", args: []string{"exec", "web", "-c", "app", "--", "module.wasm", "echo", "x"}, wantOut: "x\n", wantStdout: true},
		{name: "pod env", args: []string{"exec", "web", "--", "module.wasm", "env", "GREETING", "HOSTNAME"}, wantOut: "GREETING=hi there\nHOSTNAME=web\n", wantStdout: true},
		{name: "exit code", args: []string{"exec", "web", "--", "module.wasm", "exit", "3"}, wantCode: 3, wantErr: "exiting with 3"},
		{name: "stdin", stdin: big, args: []string{"exec", "-i", "web", "--", "module.wasm", "sha256"},
			wantOut: fmt.Sprintf("%s %d\n", hex.EncodeToString(sum[:]), len(big)), wantStdout: true},
		{name: "stdin lines", stdin: []byte("one\ntwo\n"), args: []string{"exec", "-i", "web", "--", "module.wasm", "cat"}, wantOut: "one\ntwo\n", wantStdout: true},
		{name: "unknown command", args: []string{"exec", "web", "--", "sh", "-c", "exit 3"}, wantCode: 127, wantErr: `"sh": executable file not found`},
		{name: "unknown container", args: []string{"exec", "web", "-c", "nope", "--", "module.wasm"}, wantCode: 1, wantErr: "nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdin io.Reader
			if tt.stdin != nil {
				stdin = bytes.NewReader(tt.stdin)
			}
			out, errOut, code := kubectl(f.For(t), stdin, tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit code: got %d, want %d (stdout %q, stderr %q)", code, tt.wantCode, fabrictest.Tail(out, 5), errOut)
			}
			if tt.wantStdout && out != tt.wantOut {
				t.Errorf("stdout: got %q, want %q", fabrictest.Tail(out, 5), tt.wantOut)
			}
			if tt.wantErr != "" && !strings.Contains(errOut, tt.wantErr) {
				t.Errorf("stderr: got %q, want it to contain %q", errOut, tt.wantErr)
			}
		})
	}
}

// chacha returns the sha256 of httpserver's /bytes?n=n&seed=seed.
func chacha(n int64, seed uint64) string {
	h := sha256.New()
	rng := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), byte(seed >> 24)})
	_, _ = io.CopyN(h, rng, n)
	return hex.EncodeToString(h.Sum(nil))
}

func get(t *testing.T, url string) (string, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	h := sha256.New()
	var head bytes.Buffer
	if _, err := io.Copy(io.MultiWriter(h, &limitWriter{&head, 256}), resp.Body); err != nil {
		t.Fatalf("GET %s: body: %v", url, err)
	}
	return hex.EncodeToString(h.Sum(nil)), head.Bytes()
}

type limitWriter struct {
	b *bytes.Buffer
	n int
}

func (w *limitWriter) Write(p []byte) (int, error) {
	if k := min(len(p), w.n-w.b.Len()); k > 0 {
		w.b.Write(p[:k])
	}
	return len(p), nil
}

func testPortForward(t *testing.T, f *fabrictest.Fabric, port int) {
	addr := f.PortForward("web", port)
	base := "http://" + addr
	if _, body := get(t, base+"/"); string(body) != "hello from web\n" {
		t.Fatalf("GET /: got %q", body)
	}

	t.Run("parallel", func(t *testing.T) {
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				n := int64(1<<20 + i*4099)
				got, _ := get(t, fmt.Sprintf("%s/bytes?n=%d&seed=%d", base, n, i))
				if want := chacha(n, uint64(i)); got != want {
					t.Errorf("connection %d: sha256 %s, want %s", i, got, want)
				}
			}()
		}
		wg.Wait()
	})

	t.Run("64MiB down", func(t *testing.T) {
		const n = 64 << 20
		t0 := time.Now()
		got, _ := get(t, fmt.Sprintf("%s/bytes?n=%d&seed=99", base, n))
		if want := chacha(n, 99); got != want {
			t.Fatalf("sha256 %s, want %s", got, want)
		}
		t.Logf("64 MiB through port-forward in %s", time.Since(t0).Round(time.Millisecond))
	})

	t.Run("16MiB up", func(t *testing.T) {
		body := make([]byte, 16<<20)
		rng := rand.NewChaCha8([32]byte{7})
		_, _ = rng.Read(body)
		sum := sha256.Sum256(body)
		resp, err := http.Post(base+"/sha256", "application/octet-stream", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		got, _ := io.ReadAll(resp.Body)
		if want := fmt.Sprintf("%s %d\n", hex.EncodeToString(sum[:]), len(body)); string(got) != want {
			t.Fatalf("POST /sha256: got %q, want %q", got, want)
		}
	})

	t.Run("nothing listening", func(t *testing.T) {
		_, p, _ := net.SplitHostPort(fabrictest.FreePort(t))
		closed, _ := strconv.Atoi(p)
		addr := f.For(t).PortForward("web", closed)
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		_, _ = c.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
		b, err := io.ReadAll(c)
		if len(b) > 0 || (err != nil && isTimeout(err)) {
			t.Errorf("connection to a closed port: got %q, %v; want it closed without data", b, err)
		}
		// The forward of the good port still works.
		if _, body := get(t, base+"/"); string(body) != "hello from web\n" {
			t.Errorf("GET / after: got %q", body)
		}
	})
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func testAttach(t *testing.T, f *fabrictest.Fabric, ref string) {
	f.Create(f.Pod("attach", ref, func(p *corev1.Pod) {
		c := &p.Spec.Containers[0]
		c.Args = []string{"cat"}
		c.Stdin = true
	}))
	f.WaitPod("attach", 90*time.Second, running)

	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, f.Env.KubectlPath, "--kubeconfig", f.Env.Kubeconfig, "attach", "-i", "attach")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel()
		_ = cmd.Wait()
	}()
	lines := make(chan string, 16)
	go func() {
		s := bufio.NewScanner(stdout)
		for s.Scan() {
			lines <- s.Text()
		}
		close(lines)
	}()
	// The attach may start after the first line was written: write until
	// one comes back through it.
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("kubectl attach ended: %s", errb.String())
			}
			if strings.HasPrefix(l, "ping ") {
				// Output also reaches the logs.
				out, err := f.Kubectl("logs", "attach")
				if err != nil || !strings.Contains(out, l) {
					t.Errorf("logs: got %q, %v; want %q in them", out, err, l)
				}
				return
			}
		case <-tick.C:
			fmt.Fprintf(stdin, "ping %d\n", i)
		case <-ctx.Done():
			t.Fatalf("no line came back through kubectl attach: %s", errb.String())
		}
	}
}

// testStats reads /stats/summary and /metrics/resource of the node through
// the API server's node proxy, as metrics-server and kubectl top would.
func testStats(t *testing.T, f *fabrictest.Fabric) {
	var web *statsv1alpha1.PodStats
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, err := f.Kubectl("get", "--raw", "/api/v1/nodes/"+f.NodeName+"/proxy/stats/summary")
		if err != nil {
			t.Fatal(err)
		}
		var s statsv1alpha1.Summary
		if err := json.Unmarshal([]byte(out), &s); err != nil {
			t.Fatalf("stats summary %q: %v", out, err)
		}
		if s.Node.NodeName != f.NodeName {
			t.Errorf("node name: got %q, want %q", s.Node.NodeName, f.NodeName)
		}
		for i := range s.Pods {
			if p := &s.Pods[i]; p.PodRef.Name == "web" && len(p.Containers) == 1 && p.Containers[0].CPU != nil && p.Containers[0].CPU.UsageNanoCores != nil {
				web = p
			}
		}
		if web != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no stats with a CPU rate for pod web in %s", out)
		}
		time.Sleep(time.Second)
	}
	c := web.Containers[0]
	if c.Name != "app" || c.Memory == nil || c.Memory.WorkingSetBytes == nil || *c.Memory.WorkingSetBytes < 1<<20 {
		t.Errorf("container stats: got %+v, want app with at least 1 MiB of memory", c)
	}
	if *c.CPU.UsageCoreNanoSeconds == 0 || *c.CPU.UsageCoreNanoSeconds > uint64(time.Hour) {
		t.Errorf("cpu usage: got %d ns, want a plausible non-zero figure", *c.CPU.UsageCoreNanoSeconds)
	}
	if web.Memory == nil || *web.Memory.WorkingSetBytes != *c.Memory.WorkingSetBytes {
		t.Errorf("pod memory: got %+v, want the container's", web.Memory)
	}

	out, err := f.Kubectl("get", "--raw", "/api/v1/nodes/"+f.NodeName+"/proxy/metrics/resource")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`container_memory_working_set_bytes{container="app",namespace="default",pod="web"}`,
		`container_cpu_usage_seconds_total{container="app",namespace="default",pod="web"}`,
		`pod_memory_working_set_bytes{namespace="default",pod="web"}`,
		`node_cpu_usage_seconds_total`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("/metrics/resource has no %s:\n%s", want, out)
		}
	}
}

// nonLoopbackIP is an IPv4 address of this machine other than loopback, or "".
func nonLoopbackIP() string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return ""
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
			return n.IP.String()
		}
	}
	return ""
}

// testExecTTY runs kubectl exec -it on a real terminal (a pty from script(1)).
func testExecTTY(t *testing.T, f *fabrictest.Fabric) {
	script, err := exec.LookPath("script")
	if err != nil {
		t.Skip("script(1) is not installed (Debian: bsdutils)")
	}
	kc := f.Env.KubectlPath + " --kubeconfig " + f.Env.Kubeconfig
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	// The exit code comes back through the terminal session.
	cmd := exec.CommandContext(ctx, script, "-qec", kc+" exec -it web -- module.wasm exit 4", "/dev/null")
	cmd.Stdin = strings.NewReader("")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 4 {
		t.Errorf("exec -it ... exit 4: got %v, output %q; want exit code 4", err, out)
	}
	if !strings.Contains(string(out), "exiting with 4") {
		t.Errorf("exec -it: stderr should reach the terminal: got %q", out)
	}

	// Input typed on the terminal reaches the command, and its output comes back.
	cmd = exec.CommandContext(ctx, script, "-qfec", kc+" exec -it web -- module.wasm cat", "/dev/null")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var buf syncBuffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = cmd.Wait() }()
	for !strings.Contains(buf.String(), "typed on a tty") {
		select {
		case <-ctx.Done():
			t.Fatalf("no echo through exec -it: %q", buf.String())
		case <-time.After(300 * time.Millisecond):
			_, _ = io.WriteString(stdin, "typed on a tty\n")
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testExecOtherModule runs, by path, another module of the container's image.
func testExecOtherModule(t *testing.T, f *fabrictest.Fabric) {
	img, err := ocitest.BuildImage(&v1.ConfigFile{
		OS: "wasip1", Architecture: "wasm",
		Config: v1.Config{Entrypoint: []string{"/app/module.wasm"}, WorkingDir: "/app"},
	},
		[]ocitest.File{{Path: "/app/module.wasm", Data: ocitest.BuildGo(t, "examples/httpserver"), Mode: 0o755}},
		[]ocitest.File{
			{Path: "/bin/hello.wasm", Data: ocitest.BuildGo(t, "examples/hello"), Mode: 0o755},
			{Path: "/app/notes.txt", Data: []byte("not a module\n")},
		},
	)
	if err != nil {
		t.Fatal(err)
	}
	ref := f.Registry + "/two-modules:v1"
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img, remote.WithContext(t.Context())); err != nil {
		t.Fatal(err)
	}
	// hello (run by exec with the pod's env) prints one line and exits.
	f.Create(f.Pod("two", ref, func(p *corev1.Pod) {
		p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "COUNT", Value: "1"}, {Name: "INTERVAL", Value: "1ms"}}
		p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: int32(fabrictest.ServicePort(t))}}
	}))
	f.WaitPod("two", 90*time.Second, running)
	tests := []struct {
		name     string
		args     []string
		wantOut  string
		wantErr  string
		wantCode int
	}{
		{name: "absolute path", args: []string{"/bin/hello.wasm", "a", "b"}, wantOut: "hello from two\nargs: [\"a\" \"b\"]\n"},
		{name: "own module", args: []string{"/app/module.wasm", "echo", "own"}, wantOut: "own\n"},
		{name: "missing", args: []string{"/bin/nope.wasm"}, wantCode: 127, wantErr: "no such file"},
		{name: "relative to the working directory", args: []string{"./notes.txt"}, wantCode: 126, wantErr: "not a WebAssembly module"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"exec", "two", "--"}, tt.args...)
			out, errOut, code := kubectl(f.For(t), nil, args...)
			if code != tt.wantCode {
				t.Errorf("exit code: got %d, want %d (stdout %q, stderr %q)", code, tt.wantCode, fabrictest.Tail(out, 5), errOut)
			}
			if tt.wantOut != "" && !strings.HasPrefix(out, tt.wantOut) {
				t.Errorf("stdout: got %q, want it to start with %q", fabrictest.Tail(out, 5), tt.wantOut)
			}
			if tt.wantErr != "" && !strings.Contains(errOut, tt.wantErr) {
				t.Errorf("stderr: got %q, want it to contain %q", errOut, tt.wantErr)
			}
		})
	}
}
