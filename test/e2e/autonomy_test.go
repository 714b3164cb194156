package e2e

import (
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgefabric/edgefabric/pkg/agent/logs"
	"github.com/edgefabric/edgefabric/test/fabrictest"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	efv1 "github.com/edgefabric/edgefabric/pkg/apis/edgefabric/v1alpha1"
	"github.com/edgefabric/edgefabric/test/ocitest"
)

// TestAutonomy checks that devices keep their work when the cloud side goes
// away: the provider restarted, the provider unreachable for a while, and an
// agent killed and restarted while the provider is down. Workloads keep
// running and restarting per policy and keep their logs, and when the two
// sides meet again nothing that is right is restarted.
func TestAutonomy(t *testing.T) {
	f := startFabric(t, 2, fabrictest.WithHubProxy())
	ref, _ := f.PushExample("hello", "v1", ocitest.Image)
	f.Create(f.Pod("steady", ref, fabrictest.Env("INTERVAL", "200ms"), func(p *corev1.Pod) {
		// The pod's IP is resolved where the pod is placed: a provider that
		// comes back must resolve it the same way or restart the pod.
		p.Spec.Containers[0].Env = append(p.Spec.Containers[0].Env, corev1.EnvVar{
			Name: "POD_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}},
		})
	}))
	f.WaitPod("steady", 60*time.Second, fabrictest.PodReady)

	t.Run("provider restarted", func(t *testing.T) { testProviderRestart(f.For(t), ref) })
	t.Run("provider unreachable", func(t *testing.T) { testProviderUnreachable(f.For(t), ref) })
	t.Run("agent restarted", func(t *testing.T) { testAgentRestart(f.For(t)) })
	t.Run("agent restarted while provider is down", func(t *testing.T) { testAgentRestartOffline(f.For(t)) })
	f.CheckAlive()
}

// snapshot is what must not change about a container that is left alone.
type snapshot struct {
	startedAt metav1.Time
	restarts  int32
	attempts  []int
}

func takeSnapshot(f *fabrictest.Fabric, name string) snapshot {
	f.T().Helper()
	p, err := f.Client.CoreV1().Pods(namespace).Get(f.T().Context(), name, metav1.GetOptions{})
	if err != nil {
		f.T().Fatal(err)
	}
	cs := app(p)
	if cs.State.Running == nil {
		f.T().Fatalf("%s is not running: %+v", name, cs.State)
	}
	return snapshot{startedAt: cs.State.Running.StartedAt, restarts: cs.RestartCount, attempts: attempts(f.DeviceOf(p).Logs(p, "app"))}
}

// attempts lists the attempt numbers that have a log file in dir.
func attempts(lf logs.Files) []int {
	out, _ := lf.Attempts()
	return out
}

// same checks that the pod still runs the container it ran at s.
func same(f *fabrictest.Fabric, name string, s snapshot) {
	f.T().Helper()
	p := f.WaitPod(name, 30*time.Second, fabrictest.PodReady)
	cs := app(p)
	if !cs.State.Running.StartedAt.Equal(&s.startedAt) || cs.RestartCount != s.restarts {
		f.T().Errorf("%s was restarted: startedAt %s → %s, restartCount %d → %d", name, s.startedAt, cs.State.Running.StartedAt, s.restarts, cs.RestartCount)
	}
	if got := attempts(f.DeviceOf(p).Logs(p, "app")); !slices.Equal(got, s.attempts) {
		f.T().Errorf("%s: log attempts %v → %v on its device", name, s.attempts, got)
	}
}

// testProviderRestart restarts the provider: running pods are left as they
// are, logs still work, and new pods run.
func testProviderRestart(f *fabrictest.Fabric, ref string) {
	t := f.T()
	before := takeSnapshot(f, "steady")
	f.StopProvider()
	f.StartProvider()
	waitProviderReady(f)
	// A device handles a logs request after the desired state sent before it:
	// once the logs come, the device has reconciled.
	out := f.LogsUntil(30*time.Second, func(s string) bool { return len(fabrictest.Lines(s)) == 3 }, "steady", "--tail=3")
	if ns := numbered(fabrictest.Lines(out)); len(ns) != 3 || ns[2] != ns[0]+2 {
		t.Errorf("kubectl logs --tail=3 after the provider restarted: %q", out)
	}
	same(f, "steady", before)
	// Statuses flow again: a new pod runs.
	f.Create(f.Pod("after-restart", ref))
	f.WaitPod("after-restart", 60*time.Second, fabrictest.PodReady)
}

// waitProviderReady waits until the provider that was just started has
// rebuilt its nodes and both devices are connected to it.
func waitProviderReady(f *fabrictest.Fabric) {
	f.T().Helper()
	f.WaitLog(f.Provider(), "virtual nodes ready", 1, 60*time.Second)
	for _, id := range []string{"dev-0", "dev-1"} {
		deadline := time.Now().Add(60 * time.Second)
		for fabrictest.LogLine(f.Provider().Output(), "device connected", "device="+id) == "" {
			if time.Now().After(deadline) {
				f.T().Fatalf("%s did not connect to the restarted provider within 60s", id)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	f.WaitNode(func(n *corev1.Node) bool { return fabrictest.NodeReady(n) && fabrictest.ReadyDevices(n) == 2 })
}

// testProviderUnreachable cuts the agents off the provider for over ten
// seconds: workloads keep fabrictest.PodReady, restart per their policy and log; after
// the agents reconnect, the status catches up and nothing is restarted.
func testProviderUnreachable(f *fabrictest.Fabric, ref string) {
	t := f.T()
	f.Create(f.Pod("flaky", ref, fabrictest.RestartPolicy(corev1.RestartPolicyOnFailure), fabrictest.Env("COUNT", "5", "INTERVAL", "200ms", "EXIT_CODE", "1")))
	f.Create(f.Pod("doomed", ref, fabrictest.Env("INTERVAL", "200ms")))
	doomed := f.WaitPod("doomed", 60*time.Second, fabrictest.PodReady)
	doomedLogs := f.DeviceOf(doomed).Logs(doomed, "app")
	flaky := f.WaitPod("flaky", 60*time.Second, fabrictest.PodReady)
	flakyLogs := f.DeviceOf(flaky).Logs(flaky, "app")
	steady := takeSnapshot(f, "steady")
	sp, _ := f.Client.CoreV1().Pods(namespace).Get(t.Context(), "steady", metav1.GetOptions{})
	steadyLog := f.DeviceOf(sp).Logs(sp, "app").Current(steady.attempts[len(steady.attempts)-1])

	atCut := attempts(flakyLogs)
	f.Proxy.Cut()
	cut := time.Now()
	f.WaitNode(func(n *corev1.Node) bool { return !fabrictest.NodeReady(n) })
	// Meanwhile a pod is deleted and one is created; the devices hear of it
	// when they are back.
	if _, err := f.Kubectl("delete", "pod", "doomed", "--wait=true", "--timeout=30s"); err != nil {
		t.Fatal(err)
	}
	f.Create(f.Pod("latecomer", ref, fabrictest.Env("INTERVAL", "200ms")))
	p := f.WaitPod("latecomer", 30*time.Second, func(p *corev1.Pod) bool {
		w := app(p).State.Waiting
		return w != nil && w.Reason == efv1.ReasonUnschedulable
	})
	if msg := app(p).State.Waiting.Message; !strings.Contains(msg, "2 offline") {
		t.Errorf("latecomer waits with %q, want it to say the devices are offline", msg)
	}
	// The devices carry on alone.
	size := fabrictest.FileSize(steadyLog)
	for time.Since(cut) < 10*time.Second {
		size = f.WaitFileGrows(steadyLog, size, 5*time.Second)
		time.Sleep(time.Second)
	}
	// It ran a second and failed, again and again, with a growing back-off.
	restarted := int32(attempts(flakyLogs)[len(attempts(flakyLogs))-1])
	if was := int32(atCut[len(atCut)-1]); restarted < was+2 {
		t.Errorf("flaky was restarted %d times while the provider was unreachable, want at least 2", restarted-was)
	}
	if err := f.Proxy.Restore(); err != nil {
		t.Fatal(err)
	}
	restored := time.Now()
	f.WaitNode(func(n *corev1.Node) bool { return fabrictest.NodeReady(n) && fabrictest.ReadyDevices(n) == 2 })
	// What happened meanwhile reaches the pod's status; the deleted pod is
	// stopped and its logs removed, and the new one runs.
	f.WaitPod("flaky", 60*time.Second, func(p *corev1.Pod) bool { return app(p).RestartCount >= restarted })
	f.WaitLogsRemoved(doomedLogs, 30*time.Second)
	f.WaitPod("latecomer", 60*time.Second, fabrictest.PodReady)
	// What was logged meanwhile is there, without a gap.
	out := f.LogsUntil(30*time.Second, func(string) bool { return true }, "steady", "--timestamps", "--since-time="+cut.UTC().Format(time.RFC3339))
	var during []string
	for _, l := range parseTimestamps(f, out) {
		if l.ts.After(cut) && l.ts.Before(restored) {
			during = append(during, l.text)
		}
	}
	ns := numbered(during)
	if len(ns) < 40 || ns[len(ns)-1]-ns[0] != len(ns)-1 {
		t.Errorf("steady logged %d numbered lines (%v…) while the provider was unreachable for %s, want one every 200ms without a gap", len(ns), ns[:min(len(ns), 3)], restored.Sub(cut).Round(time.Second))
	}
	same(f, "steady", steady)
}

// testAgentRestartOffline kills the agent of a running pod while the provider
// is down and starts it again: the agent brings the workload back from its
// store on its own, and once the provider is back the pod runs and its logs,
// current and previous, can be read.
func testAgentRestartOffline(f *fabrictest.Fabric) {
	t := f.T()
	p := f.WaitPod("steady", 30*time.Second, fabrictest.PodReady)
	before := takeSnapshot(f, "steady")
	a := f.DeviceOf(p)
	dir := a.Logs(p, "app")
	last := before.attempts[len(before.attempts)-1]

	f.StopProvider()
	a.Stop(t, syscall.SIGKILL)
	f.RestartAgent(a)
	// Back from the store: a new attempt, writing its log.
	next := dir.Current(last + 1)
	f.WaitFileGrows(next, 0, 30*time.Second)
	size := f.WaitFileGrows(next, fabrictest.FileSize(next), 10*time.Second)
	f.WaitLog(a.Proc, "resuming workloads from store", 1, 10*time.Second)

	f.StartProvider()
	waitProviderReady(f)
	f.WaitFileGrows(next, size, 10*time.Second)
	p = f.WaitPod("steady", 60*time.Second, func(p *corev1.Pod) bool {
		return fabrictest.PodReady(p) && app(p).RestartCount == before.restarts+1
	})
	if cs := app(p); !cs.State.Running.StartedAt.After(before.startedAt.Time) {
		t.Errorf("startedAt %s, want after the agent restarted (was %s)", cs.State.Running.StartedAt, before.startedAt)
	}
	out := f.LogsUntil(30*time.Second, func(s string) bool { return slices.Contains(fabrictest.Lines(s), "hello from steady") }, "steady")
	if ns := numbered(fabrictest.Lines(out)); len(ns) == 0 || ns[0] != 1 {
		t.Errorf("kubectl logs after the agent restarted: want the new attempt from line 1, got %q", out)
	}
	prev, err := f.Kubectl("logs", "steady", "--previous", "--tail=1")
	if err != nil || len(numbered(fabrictest.Lines(prev))) != 1 {
		t.Errorf("kubectl logs --previous: %q, %v", prev, err)
	}
}

// testAgentRestart stops the agent of a running pod and starts it again: the
// device leaves and rejoins the node, and the pod runs again, counted as a
// restart, with the status following.
func testAgentRestart(f *fabrictest.Fabric) {
	t := f.T()
	p := f.WaitPod("steady", 30*time.Second, fabrictest.PodReady)
	before := takeSnapshot(f, "steady")
	a := f.DeviceOf(p)
	a.Stop(t, syscall.SIGTERM)
	f.WaitNode(func(n *corev1.Node) bool {
		return fabrictest.ReadyDevices(n) == 1 && !strings.Contains(conditionMessage(n), a.ID)
	})
	f.RestartAgent(a)
	f.WaitNode(func(n *corev1.Node) bool { return fabrictest.ReadyDevices(n) == 2 })
	p = f.WaitPod("steady", 60*time.Second, func(p *corev1.Pod) bool {
		return fabrictest.PodReady(p) && app(p).RestartCount == before.restarts+1
	})
	if !app(p).State.Running.StartedAt.After(before.startedAt.Time) || p.Annotations[efv1.AnnotationDevice] != a.ID {
		t.Errorf("after the agent restarted: startedAt %s (was %s), device %s (was %s)", app(p).State.Running.StartedAt, before.startedAt, p.Annotations[efv1.AnnotationDevice], a.ID)
	}
	if got := takeSnapshot(f, "steady").attempts; len(got) != 2 || got[1] != before.attempts[len(before.attempts)-1]+1 {
		t.Errorf("log attempts %v → %v, want the previous and a new one", before.attempts, got)
	}
}
