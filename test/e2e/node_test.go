package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgefabric/edgefabric/test/fabrictest"
	"github.com/edgefabric/edgefabric/test/poll"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/tools/cache"

	efv1 "github.com/edgefabric/edgefabric/pkg/apis/edgefabric/v1alpha1"
	"github.com/edgefabric/edgefabric/test/kubetest"
)

// TestDevices covers the virtual node of an account and how devices join it:
// its labels, taint, capacity, readiness and lease, bootstrap with good,
// wrong and expired tokens, a second account's node, and capacity and
// readiness following devices as they come and go.
func TestDevices(t *testing.T) {
	f := startFabric(t, 2)
	t.Run("read-only", func(t *testing.T) {
		t.Run("node", func(t *testing.T) { t.Parallel(); testNode(f.For(t)) })
		t.Run("lease", func(t *testing.T) { t.Parallel(); testLease(f.For(t)) })
		t.Run("refused", func(t *testing.T) { t.Parallel(); testBootstrapRefused(f.For(t)) })
	})
	t.Run("bootstrap", func(t *testing.T) { testBootstrap(f.For(t)) })
	t.Run("second account", func(t *testing.T) { testSecondAccount(f.For(t)) })
	t.Run("devices come and go", func(t *testing.T) { testDevicesComeAndGo(f.For(t)) })
	f.CheckAlive()
}

func testNode(f *fabrictest.Fabric) {
	t := f.T()
	n := f.WaitNode(func(n *corev1.Node) bool { return fabrictest.ReadyDevices(n) == 2 })
	for k, want := range map[string]string{
		"type":               "virtual-kubelet",
		"kubernetes.io/role": "edge",
		efv1.LabelAccount:    account,
		efv1.LabelScope:      "account",
		efv1.LabelCluster:    nodeName,
	} {
		if got := n.Labels[k]; got != want {
			t.Errorf("label %s: got %q, want %q", k, got, want)
		}
	}
	// The API server adds node.kubernetes.io/not-ready to new nodes; the node
	// lifecycle controller, which this fabric does not run, removes it.
	wantTaint := corev1.Taint{Key: "virtual-kubelet.io/provider", Value: "edgefabric", Effect: corev1.TaintEffectNoSchedule}
	if !slices.ContainsFunc(n.Spec.Taints, func(t corev1.Taint) bool { return t.MatchTaint(&wantTaint) && t.Value == wantTaint.Value }) {
		t.Errorf("taints: got %+v, want %+v among them", n.Spec.Taints, wantTaint)
	}
	// Two devices of 2000m, 2 GiB and 110 pods each.
	want := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("4"),
		corev1.ResourceMemory: resource.MustParse("4Gi"),
		corev1.ResourcePods:   resource.MustParse("220"),
	}
	for name, q := range want {
		if got := n.Status.Capacity[name]; got.Cmp(q) != 0 {
			t.Errorf("capacity %s: got %s, want %s", name, got.String(), q.String())
		}
		if got := n.Status.Allocatable[name]; got.Cmp(q) != 0 {
			t.Errorf("allocatable %s: got %s, want %s", name, got.String(), q.String())
		}
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady && (c.Reason != efv1.ReasonDevicesReady || !strings.HasPrefix(c.Message, "2/2 devices ready: dev-0, dev-1")) {
			t.Errorf("Ready condition: got reason %q message %q", c.Reason, c.Message)
		}
	}
	var internal string
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			internal = a.Address
		}
	}
	// The node's kubelet endpoint is its own: it answers for its pods.
	port := n.Status.DaemonEndpoints.KubeletEndpoint.Port
	if internal != "127.0.0.1" || port == 0 {
		t.Errorf("kubelet endpoint: got %s:%d, want 127.0.0.1 and a port", internal, port)
	}
	if body, err := kubeletGet(f, fmt.Sprintf("https://127.0.0.1:%d/pods", port)); err != nil || !strings.Contains(body, `"kind":"PodList"`) {
		t.Errorf("GET /pods on the node's kubelet endpoint: %v, %.200s", err, body)
	}

	// What a user sees with kubectl.
	out, err := f.Kubectl("get", "nodes", "-l", "type=virtual-kubelet,edgefabric.io/account="+account, "-o", "name")
	if err != nil || strings.TrimSpace(out) != "node/"+nodeName {
		t.Errorf("kubectl get nodes -l ...: got %q, %v", out, err)
	}
	out, err = f.Kubectl("get", "node", nodeName, "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].status} {.spec.taints[?(@.key==\"virtual-kubelet.io/provider\")].value}")
	if want := "True edgefabric"; err != nil || out != want {
		t.Errorf("kubectl get node -o jsonpath: got %q, %v; want %q", out, err, want)
	}
}

// testLease checks the node's lease in kube-node-lease and that it is renewed.
func testLease(f *fabrictest.Fabric) {
	t := f.T()
	// The node controller creates the lease once the node is registered,
	// which may be a moment after the node is Ready.
	var l *coordinationv1.Lease
	var err error
	poll.Until(t, 30*time.Second, func() bool {
		l, err = f.Client.CoordinationV1().Leases("kube-node-lease").Get(t.Context(), nodeName, metav1.GetOptions{})
		return err == nil
	})
	if h := l.Spec.HolderIdentity; h == nil || *h != nodeName {
		t.Errorf("lease holder: got %v, want %s", h, nodeName)
	}
	if d := l.Spec.LeaseDurationSeconds; d == nil || *d <= 0 {
		t.Errorf("lease duration: got %v", d)
	}
	if len(l.OwnerReferences) != 1 || l.OwnerReferences[0].Kind != "Node" || l.OwnerReferences[0].Name != nodeName {
		t.Errorf("lease owner: got %+v, want the node", l.OwnerReferences)
	}
	if l.Spec.RenewTime == nil {
		t.Fatal("lease has no renewTime")
	}
	first := l.Spec.RenewTime.Time
	lw := cache.NewListWatchFromClient(f.Client.CoordinationV1().RESTClient(), "leases", "kube-node-lease", fields.OneTermEqualSelector("metadata.name", nodeName))
	kubetest.Until(t, 45*time.Second, lw, &coordinationv1.Lease{}, func(l *coordinationv1.Lease) bool {
		return l.Spec.RenewTime != nil && l.Spec.RenewTime.After(first)
	})
}

// testSecondAccount joins a device with another account's token: it gets its
// own node, and the first account's node does not count it.
func testSecondAccount(f *fabrictest.Fabric) {
	t := f.T()
	before := 2 // dev-0 and dev-1
	f.WaitNode(func(n *corev1.Node) bool { return fabrictest.ReadyDevices(n) == before })
	f.CreateToken("bootstrap-token-acme", "acme-token-0123456789", "acme", "")
	dir := t.TempDir()
	a := f.StartAgentArgs("acme-0", dir, replaceFlag(f.AgentArgs("acme-0", dir), "--token-file", f.TokenFile("acme-token-0123456789"))...)
	lw := cache.NewListWatchFromClient(f.Client.CoreV1().RESTClient(), "nodes", "", fields.OneTermEqualSelector("metadata.name", "edge-acme"))
	n := kubetest.Until(t, 60*time.Second, lw, &corev1.Node{}, func(n *corev1.Node) bool { return fabrictest.NodeReady(n) && fabrictest.ReadyDevices(n) == 1 })
	if n.Labels[efv1.LabelAccount] != "acme" {
		t.Errorf("edge-acme account label: got %q", n.Labels[efv1.LabelAccount])
	}
	if got := n.Status.Capacity.Cpu().MilliValue(); got != 2000 {
		t.Errorf("edge-acme cpu: got %dm, want 2000m", got)
	}
	if e := f.WaitNode(fabrictest.NodeReady); fabrictest.ReadyDevices(e) != before || strings.Contains(conditionMessage(e), "acme-0") {
		t.Errorf("%s counts the other account's device: %q", nodeName, conditionMessage(e))
	}
	a.Stop(t, syscall.SIGTERM)
	f.Forget(a)
}

// testDevicesComeAndGo stops and starts devices: capacity is the sum over the
// online devices, and the node is Ready while at least one is connected.
func testDevicesComeAndGo(f *fabrictest.Fabric) {
	t := f.T()
	d0, d1 := f.Agent("dev-0"), f.Agent("dev-1")
	d1.Stop(t, syscall.SIGTERM)
	n := f.WaitNode(func(n *corev1.Node) bool { return fabrictest.NodeReady(n) && fabrictest.ReadyDevices(n) == 1 })
	if got := n.Status.Capacity.Cpu().MilliValue(); got != 2000 {
		t.Errorf("cpu with one device: got %dm, want 2000m", got)
	}
	if got := n.Status.Allocatable.Memory().Value(); got != 2<<30 {
		t.Errorf("allocatable memory with one device: got %d, want %d", got, 2<<30)
	}
	d0.Stop(t, syscall.SIGTERM)
	n = f.WaitNode(func(n *corev1.Node) bool { return !fabrictest.NodeReady(n) })
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady && (c.Status != corev1.ConditionFalse || c.Reason != efv1.ReasonNoDeviceConnected) {
			t.Errorf("Ready without devices: got %s %q %q", c.Status, c.Reason, c.Message)
		}
	}
	if got := n.Status.Capacity.Cpu().MilliValue(); got != 0 {
		t.Errorf("cpu without devices: got %dm, want 0", got)
	}
	// dev-0 comes back offering less.
	f.RestartAgent(d0, replaceFlag(d0.Args, "--cpu-millis", "500")...)
	f.RestartAgent(d1)
	n = f.WaitNode(func(n *corev1.Node) bool { return fabrictest.NodeReady(n) && fabrictest.ReadyDevices(n) == 2 })
	if got := n.Status.Capacity.Cpu().MilliValue(); got != 2500 {
		t.Errorf("cpu with both devices back, dev-0 offering 500m: got %dm, want 2500m", got)
	}

	// A device that stops answering without closing its connection (frozen,
	// or its network gone) is dropped by the hub's keepalive.
	if err := syscall.Kill(d1.Pid(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	n = f.WaitNode(func(n *corev1.Node) bool { return fabrictest.ReadyDevices(n) == 1 })
	t.Logf("a frozen device left the node after %s", time.Since(stopped).Round(time.Second))
	if err := syscall.Kill(d1.Pid(), syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if !fabrictest.NodeReady(n) || strings.Contains(conditionMessage(n), "dev-1") {
		t.Errorf("with dev-1 frozen: %q", conditionMessage(n))
	}
	f.WaitNode(func(n *corev1.Node) bool { return fabrictest.ReadyDevices(n) == 2 })
}

func conditionMessage(n *corev1.Node) string {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Message
		}
	}
	return ""
}

// replaceFlag returns args with the value of flag set to value (removing the
// flag if value is empty).
func replaceFlag(args []string, flag, value string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		if args[i] == flag && i+1 < len(args) {
			i++
			if value != "" {
				out = append(out, flag, value)
			}
			continue
		}
		out = append(out, args[i])
	}
	return out
}

// kubeletGet GETs url from a kubelet API the provider serves, trusting the
// provider's CA, as the API server does (its kubelet client certificate).
func kubeletGet(f *fabrictest.Fabric, url string) (string, error) {
	caPEM, err := os.ReadFile(filepath.Join(f.StateDir, "ca.crt"))
	if err != nil {
		return "", err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	// As the API server calls it: with its kubelet client certificate.
	cert, err := tls.LoadX509KeyPair(f.Env.KubeletClientCert, f.Env.KubeletClientKey)
	if err != nil {
		return "", err
	}
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}}}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("%s: %s", url, resp.Status)
	}
	return string(b), err
}
