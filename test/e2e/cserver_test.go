package e2e

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/edgefabric/edgefabric/test/fabrictest"
	"github.com/edgefabric/edgefabric/test/ocitest"
)

// TestCServerPod runs examples/cserver, C built for WASI, as a pod: it
// serves its containerPort (fd 3, before a volume's preopened directory)
// through the pod's IP, becomes Ready by an httpGet probe, answers a garbage
// request with 400 and goes on serving, and runs as a WASI command by
// kubectl exec.
func TestCServerPod(t *testing.T) {
	f := startFabric(t, 1)
	ref := f.Registry + "/cserver:v1"
	ocitest.Push(t, ref, ocitest.BuildC(t, "examples/cserver"), ocitest.Image)
	port := fabrictest.ServicePort(t)
	f.Create(f.Pod("cweb", ref, func(p *corev1.Pod) {
		c := &p.Spec.Containers[0]
		c.Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: int32(port)}}
		c.ReadinessProbe = &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intstr.FromString("http")}},
			PeriodSeconds: 1,
		}
		p.Spec.Volumes = []corev1.Volume{{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
		c.VolumeMounts = []corev1.VolumeMount{{Name: "scratch", MountPath: "/scratch"}}
	}))
	p := f.WaitPod("cweb", 90*time.Second, fabrictest.PodReady)
	if p.Status.PodIP == "" {
		t.Fatal("no pod IP")
	}
	addr := net.JoinHostPort(p.Status.PodIP, strconv.Itoa(port))

	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}
	zeros := sha256.Sum256(make([]byte, 1024))
	for _, tt := range []struct {
		path   string
		status int
		body   string
	}{
		{"/", 200, "hello from cweb\n"},
		{"/work?n=1024", 200, hex.EncodeToString(zeros[:]) + "\n"},
		{"/nope", 404, "404 page not found\n"},
	} {
		if status, body := get(tt.path); status != tt.status || body != tt.body {
			t.Errorf("GET %s: got %d %q, want %d %q", tt.path, status, body, tt.status, tt.body)
		}
	}

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(c, "NOT HTTP AT ALL\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("garbage request: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("garbage request: got %s, want 400", resp.Status)
	}
	if status, body := get("/"); status != 200 || body != "hello from cweb\n" {
		t.Errorf("after a garbage request: got %d %q", status, body)
	}

	in := bytes.Repeat([]byte("edgefabric "), 10000)
	sum := sha256.Sum256(in)
	out, stderr, code := kubectl(f, bytes.NewReader(in), "exec", "-i", "cweb", "--", "module.wasm", "sha256")
	if want := fmt.Sprintf("%s %d\n", hex.EncodeToString(sum[:]), len(in)); code != 0 || out != want {
		t.Errorf("exec module.wasm sha256: got %q (exit %d, stderr %q), want %q", out, code, strings.TrimSpace(stderr), want)
	}
	f.CheckAlive()
}
