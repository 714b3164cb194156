package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgefabric/edgefabric/test/fabrictest"

	"k8s.io/client-go/kubernetes"
)

// report prints benchmark figures to standard output, under the
// benchmark's name, indented. testing.B keeps only ten lines of a
// benchmark's log, and these are what the benchmark is for.
func report(tb testing.TB, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	fmt.Printf("    %s: %s\n", tb.Name(), strings.ReplaceAll(msg, "\n", "\n    "))
}

// apiRequests counts the API server's requests by "VERB resource[/subresource]",
// from its apiserver_request_total metric. The difference of two readings is
// what every client asked for in between, the benchmark's own creates and
// watches included.
type apiRequests map[string]float64

var requestTotal = regexp.MustCompile(`^apiserver_request_total\{([^}]*)\} ([0-9.e+]+)$`)
var label = regexp.MustCompile(`(\w+)="([^"]*)"`)

func readAPIRequests(tb testing.TB, client kubernetes.Interface) apiRequests {
	tb.Helper()
	raw, err := client.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(context.Background())
	if err != nil {
		tb.Fatalf("read the API server's metrics: %v", err)
	}
	out := apiRequests{}
	for _, line := range strings.Split(string(raw), "\n") {
		m := requestTotal.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		labels := map[string]string{}
		for _, kv := range label.FindAllStringSubmatch(m[1], -1) {
			labels[kv[1]] = kv[2]
		}
		v, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			continue
		}
		key := labels["verb"] + " " + labels["resource"]
		if s := labels["subresource"]; s != "" {
			key += "/" + s
		}
		out[key] += v
	}
	return out
}

// since is r minus an earlier reading.
func (r apiRequests) since(before apiRequests) apiRequests {
	out := apiRequests{}
	for k, v := range r {
		if d := v - before[k]; d > 0 {
			out[k] = d
		}
	}
	return out
}

// writes is the number of mutating requests.
func (r apiRequests) writes() float64 {
	var n float64
	for k, v := range r {
		switch strings.SplitN(k, " ", 2)[0] {
		case "POST", "PUT", "PATCH", "DELETE", "DELETECOLLECTION":
			n += v
		}
	}
	return n
}

// String lists the counts per pod, largest first, without watches and lists.
func (r apiRequests) perPod(pods int) string {
	type kv struct {
		k string
		v float64
	}
	var all []kv
	for k, v := range r {
		verb := strings.SplitN(k, " ", 2)[0]
		if verb == "WATCH" || verb == "LIST" {
			continue
		}
		all = append(all, kv{k, v})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].v > all[j].v })
	var parts []string
	for _, e := range all {
		parts = append(parts, fmt.Sprintf("%s %.2f", e.k, e.v/float64(pods)))
	}
	return strings.Join(parts, ", ")
}

// profiler fetches Go profiles from a process's /debug/pprof/ handlers into a
// directory, when the benchmark was asked to (EDGEFABRIC_BENCH_PROFILE=dir).
type profiler struct {
	dir  string // empty: profiling off
	addr string // host:port of the process's debug listener
}

func newProfiler(tb testing.TB) *profiler {
	dir := os.Getenv("EDGEFABRIC_BENCH_PROFILE")
	if dir == "" {
		return &profiler{}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	return &profiler{dir: dir, addr: fabrictest.FreePort(tb)}
}

func (p *profiler) enabled() bool { return p.dir != "" }

// fetch saves /debug/pprof/<path> as file name in the directory; it blocks
// for as long as the profile takes.
func (p *profiler) fetch(tb testing.TB, path, name string) {
	if !p.enabled() {
		return
	}
	client := &http.Client{Timeout: 2 * time.Minute}
	resp, err := client.Get("http://" + p.addr + "/debug/pprof/" + path)
	if err != nil {
		tb.Logf("profile %s: %v", path, err)
		return
	}
	defer resp.Body.Close()
	f, err := os.Create(filepath.Join(p.dir, name))
	if err != nil {
		tb.Logf("profile %s: %v", path, err)
		return
	}
	defer f.Close()
	if _, err := io.Copy(f, resp.Body); err != nil {
		tb.Logf("profile %s: %v", path, err)
	}
}

// cpuTimes is the CPU time (user + system) used so far by this process and by
// each of its child processes (the API server, etcd, the provider, the
// agents), by command name; children of the same name are added up.
type cpuTimes map[string]time.Duration

func readCPUTimes() cpuTimes {
	out := cpuTimes{}
	self := os.Getpid()
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ... utime stime: fields 14 and 15, counted
		// after the parenthesised command, which may hold spaces.
		s := string(raw)
		open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || closing < open {
			continue
		}
		comm := s[open+1 : closing]
		f := strings.Fields(s[closing+1:])
		if len(f) < 13 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		if pid != self && ppid != self {
			continue
		}
		if pid == self {
			comm = "benchmark"
		}
		utime, _ := strconv.ParseInt(f[11], 10, 64)
		stime, _ := strconv.ParseInt(f[12], 10, 64)
		// Linux reports clock ticks of 1/100 s on every architecture Go supports.
		out[comm] += time.Duration(utime+stime) * 10 * time.Millisecond
	}
	return out
}

// since is t minus an earlier reading.
func (t cpuTimes) since(before cpuTimes) cpuTimes {
	out := cpuTimes{}
	for k, v := range t {
		if d := v - before[k]; d > 0 {
			out[k] = d
		}
	}
	return out
}

func (t cpuTimes) String() string {
	keys := make([]string, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return t[keys[i]] > t[keys[j]] })
	var parts []string
	var total time.Duration
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %.2f", k, t[k].Seconds()))
		total += t[k]
	}
	return fmt.Sprintf("%.2f s: %s", total.Seconds(), strings.Join(parts, ", "))
}
