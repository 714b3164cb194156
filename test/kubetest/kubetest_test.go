package kubetest_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"

	"github.com/edgefabric/edgefabric/test/kubetest"
)

func TestStartAPIServerOnly(t *testing.T) {
	env := kubetest.Start(t, kubetest.Options{})

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "kubetest"}}
	if _, err := env.Client.CoreV1().Namespaces().Create(t.Context(), ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	if env.Config.QPS != 1000 || env.Config.Burst != 2000 {
		t.Errorf("got QPS %v Burst %d, want 1000 and 2000", env.Config.QPS, env.Config.Burst)
	}

	out, err := env.Kubectl(t, "get", "namespace", "kubetest", "-o", "jsonpath={.metadata.name}")
	if err != nil {
		t.Fatal(err)
	}
	if out != "kubetest" {
		t.Errorf("kubectl get namespace: got %q, want %q", out, "kubetest")
	}
	out, err = env.Kubectl(t, "version", "--client", "-o", "yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "gitVersion: v1.37.2") {
		t.Errorf("kubectl version: got %q, want v1.37.2", out)
	}
	// The kubeconfig user belongs to system:masters.
	out, err = env.Kubectl(t, "auth", "can-i", "*", "*", "--all-namespaces")
	if err != nil || strings.TrimSpace(out) != "yes" {
		t.Errorf("kubectl auth can-i '*' '*': got %q, %v, want yes", out, err)
	}
	if _, err := env.Kubectl(t, "get", "nosuchkind"); err == nil || !strings.Contains(err.Error(), "nosuchkind") {
		t.Errorf("kubectl get nosuchkind: got error %v, want one that names nosuchkind", err)
	}
	checkKubeletClient(t, env)
}

// checkKubeletClient checks the API server's kubelet client certificate: it
// verifies against Env.KubeletClientCA and its user may use nodes/proxy. (The
// e2e tests show the API server presents it: kubectl logs, exec, node proxy.)
func checkKubeletClient(t *testing.T, env *kubetest.Env) {
	t.Helper()
	caPEM, err := os.ReadFile(env.KubeletClientCA)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatalf("%s holds no PEM certificate", env.KubeletClientCA)
	}
	pair, err := tls.LoadX509KeyPair(env.KubeletClientCert, env.KubeletClientKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("kubelet client certificate does not verify as a client against its CA: %v", err)
	}
	if cert.Subject.CommonName != kubetest.KubeletClientUser || len(cert.Subject.Organization) != 1 || cert.Subject.Organization[0] != kubetest.KubeletClientGroup {
		t.Errorf("kubelet client certificate subject: got %v", cert.Subject)
	}
	// A kubelet API asks the API server whether that user may exec.
	sar, err := env.Client.AuthorizationV1().SubjectAccessReviews().Create(t.Context(), &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: cert.Subject.CommonName, Groups: cert.Subject.Organization,
		ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: "create", Resource: "nodes", Subresource: "proxy", Name: "any"},
	}}, metav1.CreateOptions{})
	if err != nil || !sar.Status.Allowed {
		t.Errorf("SubjectAccessReview of the kubelet client on nodes/proxy: got %+v, %v; want allowed", sar, err)
	}
}

func TestStartDeploymentRunsThroughControllersAndScheduler(t *testing.T) {
	env := kubetest.Start(t, kubetest.Options{Scheduler: true, ControllerManager: true})
	ctx := t.Context()

	// The control plane has no kubelet, so register a node for the scheduler.
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "node-1", Labels: map[string]string{"kubernetes.io/hostname": "node-1"}},
		Status: corev1.NodeStatus{
			Capacity:    corev1.ResourceList{corev1.ResourcePods: resource.MustParse("110"), corev1.ResourceCPU: resource.MustParse("4"), corev1.ResourceMemory: resource.MustParse("8Gi")},
			Allocatable: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("110"), corev1.ResourceCPU: resource.MustParse("4"), corev1.ResourceMemory: resource.MustParse("8Gi")},
			Conditions:  []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", LastHeartbeatTime: metav1.Now()}},
		},
	}
	if _, err := env.Client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create node: %v", err)
	}
	// A patch, not an update: the node controllers may have written the node since.
	status, err := json.Marshal(map[string]any{"status": node.Status})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.Client.CoreV1().Nodes().Patch(ctx, node.Name, types.MergePatchType, status, metav1.PatchOptions{}, "status"); err != nil {
		t.Fatalf("node status: %v", err)
	}

	labels := map[string]string{"app": "web"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{{Name: "web", Image: "example.invalid/web:v1"}},
					// The node-lifecycle controller may taint a node without a kubelet.
					Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
				},
			},
		},
	}
	if _, err := env.Client.AppsV1().Deployments("default").Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create deployment: %v", err)
	}

	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	apps, core := env.Client.AppsV1(), env.Client.CoreV1()
	waitFor(ctx, t, "a ReplicaSet owned by deployment web", watchIn(apps.ReplicaSets("default").Watch), func() (bool, error) {
		rss, err := apps.ReplicaSets("default").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			return false, err
		}
		for _, rs := range rss.Items {
			if ref := metav1.GetControllerOf(&rs); ref != nil && ref.Kind == "Deployment" && ref.Name == "web" {
				return true, nil
			}
		}
		return false, nil
	})
	waitFor(ctx, t, "2 pods of deployment web bound to node-1", watchIn(core.Pods("default").Watch), func() (bool, error) {
		pods, err := core.Pods("default").List(ctx, metav1.ListOptions{
			LabelSelector: "app=web",
			FieldSelector: fields.OneTermEqualSelector("spec.nodeName", "node-1").String(),
		})
		if err != nil {
			return false, err
		}
		return len(pods.Items) == 2, nil
	})

	// The serviceaccount controller runs too.
	waitFor(ctx, t, "service account default/default", watchIn(core.ServiceAccounts("default").Watch), func() (bool, error) {
		_, err := core.ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
}

func TestKubeconfigWorksForOtherClients(t *testing.T) {
	env := kubetest.Start(t, kubetest.Options{})
	out, err := env.Kubectl(t, "config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}")
	if err != nil {
		t.Fatal(err)
	}
	if out != strings.TrimSuffix(env.Config.Host, "/") && out != env.Config.Host {
		t.Errorf("kubeconfig server: got %q, want %q", out, env.Config.Host)
	}
	if _, err := env.KubectlStdin(t, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\n  namespace: default\ndata:\n  k: v\n", "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	cm, err := env.Client.CoreV1().ConfigMaps("default").Get(t.Context(), "cm", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := cm.Data["k"]; got != "v" {
		t.Errorf("configmap data k: got %q, want v", got)
	}
}

// waitFor returns once cond holds, re-checking it after every event of the watch
// that start opens, which must cover what cond reads. It fails the test when ctx
// ends first.
func waitFor(ctx context.Context, t *testing.T, what string, start func(context.Context) (watch.Interface, error), cond func() (bool, error)) {
	t.Helper()
	for {
		// Watch before checking, so no change between the two is missed.
		w, err := start(ctx)
		if err != nil {
			t.Fatalf("wait for %s: watch: %v", what, err)
		}
		ok, err := cond()
		if err != nil {
			w.Stop()
			t.Fatalf("wait for %s: %v", what, err)
		}
		if ok {
			w.Stop()
			return
		}
		select {
		case <-ctx.Done():
			w.Stop()
			t.Fatalf("wait for %s: %v", what, ctx.Err())
		case <-w.ResultChan():
		}
		w.Stop()
	}
}

func watchIn(w func(context.Context, metav1.ListOptions) (watch.Interface, error)) func(context.Context) (watch.Interface, error) {
	return func(ctx context.Context) (watch.Interface, error) { return w(ctx, metav1.ListOptions{}) }
}
