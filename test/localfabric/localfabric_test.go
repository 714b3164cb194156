// Package localfabric_test runs `localfabric up` and `down` (what `make up`
// and `make down` run) with two LANs in network namespaces, as root, and
// checks what the README promises: the env file, a network node per LAN and
// the account node, and nothing left behind by down. It uses the LAN names
// of the local fabric (bridges efbr<i>, namespaces ef-agent-<j>), so it
// cannot run beside a `make up` or `make demo` of the same machine.
package localfabric_test

import (
	"bufio"
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	efv1 "github.com/edgefabric/edgefabric/pkg/apis/edgefabric/v1alpha1"
	"github.com/edgefabric/edgefabric/test/fabrictest"
	"github.com/edgefabric/edgefabric/test/ocitest"
)

func TestUpDownTwoLANs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("LANs in network namespaces need root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("no iproute2 ip")
	}
	if out, _ := exec.Command("ip", "netns", "list").Output(); bytes.Contains(out, []byte("ef-agent-")) {
		t.Skip("a local fabric runs on this machine (make up / make demo)")
	}
	dir, run := startFabric(t, "-lans=2", "-agents=2")
	downed := false
	t.Cleanup(func() {
		if !downed {
			run("down")
		}
	})

	env := readEnv(t, filepath.Join(dir, "env"))
	if got := env["LAN_BRIDGES"]; got != "efbr1 efbr2" {
		t.Errorf("LAN_BRIDGES=%q, want the two bridges in order", got)
	}
	if host, _, err := net.SplitHostPort(env["HUB"]); err != nil || host != "10.77.1.1" {
		t.Errorf("HUB=%q, want the host's address in LAN 1", env["HUB"])
	}
	for _, k := range []string{"KUBECONFIG", "REGISTRY", "TOKEN", "EDGEAGENT"} {
		if env[k] == "" {
			t.Errorf("env file lacks %s", k)
		}
	}

	cfg, err := clientcmd.BuildConfigFromFlags("", env["KUBECONFIG"])
	if err != nil {
		t.Fatal(err)
	}
	client := kubernetes.NewForConfigOrDie(cfg)
	// Two agents per LAN: the account node has all four, each LAN its own
	// network node with two.
	deadline := time.Now().Add(90 * time.Second)
	for {
		nodes, err := client.CoreV1().Nodes().List(t.Context(), metav1.ListOptions{})
		if err == nil && fabricFormed(nodes.Items) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nodes not formed: %v, %v", nodeSummary(nodes), err)
		}
		time.Sleep(500 * time.Millisecond)
	}

	run("down")
	downed = true
	if out, _ := exec.Command("ip", "netns", "list").Output(); bytes.Contains(out, []byte("ef-agent-")) {
		t.Errorf("network namespaces left after down:\n%s", out)
	}
	ifaces, _ := net.Interfaces()
	for _, i := range ifaces {
		if strings.HasPrefix(i.Name, "efbr") || strings.HasPrefix(i.Name, "efv") {
			t.Errorf("interface %s left after down", i.Name)
		}
	}
}

// startFabric builds the binaries and runs `localfabric up` with args into a
// new state directory, which it returns with a runner of further modes
// (down).
func startFabric(t *testing.T, args ...string) (string, func(mode string, args ...string)) {
	t.Helper()
	root := ocitest.RepoRoot(t)
	bin := t.TempDir()
	build := exec.Command("go", "build", "-trimpath", "-o", bin+"/", "./cmd/provider", "./cmd/edgeagent", "./hack/localfabric")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dir := filepath.Join(t.TempDir(), "local")
	run := func(mode string, args ...string) {
		t.Helper()
		cmd := exec.CommandContext(t.Context(), filepath.Join(bin, "localfabric"), append([]string{mode, "-dir", dir}, args...)...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("localfabric %s: %v\n%s", mode, err, out)
		}
	}
	run("up", append([]string{
		"-provider-bin", filepath.Join(bin, "provider"), "-agent-bin", filepath.Join(bin, "edgeagent"),
		"-assets", os.Getenv("KUBEBUILDER_ASSETS"), "-helm", os.Getenv("EDGEFABRIC_HELM"),
		// Not the defaults, which a developer's fabric may hold.
		"-apiserver-port=0", "-registry-port=0", "-hub-port=0", "-kubelet-port=0",
	}, args...)...)
	return dir, run
}

// TestUpDownLoopback runs the one LAN on loopback (-loopback, what a user
// without root gets): no bridges, the hub on 127.0.0.1, the agents on the
// account node.
func TestUpDownLoopback(t *testing.T) {
	dir, run := startFabric(t, "-loopback", "-agents=2")
	defer run("down")
	env := readEnv(t, filepath.Join(dir, "env"))
	if _, ok := env["LAN_BRIDGES"]; ok {
		t.Errorf("LAN_BRIDGES=%q on loopback", env["LAN_BRIDGES"])
	}
	if host, _, err := net.SplitHostPort(env["HUB"]); err != nil || host != "127.0.0.1" {
		t.Errorf("HUB=%q, want loopback", env["HUB"])
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", env["KUBECONFIG"])
	if err != nil {
		t.Fatal(err)
	}
	n, err := kubernetes.NewForConfigOrDie(cfg).CoreV1().Nodes().Get(t.Context(), "edge-demo", metav1.GetOptions{})
	if err != nil || !fabrictest.NodeReady(n) {
		t.Fatalf("edge-demo not Ready after up: %v", err)
	}
}

// fabricFormed reports whether nodes are the account node with 4 devices
// and two network nodes with 2 each, all Ready.
func fabricFormed(nodes []corev1.Node) bool {
	network := 0
	account := false
	for _, n := range nodes {
		if !fabrictest.NodeReady(&n) {
			return false
		}
		switch n.Labels[efv1.LabelScope] {
		case "account":
			account = fabrictest.ReadyDevices(&n) == 4
		case "network":
			if fabrictest.ReadyDevices(&n) == 2 {
				network++
			}
		}
	}
	return account && network == 2
}

func nodeSummary(nodes *corev1.NodeList) []string {
	if nodes == nil {
		return nil
	}
	var out []string
	for _, n := range nodes.Items {
		out = append(out, n.Name+" "+n.Labels[efv1.LabelScope])
	}
	return out
}

// readEnv reads the exports of a local fabric's env file.
func readEnv(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimPrefix(sc.Text(), "export "), "=")
		if ok && !strings.HasPrefix(k, "#") {
			env[k] = strings.Trim(v, "'")
		}
	}
	return env
}
