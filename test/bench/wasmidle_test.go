package bench

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/edgefabric/edgefabric/test/fabrictest"
	"github.com/edgefabric/edgefabric/test/ocitest"
)

// BenchmarkWASMIdle measures what an idle WASM service costs its device: the
// agent's CPU time over 10 s with no pod, then over 10 s with one pod running
// examples/httpserver (WASM, a containerPort served from a preopened socket)
// that nobody sends a request to. An idle server should cost next to nothing:
// its module blocks in poll_oneoff until a socket is ready.
func BenchmarkWASMIdle(b *testing.B) {
	const window = 10 * time.Second
	f := startFabric(b, 1)
	agent := f.Agent("dev-0")
	if agent == nil {
		b.Fatal("no agent dev-0")
	}
	ref, _ := f.PushExample("httpserver", "v1", ocitest.Image)
	port := fabrictest.ServicePort(b)

	// Let the agent settle after its start (registration, first heartbeats).
	time.Sleep(5 * time.Second)
	without := procCPU(b, agent.Pid(), window)

	f.Create(f.Pod("web", ref, func(p *corev1.Pod) {
		p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: int32(port)}}
	}))
	f.WaitPod("web", 2*time.Minute, func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	waitHTTP(b, fmt.Sprintf("127.0.0.1:%d", port))
	time.Sleep(5 * time.Second) // past the first request and the pod's start
	with := procCPU(b, agent.Pid(), window)

	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(without.Milliseconds()), "agent-idle-ms")
	b.ReportMetric(float64(with.Milliseconds()), "agent-idle-pod-ms")
	report(b, "agent CPU over %s: %s without a pod, %s with one idle WASM httpserver pod (%.2f %% of one core)",
		window, without, with, 100*with.Seconds()/window.Seconds())
	f.CheckAlive()
}

// procCPU is the CPU time (user + system) process pid uses over d.
func procCPU(tb testing.TB, pid int, d time.Duration) time.Duration {
	tb.Helper()
	before := procCPUTime(tb, pid)
	time.Sleep(d)
	return procCPUTime(tb, pid) - before
}

// procCPUTime is the CPU time a process has used so far, from /proc/<pid>/stat.
func procCPUTime(tb testing.TB, pid int) time.Duration {
	tb.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Fatal(err)
	}
	s := string(raw)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		tb.Fatalf("/proc/%d/stat: %q", pid, s)
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}
