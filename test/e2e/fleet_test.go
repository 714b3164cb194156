package e2e

import (
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	efv1 "github.com/edgefabric/edgefabric/pkg/apis/edgefabric/v1alpha1"
	"github.com/edgefabric/edgefabric/test/fabrictest"
	"github.com/edgefabric/edgefabric/test/ocitest"
)

// TestDeviceLifecycle checks the end of a device's life in the fleet: an
// operator decommissions one with `kubectl delete edgedevice` (its pod runs
// elsewhere at once, without the device-loss grace; the object stays gone;
// the agent is refused, says why and stops its workload; a join with a new
// token brings it back), and a device offline past --device-gc-after is
// forgotten (object deleted, no longer counted by its node) and appears
// again when it comes back.
func TestDeviceLifecycle(t *testing.T) {
	f := startFabric(t, 2, fabrictest.WithProviderArgs("--device-gc-after", "8s"))
	ref, _ := f.PushExample("hello", "v1", ocitest.Image)

	t.Run("decommission", func(t *testing.T) {
		f := f.For(t)
		f.Create(f.Pod("survivor", ref, fabrictest.Env("INTERVAL", "200ms")))
		p := f.WaitPod("survivor", 90*time.Second, fabrictest.PodReady)
		gone := f.DeviceOf(p)
		staleLog := newestLog(t, gone.Logs(p, "app"))

		f.WaitEdgeDevice(account+"."+gone.ID, "Online", 30*time.Second)
		deleted := time.Now()
		if out, err := f.Kubectl("delete", "edgedevice", account+"."+gone.ID); err != nil {
			t.Fatalf("kubectl delete edgedevice: %v\n%s", err, out)
		}
		moved := f.WaitPod("survivor", 90*time.Second, func(q *corev1.Pod) bool {
			d := q.Annotations[efv1.AnnotationDevice]
			return d != "" && d != gone.ID && fabrictest.PodReady(q)
		})
		took := time.Since(deleted)
		// The device-loss grace is 60 s: a pod moved well before it did not wait for it.
		if took > 40*time.Second {
			t.Errorf("pod Running elsewhere %v after the decommission; want it at once, not after the device-loss grace", took)
		}
		f.WaitEvent("survivor", efv1.ReasonDeviceRemoved, 10*time.Second)
		t.Logf("pod Running on %s %v after %s was decommissioned", moved.Annotations[efv1.AnnotationDevice], took.Round(100*time.Millisecond), gone.ID)

		// The agent is refused, on its stream and on reconnecting, and says why.
		f.WaitLog(gone.Proc, "device decommissioned: the hub refuses it; its workloads are stopped. Join it again with a new bootstrap token (edgeagent join --token-file)", 1, 30*time.Second)
		const refusal = "device " + "%s was decommissioned; join it again with a bootstrap token"
		want := strings.Replace(refusal, "%s", gone.ID, 1)
		deadline := time.Now().Add(60 * time.Second)
		for strings.Count(gone.Output(), want) < 3 {
			if time.Now().After(deadline) {
				t.Fatalf("agent %s did not log the refusal %q on reconnecting:\n%s", gone.ID, want, fabrictest.Tail(gone.Output(), 20))
			}
			time.Sleep(200 * time.Millisecond)
		}
		if !gone.Running() {
			t.Fatalf("the refused agent exited: %s", fabrictest.Tail(gone.Output(), 10))
		}
		// Its copy of the pod stopped.
		f.WaitFileStops(staleLog, 30*time.Second)
		out, err := exec.Command(f.AgentBin(), "status", "--data-dir", gone.DataDir).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "REFUSED: "+want) || !strings.Contains(string(out), "Workloads: 0") {
			t.Errorf("edgeagent status of the decommissioned device: %v\n%s", err, out)
		}
		// The object stays gone, and the node counts one device.
		f.WaitNode(func(n *corev1.Node) bool { return strings.HasPrefix(readyMessage(n), "1/1 devices ready") })
		if out, err := f.Kubectl("get", "edgedevice", account+"."+gone.ID); err == nil || !strings.Contains(out+err.Error(), "NotFound") {
			t.Errorf("kubectl get edgedevice %s after the decommission: %v\n%s", gone.ID, err, out)
		}

		// A restarted provider still refuses it: the revocation is kept.
		refused := strings.Count(gone.Output(), want)
		f.StopProvider()
		f.StartProvider()
		deadline = time.Now().Add(60 * time.Second)
		for strings.Count(gone.Output(), want) <= refused {
			if time.Now().After(deadline) {
				t.Fatalf("agent %s not refused by the restarted provider:\n%s", gone.ID, fabrictest.Tail(gone.Output(), 10))
			}
			time.Sleep(200 * time.Millisecond)
		}
		f.WaitNode(func(n *corev1.Node) bool { return strings.HasPrefix(readyMessage(n), "1/1 devices ready") })

		// Restarted with the same token, it stays out and runs nothing.
		gone.Stop(t, syscall.SIGKILL)
		f.RestartAgent(gone)
		f.WaitLog(gone.Proc, "device decommissioned: the hub refuses it; its workloads are stopped. Join it again with a new bootstrap token (edgeagent join --token-file)", 1, 30*time.Second)
		f.WaitFileStops(staleLog, 30*time.Second)
		out, err = exec.Command(f.AgentBin(), "status", "--data-dir", gone.DataDir).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "REFUSED: "+want) || !strings.Contains(string(out), "Workloads: 0") {
			t.Errorf("edgeagent status of the decommissioned device after a restart: %v\n%s", err, out)
		}
		if strings.Contains(gone.Output(), "joined the fabric") {
			t.Error("the decommissioned agent joined again with the token it had")
		}

		// A join with a new token brings the device back with a fresh certificate.
		const newToken = "rejoin-token-0123456789abcdef"
		f.CreateToken("bootstrap-token-rejoin", newToken, account, "")
		gone.Stop(t, syscall.SIGTERM)
		f.RestartAgent(gone, replaceFlag(gone.Args, "--token-file", f.TokenFile(newToken))...)
		f.WaitLog(gone.Proc, "joined the fabric", 1, 60*time.Second)
		f.WaitNode(func(n *corev1.Node) bool { return strings.HasPrefix(readyMessage(n), "2/2 devices ready") })
		f.WaitEdgeDevice(account+"."+gone.ID, "Online", 30*time.Second)
		out, err = exec.Command(f.AgentBin(), "status", "--data-dir", gone.DataDir).CombinedOutput()
		if err != nil || strings.Contains(string(out), "REFUSED") {
			t.Errorf("edgeagent status after the new join: %v\n%s", err, out)
		}
	})

	t.Run("offline past the GC period", func(t *testing.T) {
		f := f.For(t)
		a := f.Agent("dev-1")
		f.WaitEdgeDevice(account+".dev-1", "Online", 30*time.Second)
		a.Stop(t, syscall.SIGTERM)
		stopped := time.Now()
		f.WaitEdgeDevice(account+".dev-1", "", 60*time.Second)
		if took := time.Since(stopped); took < 8*time.Second {
			t.Errorf("EdgeDevice deleted %v after the device went offline, before --device-gc-after 8s", took)
		}
		f.WaitNode(func(n *corev1.Node) bool { return strings.HasPrefix(readyMessage(n), "1/1 devices ready") })
		if !strings.Contains(f.Provider().Output(), "device forgotten: offline longer than the device GC period") {
			t.Error("the provider did not log why it forgot dev-1")
		}
		// It comes back: it simply appears again.
		f.RestartAgent(a)
		f.WaitEdgeDevice(account+".dev-1", "Online", 60*time.Second)
		f.WaitNode(func(n *corev1.Node) bool { return strings.HasPrefix(readyMessage(n), "2/2 devices ready") })
	})
}
