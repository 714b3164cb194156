package e2e

import (
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/edgefabric/edgefabric/pkg/apis/hub/v1/reasons"
	"github.com/edgefabric/edgefabric/test/fabrictest"
	"github.com/edgefabric/edgefabric/test/ocitest"
)

// TestRustPod runs examples/rusthello, Rust built for WASI with rustc and its
// standard library, as pods: one that reads a configMap volume, writes an
// emptyDir and serves HTTP on its containerPort (before the volumes'
// preopened directories) through the pod's IP, is Ready by an httpGet probe,
// logs what it did and runs as a WASI command by kubectl exec; one that
// serves from a poll_oneoff loop on fd 3 (no volume); one that exits with a
// code (terminated with that exitCode); one that panics (a trap: Error with
// a non-zero exit code, restarted per its restartPolicy). Deleting the
// first server, blocked in accept, stops it.
func TestRustPod(t *testing.T) {
	f := startFabric(t, 1)
	ref := f.Registry + "/rusthello:v1"
	ocitest.Push(t, ref, ocitest.BuildRust(t, "examples/rusthello"), ocitest.Image)

	if _, err := f.Client.CoreV1().ConfigMaps(namespace).Create(t.Context(), &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "rust-greeting"},
		Data:       map[string]string{"greeting": "hi from a configMap\n"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	port := fabrictest.ServicePort(t)
	f.Create(f.Pod("rweb", ref, fabrictest.Env("READ_FILE", "/config/greeting", "WRITE_DIR", "/scratch", "SLEEP_MS", "100"), func(p *corev1.Pod) {
		c := &p.Spec.Containers[0]
		c.Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: int32(port)}}
		c.ReadinessProbe = &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intstr.FromString("http")}},
			PeriodSeconds: 1,
		}
		p.Spec.Volumes = []corev1.Volume{
			{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "rust-greeting"}}}},
			{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		}
		c.VolumeMounts = []corev1.VolumeMount{{Name: "config", MountPath: "/config"}, {Name: "scratch", MountPath: "/scratch"}}
	}))
	// The poll_oneoff server, with no volume: its socket is fd 3.
	pollPort := fabrictest.ServicePort(t)
	f.Create(f.Pod("rpoll", ref, fabrictest.Env("POLL", "1"), func(p *corev1.Pod) {
		c := &p.Spec.Containers[0]
		c.Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: int32(pollPort)}}
		c.ReadinessProbe = &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intstr.FromString("http")}},
			PeriodSeconds: 1,
		}
	}))
	f.Create(f.Pod("rexit", ref, fabrictest.RestartPolicy(corev1.RestartPolicyNever), func(p *corev1.Pod) {
		p.Spec.Containers[0].Args = []string{"exit", "3"}
	}))
	f.Create(f.Pod("rpanic", ref, fabrictest.RestartPolicy(corev1.RestartPolicyOnFailure), fabrictest.Env("PANIC", "boom")))

	t.Run("serves", func(t *testing.T) {
		p := f.WaitPod("rweb", 90*time.Second, fabrictest.PodReady)
		if p.Status.PodIP == "" {
			t.Fatal("no pod IP")
		}
		addr := net.JoinHostPort(p.Status.PodIP, strconv.Itoa(port))
		pp := f.WaitPod("rpoll", 90*time.Second, fabrictest.PodReady)
		pollAddr := net.JoinHostPort(pp.Status.PodIP, strconv.Itoa(pollPort))
		for _, tt := range []struct {
			addr, method, path, body string
			status                   int
			want                     string
		}{
			{addr, "GET", "/", "", 200, "hello from rust on rweb\n"},
			{addr, "GET", "/file", "", 200, "hi from a configMap\n"},
			{addr, "GET", "/env?WRITE_DIR", "", 200, "/scratch\n"},
			{addr, "POST", "/echo", "echo me", 200, "echo me"},
			{addr, "GET", "/nope", "", 404, "not found\n"},
			{pollAddr, "GET", "/", "", 200, "hello from rust on rpoll\n"},
			{pollAddr, "POST", "/echo", strings.Repeat("e", 200000), 200, strings.Repeat("e", 200000)},
		} {
			req, _ := http.NewRequestWithContext(t.Context(), tt.method, "http://"+tt.addr+tt.path, strings.NewReader(tt.body))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("%s %s: %v", tt.method, tt.path, err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status || string(b) != tt.want {
				t.Errorf("%s %s%s: got %d %.100q, want %d %.100q", tt.method, tt.addr, tt.path, resp.StatusCode, b, tt.status, tt.want)
			}
		}
	})

	t.Run("logs", func(t *testing.T) {
		want := []string{
			"hello from rust",
			`args: ["/app/module.wasm"]`,
			"env: READ_FILE=/config/greeting",
			"read /config/greeting: hi from a configMap",
			`wrote /scratch/rusthello.txt (1 lines); /scratch holds ["rusthello.txt"]`,
			"serving HTTP",
		}
		f.LogsUntil(30*time.Second, func(s string) bool {
			for _, w := range want {
				if !strings.Contains(s, w) {
					return false
				}
			}
			return strings.Contains(s, "slept ")
		}, "rweb")
	})

	t.Run("exec", func(t *testing.T) {
		for _, tt := range []struct {
			stdin    string
			args     []string
			wantOut  string
			wantErr  string
			wantCode int
		}{
			{"", []string{"module.wasm", "echo", "hi", "there"}, "hi there\n", "", 0},
			{"", []string{"module.wasm", "cat", "/config/greeting"}, "read /config/greeting: hi from a configMap\n", "", 0},
			{"", []string{"module.wasm", "cat", "/scratch/rusthello.txt"}, "read /scratch/rusthello.txt: written by rusthello\n", "", 0},
			{"typed in\n", []string{"module.wasm", "cat", "-"}, "read -: typed in\n", "", 0},
			{"", []string{"module.wasm", "exit", "7"}, "", "", 7},
			{"", []string{"module.wasm", "exit", "-1"}, "", "", 255},
			{"", []string{"module.wasm", "panic", "in exec"}, "", "panicked at 'in exec'", -1},
		} {
			args := []string{"exec", "rweb", "--"}
			var stdin io.Reader
			if tt.stdin != "" {
				args, stdin = []string{"exec", "-i", "rweb", "--"}, strings.NewReader(tt.stdin)
			}
			out, stderr, code := kubectl(f, stdin, append(args, tt.args...)...)
			if out != tt.wantOut || !strings.Contains(stderr, tt.wantErr) || (tt.wantCode >= 0 && code != tt.wantCode) || (tt.wantCode < 0 && code == 0) {
				t.Errorf("exec %v: got %q, stderr %q, exit %d; want %q, stderr with %q, exit %d (-1: not 0)", tt.args, out, stderr, code, tt.wantOut, tt.wantErr, tt.wantCode)
			}
		}
	})

	t.Run("exit code", func(t *testing.T) {
		p := f.WaitPod("rexit", 60*time.Second, func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
		cs := app(p)
		if term := cs.State.Terminated; term == nil || term.ExitCode != 3 || term.Reason != reasons.Error || cs.RestartCount != 0 {
			t.Errorf("got state %+v, restarts %d; want terminated, exit code 3 (Error), no restart", cs.State, cs.RestartCount)
		}
	})

	t.Run("panic", func(t *testing.T) {
		p := f.WaitPod("rpanic", 90*time.Second, func(p *corev1.Pod) bool { return app(p).RestartCount >= 1 })
		cs := app(p)
		last := cs.LastTerminationState.Terminated
		if p.Status.Phase != corev1.PodRunning || last == nil || last.ExitCode == 0 || last.Reason != reasons.Error {
			t.Errorf("got phase %s, lastState %+v; want Running (restarted on failure) after an Error with a non-zero exit code", p.Status.Phase, last)
		}
		f.LogsUntil(30*time.Second, func(s string) bool { return strings.Contains(s, "panicked at 'boom'") }, "rpanic", "--previous")
	})

	// The server is blocked in accept on its listener, which std::net
	// leaves blocking: deleting the pod must still stop it.
	t.Run("delete", func(t *testing.T) {
		if err := f.Client.CoreV1().Pods(namespace).Delete(t.Context(), "rweb", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		f.WaitPodGone("rweb", 60*time.Second)
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), 5*time.Second)
		if err == nil {
			c.Close()
			t.Errorf("port %d still accepts connections after the pod is gone", port)
		}
	})
	f.CheckAlive()
}
