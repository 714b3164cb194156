package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgefabric/edgefabric/test/fabrictest"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

const (
	// rssWorkloads is how many idle hello workloads the agent runs.
	rssWorkloads = 10
	// rssSettle is how long the agent is left alone after the last workload
	// is Ready before its memory is read.
	rssSettle = 60 * time.Second
)

// BenchmarkAgentIdleRSS measures the resident memory of one agent running 10
// idle workloads: VmRSS from /proc/<pid>/status once they have run for a
// minute. The target is under 40 MB (10^6 bytes, as all figures here) with
// examples/hello (one line an hour).
//
// For hello it reads the agent with no workloads, with the ten right after
// it first pulled and compiled the module ("fresh"), and after it was
// restarted on the same data directory, so that it resumed them from its
// store with the compiled module from its on-disk cache ("restarted"). For
// examples/pause, a module with one page of memory, it reads the agent
// with ten of those: that is the agent's own cost per workload, without a Go
// runtime's in each (skipped if wat2wasm is not installed).
func BenchmarkAgentIdleRSS(b *testing.B) {
	b.Run("hello", func(b *testing.B) {
		var empty, fresh, restarted procMemory
		for range b.N {
			f := startFabric(b, 1)
			image := pushHello(f)
			a := f.Agent("dev-0")
			empty = settleAndRead(b, "no workloads", a.Pid(), 30*time.Second)
			r := runIdle(f, image, "hello")
			fresh = settleAndRead(b, "fresh", a.Pid(), rssSettle)

			// Restart the agent: the workloads come back from its store.
			a.Stop(b, syscall.SIGTERM)
			f.RestartAgent(a)
			f.WaitNode(func(n *corev1.Node) bool { return fabrictest.ReadyDevices(n) == 1 })
			f.WaitLog(a.Proc, "resuming workloads from store", 1, time.Minute)
			waitPods(b, f.Client, "bench-round=rss-idle", func(p *corev1.Pod) bool {
				return fabrictest.PodReady(p) && len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].RestartCount >= 1
			})
			restarted = settleAndRead(b, "restarted", a.Pid(), rssSettle)
			r.cleanUp(b, f.Client)
		}
		b.ReportMetric(0, "ns/op")
		b.ReportMetric(float64(empty.rss)/1e6, "empty-RSS-MB")
		b.ReportMetric(float64(fresh.rss)/1e6, "fresh-RSS-MB")
		b.ReportMetric(float64(restarted.rss)/1e6, "restarted-RSS-MB")
		b.ReportMetric(float64(fresh.pss)/1e6, "fresh-PSS-MB")
		report(b, "agent memory (target VmRSS < 40 MB with %d idle hello workloads):\n"+
			"  no workloads            %s\n  %d workloads, fresh     %s\n  %d workloads, restarted %s\n"+
			"  per workload (fresh − no workloads) / %d: %.1f MB",
			rssWorkloads, empty, rssWorkloads, fresh, rssWorkloads, restarted,
			rssWorkloads, float64(fresh.rss-empty.rss)/rssWorkloads/1e6)
	})
	b.Run("pause", func(b *testing.B) {
		var empty, loaded procMemory
		for range b.N {
			f := startFabric(b, 1)
			ref := pushPause(f)
			a := f.Agent("dev-0")
			empty = settleAndRead(b, "no workloads", a.Pid(), 30*time.Second)
			r := runIdle(f, ref, "pause")
			loaded = settleAndRead(b, "pause", a.Pid(), rssSettle)
			r.cleanUp(b, f.Client)
		}
		b.ReportMetric(0, "ns/op")
		b.ReportMetric(float64(empty.rss)/1e6, "empty-RSS-MB")
		b.ReportMetric(float64(loaded.rss)/1e6, "RSS-MB")
		report(b, "agent memory with %d pause workloads:\n  no workloads  %s\n  %d workloads  %s\n  per workload: %.2f MB",
			rssWorkloads, empty, rssWorkloads, loaded, float64(loaded.rss-empty.rss)/rssWorkloads/1e6)
	})
}

// runIdle creates rssWorkloads pods of image, idle (hello prints a line an
// hour), on the account's node and waits until they are Ready.
func runIdle(f *fabrictest.Fabric, image, container string) *podRound {
	f.T().Helper()
	r := &podRound{name: "rss", node: nodeName, taint: "edgefabric", image: image, container: container}
	label := "idle"
	w := r.watch(f.T(), f.Client, label)
	defer w.stop()
	for i := range rssWorkloads {
		if _, err := f.Client.CoreV1().Pods(namespace).Create(context.Background(), r.pod(label, i), metav1.CreateOptions{}); err != nil {
			f.T().Fatal(err)
		}
	}
	for i := range rssWorkloads {
		w.waitReady(f.T(), r.pod(label, i).Name, roundTimeout)
	}
	return r
}

// procMemory is what /proc/<pid>/status says of a process's memory.
// Pss, from /proc/<pid>/smaps_rollup, counts a page that n mappings share
// as 1/n in each: the physical memory the process costs, where VmRSS counts
// a page once per mapping (ten instances that map one module's data image
// count its pages ten times in VmRSS, once in Pss).
type procMemory struct {
	rss, anon, file, hwm, pss int64 // bytes
}

func (m procMemory) String() string {
	mb := func(v int64) float64 { return float64(v) / 1e6 }
	return fmt.Sprintf("VmRSS %5.1f MB (anon %5.1f, file %4.1f), Pss %5.1f MB, VmHWM %5.1f MB", mb(m.rss), mb(m.anon), mb(m.file), mb(m.pss), mb(m.hwm))
}

func readProcMemory(pid int) (procMemory, error) {
	var m procMemory
	for _, file := range []string{"status", "smaps_rollup"} {
		if err := readProcKB(fmt.Sprintf("/proc/%d/%s", pid, file), &m); err != nil {
			return m, err
		}
	}
	return m, nil
}

// readProcKB reads the "Key: n kB" lines of a /proc file into m.
func readProcKB(path string, m *procMemory) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) != 2 || fields[1] != "kB" {
			continue
		}
		n, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "VmRSS":
			m.rss = n << 10
		case "RssAnon":
			m.anon = n << 10
		case "RssFile":
			m.file = n << 10
		case "VmHWM":
			m.hwm = n << 10
		case "Pss":
			m.pss = n << 10
		}
	}
	return sc.Err()
}

// settleAndRead waits settle, logging the agent's memory every 10 s, and
// returns the last reading.
func settleAndRead(tb testing.TB, what string, pid int, settle time.Duration) procMemory {
	tb.Helper()
	var m procMemory
	var trace []string
	for t := time.Duration(0); ; t += 10 * time.Second {
		var err error
		if m, err = readProcMemory(pid); err != nil {
			tb.Fatal(err)
		}
		trace = append(trace, fmt.Sprintf("%.0fs %.1f", t.Seconds(), float64(m.rss)/1e6))
		if t >= settle {
			break
		}
		time.Sleep(10 * time.Second)
	}
	report(tb, "%s: VmRSS MB over time: %s\n    by mapping: %s", what, strings.Join(trace, ", "), smapsSummary(pid))
	return m
}

// waitPods polls the pods with label selector sel until cond holds for all.
func waitPods(tb testing.TB, client kubernetes.Interface, sel string, cond func(*corev1.Pod) bool) {
	tb.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		l, err := client.CoreV1().Pods(namespace).List(context.Background(), metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			tb.Fatal(err)
		}
		ok := len(l.Items) > 0
		for i := range l.Items {
			ok = ok && cond(&l.Items[i])
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			var states []string
			for _, p := range l.Items {
				for _, cs := range p.Status.ContainerStatuses {
					states = append(states, fmt.Sprintf("%s: phase %s ready %v restarts %d state %+v", p.Name, p.Status.Phase, cs.Ready, cs.RestartCount, cs.State))
				}
			}
			tb.Fatalf("pods %s: condition not met within 2 minutes:\n%s", sel, strings.Join(states, "\n"))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// smapsSummary adds up a process's resident memory by kind of mapping, from
// /proc/<pid>/smaps: anonymous read-write (the Go heap, linear memories,
// stacks), anonymous executable (compiled WASM code not mapped from a file),
// the binary, executable mappings of other files (compiled WASM code mapped
// from the compilation cache) and other files (the modules' data images).
func smapsSummary(pid int) string {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		return err.Error()
	}
	exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	sums := map[string]int64{}
	kind := ""
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if !strings.HasSuffix(f[0], ":") { // a mapping: addr perms offset dev inode [path]
			path := ""
			if len(f) >= 6 {
				path = f[5]
			}
			exec := strings.Contains(f[1], "x")
			switch {
			case path == exe:
				kind = "binary"
			case path != "" && !strings.HasPrefix(path, "[") && exec:
				kind = "code-file"
			case path != "" && !strings.HasPrefix(path, "["):
				kind = "file"
			case exec:
				kind = "anon-exec"
			default:
				kind = "anon-rw"
			}
			continue
		}
		if f[0] == "Rss:" && len(f) >= 2 {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			sums[kind] += n << 10
		}
	}
	mb := func(v int64) float64 { return float64(v) / 1e6 }
	return fmt.Sprintf("anon-rw %.1f MB (Go heap, linear memories, stacks), compiled code %.1f MB anonymous + %.1f MB mapped from the cache, binary %.1f MB, other files %.1f MB (module data images)",
		mb(sums["anon-rw"]), mb(sums["anon-exec"]), mb(sums["code-file"]), mb(sums["binary"]), mb(sums["file"]))
}
