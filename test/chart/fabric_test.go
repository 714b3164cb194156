package chart

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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
		devices[p.Annotations["edgefabric.io/device"]] = true
		f.WaitEvent(name, "Scheduled", 30*time.Second)
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
	f.CheckAlive()
	if out := f.Provider().Output(); strings.Contains(out, "forbidden") {
		t.Errorf("the provider was refused by the chart's RBAC:\n%s", fabrictest.Tail(out, 20))
	}
}
