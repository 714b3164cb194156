package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/edgefabric/edgefabric/pkg/apis/hub/v1/reasons"
	"github.com/edgefabric/edgefabric/test/fabrictest"
	"github.com/edgefabric/edgefabric/test/ocitest"
)

// TestVolumeEscape: a WASM module replaces the subPath of its emptyDir with
// a symbolic link whose relative target climbs out of the volume, then
// crashes so that the pod restarts. The agent must not mount the link's
// target at the next start: the module never reads or writes a file of the
// device outside its volume (examples/escape), and the container's start
// fails with a reason that says why.
func TestVolumeEscape(t *testing.T) {
	f := startFabric(t, 1)
	ref, _ := f.PushExample("escape", "v1", ocitest.Image)
	hostDir := t.TempDir()
	marker := filepath.Join(hostDir, "marker")
	if err := os.WriteFile(marker, []byte("the device's own file"), 0o644); err != nil {
		t.Fatal(err)
	}
	f.Create(f.Pod("escape", ref, fabrictest.Env("TARGET", marker), fabrictest.RestartPolicy(corev1.RestartPolicyAlways), func(p *corev1.Pod) {
		p.Spec.Volumes = []corev1.Volume{{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
		p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{
			{Name: "scratch", MountPath: "/vol"},
			{Name: "scratch", MountPath: "/data", SubPath: "l"},
		}
	}))
	// The first run links; the next start is refused.
	p := f.WaitPod("escape", 90*time.Second, func(p *corev1.Pod) bool {
		st := app(p)
		return st.RestartCount >= 1 && st.LastTerminationState.Terminated != nil &&
			st.LastTerminationState.Terminated.Reason == reasons.StartError
	})
	if term := app(p).LastTerminationState.Terminated; !strings.Contains(term.Message, "leads out of volume") {
		t.Errorf("start after the link: got %+v, want a StartError saying the subPath leads out of its volume", term)
	}
	logs, err := f.Kubectl("logs", "escape", "--previous")
	if err != nil {
		logs, _ = f.Kubectl("logs", "escape")
	}
	if strings.Contains(logs, "the device's own file") {
		t.Errorf("the module read the device's file:\n%s", logs)
	}
	if _, err := os.Lstat(marker + ".escaped"); err == nil {
		t.Errorf("the module wrote %s.escaped on the device", marker)
	}
	if b, err := os.ReadFile(marker); err != nil || string(b) != "the device's own file" {
		t.Errorf("marker: got %q (%v)", b, err)
	}
	f.CheckAlive()
}
