package chart

import (
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	efv1 "github.com/edgefabric/edgefabric/pkg/apis/edgefabric/v1alpha1"
	"github.com/edgefabric/edgefabric/pkg/identity"
	"github.com/edgefabric/edgefabric/pkg/provider"
	"github.com/edgefabric/edgefabric/pkg/provider/enrollment"
	"github.com/edgefabric/edgefabric/pkg/provider/revocation"
	"github.com/edgefabric/edgefabric/test/fabrictest"
	"github.com/edgefabric/edgefabric/test/kubetest"
	"github.com/edgefabric/edgefabric/test/ocitest"
)

// TestFabricWithChartIdentity runs the shared fabric harness with the
// provider as the chart's ServiceAccount and nothing else: pods placed on two
// devices, environment from a Secret and a ConfigMap of the pod's namespace
// (read through the provider's cluster-wide informers), events, logs and
// deletion all work, and the provider is never refused anything.
func TestFabricWithChartIdentity(t *testing.T) {
	f := fabrictest.StartFabric(t, 2, fabrictest.WithProviderKubeconfig(func(t testing.TB, env *kubetest.Env) string {
		// The harness made the namespace and its own bootstrap token.
		if _, err := helm(t, "install", release, chartDir(t), "--namespace", namespace, "--kubeconfig", env.Kubeconfig,
			"--set", "replicas=0", "--set", "bootstrapToken.enabled=false"); err != nil {
			t.Fatal(err)
		}
		return serviceAccountKubeconfig(t, env, namespace, release)
	}))
	ctx := t.Context()
	ns := fabrictest.Namespace
	if _, err := f.Client.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "creds"}, StringData: map[string]string{"password": "s3cret"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Client.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "settings"}, Data: map[string]string{"greeting": "hej"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ref, _ := f.PushExample("hello", "v1", ocitest.Image)
	withEnv := func(p *corev1.Pod) {
		p.Spec.Containers[0].Env = []corev1.EnvVar{
			{Name: "PRINT_ENV", Value: "PASSWORD,GREETING"},
			{Name: "PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "creds"}, Key: "password"}}},
			{Name: "GREETING", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "settings"}, Key: "greeting"}}},
		}
	}
	for _, name := range []string{"chart-a", "chart-b"} {
		f.Create(f.Pod(name, ref, withEnv, fabrictest.Env("INTERVAL", "1s")))
	}
	devices := map[string]bool{}
	for _, name := range []string{"chart-a", "chart-b"} {
		p := f.WaitPod(name, 90*time.Second, fabrictest.PodReady)
		devices[p.Annotations[efv1.AnnotationDevice]] = true
		f.WaitEvent(name, efv1.ReasonScheduled, 30*time.Second)
		out := f.LogsUntil(30*time.Second, func(s string) bool { return strings.Contains(s, "GREETING=") }, name)
		for _, want := range []string{"PASSWORD=s3cret", "GREETING=hej"} {
			if !strings.Contains(out, want) {
				t.Errorf("logs of %s lack %q:\n%s", name, want, out)
			}
		}
	}
	if len(devices) != 2 {
		t.Errorf("the two pods went to devices %v, want two different ones", devices)
	}
	for _, name := range []string{"chart-a", "chart-b"} {
		if _, err := f.Kubectl("delete", "pod", name, "--wait=false"); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"chart-a", "chart-b"} {
		f.WaitPodGone(name, 60*time.Second)
	}
	// Decommissioning a device needs the EdgeDevice watch and delete, and
	// the revocations ConfigMap (tested on its own below: this provider
	// keeps them in --state-dir).
	gone := f.Agent("dev-0")
	waited := time.Now()
	f.WaitEdgeDevice(fabrictest.DefaultAccount+"."+gone.ID, "Online", 60*time.Second)
	t.Logf("EdgeDevice written after %v more", time.Since(waited))
	if _, err := f.Kubectl("delete", "edgedevice", fabrictest.DefaultAccount+"."+gone.ID); err != nil {
		t.Fatal(err)
	}
	f.WaitLog(f.Provider(), "device decommissioned: its EdgeDevice was deleted", 1, 30*time.Second)
	f.WaitLog(gone.Proc, "device decommissioned: the hub refuses it; its workloads are stopped. Join it again with a new bootstrap token (edgeagent join --token-file)", 1, 30*time.Second)
	f.CheckAlive()
	if out := f.Provider().Output(); strings.Contains(out, "forbidden") {
		t.Errorf("the provider was refused by the chart's RBAC:\n%s", fabrictest.Tail(out, 20))
	}
}

// TestRevocationsWithChartIdentity keeps decommissioned devices in the
// ConfigMap edgefabric-revocations as the chart's ServiceAccount, as the
// provider does in-cluster: created the first time, updated after.
func TestRevocationsWithChartIdentity(t *testing.T) {
	env := kubetest.Start(t, kubetest.Options{})
	if _, err := env.Client.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := helm(t, "install", release, chartDir(t), "--namespace", namespace, "--kubeconfig", env.Kubeconfig,
		"--set", "replicas=0", "--set", "bootstrapToken.enabled=false", "--skip-crds"); err != nil {
		t.Fatal(err)
	}
	rc, err := clientcmd.BuildConfigFromFlags("", serviceAccountKubeconfig(t, env, namespace, release))
	if err != nil {
		t.Fatal(err)
	}
	sa, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	b := revocation.ConfigMap{Client: sa, Namespace: namespace, Name: provider.RevocationsName}
	now := time.Now()
	for _, id := range []string{"pi-1", "pi-2"} {
		s, err := revocation.Open(t.Context(), b, now)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Revoke(t.Context(), identity.Device{Account: "acme", ID: id}, now, time.Hour); err != nil {
			t.Fatalf("revoke %s as the chart's ServiceAccount: %v", id, err)
		}
	}
	s, err := revocation.Open(t.Context(), b, now)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"pi-1", "pi-2"} {
		if _, ok := s.Revoked(identity.Device{Account: "acme", ID: id}, now); !ok {
			t.Errorf("%s not kept in the ConfigMap", id)
		}
	}

	// The enrolled devices, spread over edgefabric-enrollments and its
	// shards, likewise: 64 devices write most of the 16.
	var ebs []revocation.Backend
	for i := range provider.EnrollmentShards {
		ebs = append(ebs, revocation.ConfigMap{Client: sa, Namespace: namespace, Name: provider.EnrollmentsShardName(i), Key: provider.EnrollmentsKey})
	}
	es, err := enrollment.OpenSharded(t.Context(), ebs, now)
	if err != nil {
		t.Fatal(err)
	}
	var enrolled []identity.Device
	for i := range 64 {
		d := identity.Device{Account: "acme", ID: fmt.Sprintf("pi-%d", i)}
		if err := es.Enrol(t.Context(), d, enrollment.Record{Issued: now, Until: now.Add(time.Hour)}, now); err != nil {
			t.Fatalf("enrol %s as the chart's ServiceAccount: %v", d.ID, err)
		}
		enrolled = append(enrolled, d)
	}
	es, err = enrollment.OpenSharded(t.Context(), ebs, now)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range enrolled {
		if _, ok := es.Enrolled(d, now); !ok {
			t.Errorf("%s not kept in the enrollments ConfigMaps", d.ID)
		}
	}
}
