package chart

import (
	"encoding/base64"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	efv1 "github.com/edgefabric/edgefabric/pkg/apis/edgefabric/v1alpha1"
	"github.com/edgefabric/edgefabric/test/kubetest"
	"github.com/edgefabric/edgefabric/test/ocitest"
)

// TestInstall installs the chart into a real API server, proves its RBAC is
// enough for the provider and no more, runs two providers with only the
// chart's ServiceAccount identity as leader and hot standby through a pod's
// whole life and a failover, then upgrades and uninstalls the release.
func TestInstall(t *testing.T) {
	// The scheduler places the quickstart's pod by its RuntimeClass alone;
	// the node lifecycle controller lifts the not-ready taint the API server
	// puts on new nodes, as in any cluster.
	env := kubetest.Start(t, kubetest.Options{Scheduler: true, ControllerManager: true})
	ctx := t.Context()
	kc := []string{"--kubeconfig", env.Kubeconfig, "--namespace", namespace}

	out, err := helm(t, append([]string{"install", release, chartDir(t), "--create-namespace"}, kc...)...)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "Join a device") || !strings.Contains(out, "edgefabric-token-default") {
		t.Errorf("install NOTES do not say how to join a device:\n%s", out)
	}
	c := env.Client
	dep, err := c.AppsV1().Deployments(namespace).Get(ctx, release, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := *dep.Spec.Replicas; got != 2 {
		t.Errorf("deployment replicas %d, want 2", got)
	}
	if args := dep.Spec.Template.Spec.Containers[0].Args; !slices.Contains(args, "--leader-elect") {
		t.Errorf("provider args %q lack --leader-elect", args)
	}
	for _, rc := range []struct{ name, handler string }{{"edgefabric-wasm", "wasm"}, {"edgefabric-process", "process"}} {
		got, err := c.NodeV1().RuntimeClasses().Get(ctx, rc.name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got.Handler != rc.handler || got.Scheduling == nil || got.Scheduling.NodeSelector["type"] != "virtual-kubelet" || len(got.Scheduling.Tolerations) != 1 {
			t.Errorf("RuntimeClass %s: handler %q, scheduling %+v", rc.name, got.Handler, got.Scheduling)
		}
	}
	tokSecret, err := c.CoreV1().Secrets(namespace).Get(ctx, "edgefabric-token-default", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	token := string(tokSecret.Data["token"])
	if tokSecret.Type != efv1.SecretTypeBootstrapToken || len(token) != 32 || string(tokSecret.Data["account"]) != "default" {
		t.Fatalf("bootstrap token secret: type %s, token %q, account %q", tokSecret.Type, token, tokSecret.Data["account"])
	}
	svc, err := c.CoreV1().Services(namespace).Get(ctx, "edgefabric-hub", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
		t.Errorf("hub service type %s, want LoadBalancer", svc.Spec.Type)
	}

	saKubeconfig := serviceAccountKubeconfig(t, env, namespace, release)

	t.Run("RBAC", func(t *testing.T) {
		sa := clientFor(t, saKubeconfig)
		const all = ""
		for _, tc := range []struct {
			verb, group, resource, sub, ns string
			want                           bool
		}{
			// What the provider does.
			{"create", "", "nodes", "", all, true},
			{"patch", "", "nodes", "status", all, true},
			{"list", "", "pods", "", all, true},
			{"watch", "", "pods", "", all, true},
			{"update", "", "pods", "status", "default", true},
			{"delete", "", "pods", "", "default", true},
			{"list", "", "secrets", "", all, true},
			{"watch", "", "configmaps", "", all, true},
			{"list", "", "services", "", all, true},
			{"get", "", "namespaces", "", all, true},
			{"create", "", "events", "", "default", true},
			{"update", "coordination.k8s.io", "leases", "", "kube-node-lease", true},
			{"create", "", "secrets", "", namespace, true},
			{"delete", "", "secrets", "", namespace, true}, // single-use bootstrap tokens, consumed
			{"update", "coordination.k8s.io", "leases", "", namespace, true},
			{"create", "edgefabric.io", "edgedevices", "", all, true},
			{"watch", "edgefabric.io", "edgedevices", "", all, true},
			{"delete", "edgefabric.io", "edgedevices", "", all, true},
			{"create", "", "configmaps", "", namespace, true}, // edgefabric-revocations, -enrollments (updated by name only)
			// The kubelet API's webhook authentication and authorization.
			{"create", "authentication.k8s.io", "tokenreviews", "", all, true},
			{"create", "authorization.k8s.io", "subjectaccessreviews", "", all, true},
			// And no more.
			{"get", "", "nodes", "proxy", all, false},
			{"create", "", "pods", "", "default", false},
			{"create", "apps", "deployments", "", namespace, false},
			{"create", "", "secrets", "", "default", false},
			{"update", "", "secrets", "", namespace, false},
			{"update", "", "configmaps", "", "default", false},
			{"update", "", "configmaps", "", namespace, false},
			{"patch", "edgefabric.io", "edgedevices", "status", all, false},
			{"delete", "", "namespaces", "", all, false},
			{"create", "rbac.authorization.k8s.io", "clusterrolebindings", "", all, false},
			{"update", "coordination.k8s.io", "leases", "", "default", false},
			{"create", "", "serviceaccounts", "token", namespace, false},
			{"create", "", "pods", "exec", "default", false},
			{"update", "node.k8s.io", "runtimeclasses", "", all, false},
		} {
			r, err := sa.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
				Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{
					Verb: tc.verb, Group: tc.group, Resource: tc.resource, Subresource: tc.sub, Namespace: tc.ns,
				}},
			}, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if r.Status.Allowed != tc.want {
				t.Errorf("as the provider's ServiceAccount, may %s %s.%s/%s in %q: got %v, want %v", tc.verb, tc.resource, tc.group, tc.sub, tc.ns, r.Status.Allowed, tc.want)
			}
		}
	})

	t.Run("provider with the chart's identity", func(t *testing.T) {
		testProviderIdentity(t, env, saKubeconfig, token)
	})

	t.Run("upgrade", func(t *testing.T) {
		if _, err := helm(t, append([]string{"upgrade", release, chartDir(t), "--set", "replicas=0", "--set", "hub.service.type=NodePort"}, kc...)...); err != nil {
			t.Fatal(err)
		}
		status, err := helm(t, append([]string{"status", release}, kc...)...)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(status, "REVISION: 2") || !strings.Contains(status, "STATUS: deployed") {
			t.Errorf("helm status after upgrade:\n%s", status)
		}
		dep, err := c.AppsV1().Deployments(namespace).Get(ctx, release, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if *dep.Spec.Replicas != 0 {
			t.Errorf("replicas after upgrade %d, want 0", *dep.Spec.Replicas)
		}
		svc, err := c.CoreV1().Services(namespace).Get(ctx, "edgefabric-hub", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if svc.Spec.Type != corev1.ServiceTypeNodePort || svc.Spec.Ports[0].NodePort == 0 {
			t.Errorf("hub service after upgrade: type %s, node port %d", svc.Spec.Type, svc.Spec.Ports[0].NodePort)
		}
		s, err := c.CoreV1().Secrets(namespace).Get(ctx, "edgefabric-token-default", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := string(s.Data["token"]); got != token {
			t.Errorf("the upgrade changed the generated bootstrap token from %q to %q; joined-device instructions would break", token, got)
		}
		if _, err := c.PolicyV1().PodDisruptionBudgets(namespace).Get(ctx, release, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("PodDisruptionBudget with 0 replicas: got %v, want NotFound", err)
		}
	})

	t.Run("uninstall", func(t *testing.T) {
		if _, err := helm(t, append([]string{"uninstall", release, "--wait"}, kc...)...); err != nil {
			t.Fatal(err)
		}
		for what, get := range map[string]func() error{
			"deployment": func() error {
				_, err := c.AppsV1().Deployments(namespace).Get(ctx, release, metav1.GetOptions{})
				return err
			},
			"serviceaccount": func() error {
				_, err := c.CoreV1().ServiceAccounts(namespace).Get(ctx, release, metav1.GetOptions{})
				return err
			},
			"clusterrole": func() error { _, err := c.RbacV1().ClusterRoles().Get(ctx, release, metav1.GetOptions{}); return err },
			"node lease role": func() error {
				_, err := c.RbacV1().Roles("kube-node-lease").Get(ctx, release+"-node-lease", metav1.GetOptions{})
				return err
			},
			"runtimeclass": func() error {
				_, err := c.NodeV1().RuntimeClasses().Get(ctx, "edgefabric-wasm", metav1.GetOptions{})
				return err
			},
			"token": func() error {
				_, err := c.CoreV1().Secrets(namespace).Get(ctx, "edgefabric-token-default", metav1.GetOptions{})
				return err
			},
		} {
			if err := get(); !apierrors.IsNotFound(err) {
				t.Errorf("%s after uninstall: got %v, want NotFound", what, err)
			}
		}
		// The CA the provider generated is not the release's: it outlives it,
		// so devices stay valid across a reinstall.
		if _, err := c.CoreV1().Secrets(namespace).Get(ctx, "edgefabric-ca", metav1.GetOptions{}); err != nil {
			t.Errorf("generated CA after uninstall: %v", err)
		}
	})
}

// testProviderIdentity runs two providers out of cluster as the chart's
// ServiceAccount, with leader election, and an agent: the pod runs, logs and
// is deleted; the leader is killed, the standby takes over, the node is Ready
// again and the pod keeps running.
func testProviderIdentity(t *testing.T, env *kubetest.Env, kubeconfig, token string) {
	ctx := t.Context()
	providerBin, agentBin := binaries(t)
	hub, kubelet := freeAddr(t), freeAddr(t)

	// A leader that cannot serve (its hub port is taken) exits with the
	// reason and releases its Lease at once, for a standby to take over.
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	broken := start(t, "provider-broken", providerBin,
		"--kubeconfig", kubeconfig, "--namespace", namespace,
		"--hub-listen", taken.Addr().String(), "--kubelet-listen", freeAddr(t), "--node-ip", "127.0.0.1",
		"--leader-elect", "--leader-elect-id", "broken", "--leader-elect-identity", "provider-broken")
	select {
	case <-broken.done:
	case <-time.After(60 * time.Second):
		t.Fatal("a leader that cannot listen for agents did not exit within 60s")
	}
	taken.Close()
	if code := broken.cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(broken.output(), "hub listen") {
		t.Errorf("leader that cannot serve: exit %d, want 1 with the reason (hub listen); output:\n%s", code, tail(broken.output(), 10))
	}
	lease, err := env.Client.CoordinationV1().Leases(namespace).Get(ctx, "broken", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if h := lease.Spec.HolderIdentity; h != nil && *h != "" {
		t.Errorf("the failed leader left the Lease held by %q; want it released", *h)
	}

	type replica struct {
		name, health string
		p            *proc
	}
	// Both replicas are given the same hub and kubelet addresses: only the
	// leader listens on them, so agents reach whichever leads, as through the
	// chart's Service.
	replicas := []*replica{{name: "provider-a", health: freeAddr(t)}, {name: "provider-b", health: freeAddr(t)}}
	for _, r := range replicas {
		r.p = start(t, r.name, providerBin,
			"--kubeconfig", kubeconfig,
			"--namespace", namespace,
			"--hub-listen", hub,
			"--kubelet-listen", kubelet,
			"--node-ip", "127.0.0.1",
			"--kubelet-client-ca", env.KubeletClientCA,
			"--health-listen", r.health,
			"--leader-elect",
			"--leader-elect-identity", r.name,
			"--leader-elect-lease-duration", "6s",
			"--leader-elect-renew-deadline", "4s",
			"--leader-elect-retry-period", "1s",
			"--log-level", "debug",
		)
	}
	leader := func(timeout time.Duration, among []*replica) *replica {
		t.Helper()
		deadline := time.Now().Add(timeout)
		for time.Now().Before(deadline) {
			var ready []*replica
			for _, r := range among {
				if readyz(r.health) == 200 {
					ready = append(ready, r)
				}
			}
			if len(ready) > 1 {
				t.Fatalf("%s and %s are both ready: two leaders", ready[0].name, ready[1].name)
			}
			if len(ready) == 1 {
				return ready[0]
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Fatalf("no provider became ready within %s", timeout)
		return nil
	}
	lead := leader(90*time.Second, replicas)
	standby := replicas[0]
	if standby == lead {
		standby = replicas[1]
	}
	if code := readyz(standby.health); code != 503 {
		t.Errorf("standby %s /readyz: %d, want 503", standby.name, code)
	}

	// The CA and the token, as docs/quickstart.md takes them.
	ca := kubectlBase64(t, env, "-n", namespace, "get", "secret", "edgefabric-ca", "-o", `jsonpath={.data.tls\.crt}`)
	if got := kubectlBase64(t, env, "-n", namespace, "get", "secret", "edgefabric-token-default", "-o", "jsonpath={.data.token}"); string(got) != token {
		t.Errorf("token from kubectl: %q, want %q", got, token)
	}
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(caFile, ca, 0o644); err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	agent := start(t, "agent", agentBin,
		"--hub", hub, "--hub-ca", caFile, "--token-file", tokenFile,
		"--data-dir", t.TempDir(), "--device-id", "dev-0", "--advertise-address", "127.0.0.1",
		"--heartbeat-interval", "1s", "--restart-backoff", "1s",
		"--cpu-millis", "2000", "--memory-bytes", "2147483648", "--log-level", "debug")
	const nodeName = "edge-default"
	waitNodeReady := func() {
		t.Helper()
		lw := cache.NewListWatchFromClient(env.Client.CoreV1().RESTClient(), "nodes", "", fields.OneTermEqualSelector("metadata.name", nodeName))
		kubetest.Until(t, 120*time.Second, lw, &corev1.Node{}, func(n *corev1.Node) bool {
			for _, c := range n.Status.Conditions {
				if c.Type == corev1.NodeReady {
					return c.Status == corev1.ConditionTrue && strings.HasPrefix(c.Message, "1/1")
				}
			}
			return false
		})
	}
	waitNodeReady()

	ref := pushHello(t)
	waitPod := func(name string, cond func(*corev1.Pod) bool) *corev1.Pod {
		t.Helper()
		lw := cache.NewListWatchFromClient(env.Client.CoreV1().RESTClient(), "pods", "default", fields.OneTermEqualSelector("metadata.name", name))
		return kubetest.Until(t, 120*time.Second, lw, &corev1.Pod{}, cond)
	}
	running := func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodRunning && len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].State.Running != nil
	}
	logsSay := func(name, want string) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			out, err := env.Kubectl(t, "logs", "-n", "default", name)
			if err == nil && strings.Contains(out, want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("kubectl logs %s: %v; output %q does not contain %q", name, err, tail(out, 5), want)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	// The quickstart's manifest, with the example's image: the scheduler
	// places it on the virtual node through the RuntimeClass's scheduling.
	manifest := strings.ReplaceAll(quickstartPod(t), "registry.example.com/hello:v1", ref)
	if _, err := env.KubectlStdin(t, manifest, "-n", "default", "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	before := waitPod("hello", running)
	if before.Spec.NodeName != nodeName {
		t.Errorf("pod hello scheduled to %q, want %s", before.Spec.NodeName, nodeName)
	}
	logsSay("hello", "hello from")

	// Kill the leader: the standby takes over within the lease duration,
	// the agent reconnects to it, the node is Ready again and the pod, still
	// running on the device, is still reported as running by the new leader.
	lead.p.stop(syscall.SIGKILL)
	killed := time.Now()
	if got := leader(60*time.Second, []*replica{standby}); got != standby {
		t.Fatalf("leader after failover: %s", got.name)
	}
	t.Logf("standby %s ready %s after the leader was killed", standby.name, time.Since(killed).Round(100*time.Millisecond))
	waitNodeReady()
	t.Logf("node Ready again %s after the leader was killed", time.Since(killed).Round(100*time.Millisecond))
	after := waitPod("hello", running)
	if !after.Status.ContainerStatuses[0].State.Running.StartedAt.Equal(&before.Status.ContainerStatuses[0].State.Running.StartedAt) {
		t.Errorf("the pod was restarted by the failover: started %s, then %s", before.Status.ContainerStatuses[0].State.Running.StartedAt, after.Status.ContainerStatuses[0].State.Running.StartedAt)
	}
	logsSay("hello", "hello from")

	if err := env.Client.CoreV1().Pods("default").Delete(ctx, "hello", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, err := env.Client.CoreV1().Pods("default").Get(ctx, "hello", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod hello still there 60s after delete: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}

	if !standby.p.running() || !agent.running() {
		t.Errorf("a process exited: standby running %v, agent running %v", standby.p.running(), agent.running())
	}
	// Everything the providers did, they were allowed to.
	for _, r := range replicas {
		if out := r.p.output(); strings.Contains(out, "forbidden") {
			var bad []string
			for _, l := range strings.Split(out, "\n") {
				if strings.Contains(l, "forbidden") {
					bad = append(bad, l)
				}
			}
			t.Errorf("%s was refused by RBAC:\n%s", r.name, tail(strings.Join(bad, "\n"), 10))
		}
	}
}

// serviceAccountKubeconfig writes a kubeconfig that authenticates as the
// ServiceAccount ns/name with a token from the TokenRequest API.
func serviceAccountKubeconfig(t testing.TB, env *kubetest.Env, ns, name string) string {
	t.Helper()
	tr, err := env.Client.CoreV1().ServiceAccounts(ns).CreateToken(t.Context(), name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: new(int64(3600))},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token for service account %s/%s: %v", ns, name, err)
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["env"] = &clientcmdapi.Cluster{Server: env.Config.Host, CertificateAuthorityData: env.Config.CAData}
	cfg.AuthInfos["sa"] = &clientcmdapi.AuthInfo{Token: tr.Status.Token}
	cfg.Contexts["sa"] = &clientcmdapi.Context{Cluster: "env", AuthInfo: "sa"}
	cfg.CurrentContext = "sa"
	path := filepath.Join(t.TempDir(), "sa.kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// clientFor is a clientset that authenticates as kubeconfig says.
func clientFor(t *testing.T, kubeconfig string) kubernetes.Interface {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// kubectlBase64 runs kubectl as the admin and base64-decodes what it prints,
// as `... -o jsonpath=... | base64 -d` does.
func kubectlBase64(t *testing.T, env *kubetest.Env, args ...string) []byte {
	t.Helper()
	out, err := env.Kubectl(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	b, err := base64.StdEncoding.DecodeString(out)
	if err != nil {
		t.Fatalf("kubectl %s printed %q: %v", strings.Join(args, " "), out, err)
	}
	return b
}

// quickstartPod is the pod manifest of docs/quickstart.md, the YAML block
// after its quickstart-pod marker.
func quickstartPod(t *testing.T) string {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join(ocitest.RepoRoot(t), "docs", "quickstart.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "<!-- quickstart-pod")
	if !ok {
		t.Fatal("docs/quickstart.md has no quickstart-pod marker")
	}
	_, rest, ok = strings.Cut(rest, "```yaml\n")
	block, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("docs/quickstart.md: no yaml block after the quickstart-pod marker")
	}
	return block
}
