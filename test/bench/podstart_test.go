package bench

import (
	"context"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgefabric/edgefabric/test/fabrictest"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	efv1 "github.com/edgefabric/edgefabric/pkg/apis/edgefabric/v1alpha1"
)

const (
	// podStartPods is the burst size: that many Creates at once.
	podStartPods = 100
	// podStartAgents is how many agents the account's node spreads them over.
	podStartAgents = 3
	// burstRounds bursts of each provider per iteration; their pods are
	// pooled, as one round varies by ±30 % on a shared 2-core machine. Even,
	// so that each provider goes first as often as the other.
	burstRounds = 4
	// pacedPods pods are created one every pacedInterval to see the latency
	// of one pod on an idle fabric (the floor note's scenario B).
	pacedPods     = 50
	pacedInterval = 100 * time.Millisecond
	// roundTimeout bounds one round of podStartPods pods.
	roundTimeout = 5 * time.Minute
	// settle is the pause after the warm-up and between rounds, so that one
	// round's clean-up (deletes, events, GC) does not run into the next.
	settle = 5 * time.Second
)

// BenchmarkPodStart measures pod start latency: from Create returning until a
// separate watch sees the pod Ready, for a burst of 100 pods bound by
// spec.nodeName to the account's virtual node over 3 real agents with the
// image already on every agent, and the same for the minimal in-process
// virtual-kubelet provider (baselineProvider) on the same API server in the
// same run. It reports p50, p99 and wall time of both, and the ratios
// ours/baseline; then the same for 50 pods created one every 100 ms. After
// one uncounted burst of each, each iteration runs four bursts and one paced
// round of each provider, in alternating order, and pools their pods; run it
// with -benchtime 1x.
//
// It runs twice, each on a fabric of its own: with examples/pause, the least
// a workload can be (as Kubernetes measures its pod startup SLO with pause
// pods), for edgefabric's own cost of starting a pod; and with
// examples/hello, a Go module, whose Go runtime starting inside each
// instance costs about 1 ms of the agents' CPU per pod on top.
func BenchmarkPodStart(b *testing.B) {
	b.Run("pause", func(b *testing.B) { podStart(b, "pause", pushPause) })
	b.Run("go-hello", func(b *testing.B) { podStart(b, "hello", pushHello) })
}

// podStart is BenchmarkPodStart for the image push returns, its container
// named container.
func podStart(b *testing.B, container string, push func(*fabrictest.Fabric) string) {
	prof := newProfiler(b)
	agentProf := newProfiler(b) // the first agent's
	var opts []fabrictest.FabricOption
	if prof.enabled() {
		opts = append(opts, fabrictest.WithProviderArgs("--debug-listen", prof.addr), fabrictest.WithAgentDebug(func(i int) string {
			if i == 0 {
				return agentProf.addr
			}
			return "127.0.0.1:0"
		}))
	}
	f := startFabric(b, podStartAgents, opts...)
	image := push(f)
	base := startBaseline(b, f.Env.Config)

	ours := podRound{name: "edgefabric", node: nodeName, taint: "edgefabric", image: image, container: container}
	if prof.enabled() {
		// Profile the provider and an agent through the first burst: CPU
		// for 10 s, and what their goroutines wait on a few times early in
		// the burst.
		ours.during = func() func() {
			var wg sync.WaitGroup
			wg.Go(func() { prof.fetch(b, "profile?seconds=10", "provider-cpu.pprof") })
			wg.Go(func() { agentProf.fetch(b, "profile?seconds=10", "agent-dev-0-cpu.pprof") })
			wg.Go(func() {
				time.Sleep(200 * time.Millisecond)
				prof.fetch(b, "goroutine?debug=1", "provider-goroutines-200ms.txt")
				time.Sleep(300 * time.Millisecond)
				prof.fetch(b, "goroutine?debug=1", "provider-goroutines-500ms.txt")
			})
			wg.Go(func() {
				time.Sleep(100 * time.Millisecond)
				agentProf.fetch(b, "goroutine?debug=1", "agent-dev-0-goroutines-100ms.txt")
				time.Sleep(100 * time.Millisecond)
				agentProf.fetch(b, "goroutine?debug=1", "agent-dev-0-goroutines-200ms.txt")
			})
			return wg.Wait
		}
	}
	ours.runningAt = func(device string, uid types.UID) time.Time { return firstLogLine(f, device, uid, container) }
	baseline := podRound{name: "baseline", node: baselineNode, taint: "baseline", image: image, container: container, createdAt: base.createdAt}

	// Warm-up, uncounted: one pod per agent pulls the image and compiles the
	// module there (one at a time, so that placement spreads them), and one
	// pod on the baseline node.
	cold := ours.warmUp(b, f.Client, podStartAgents)
	devices := map[string]bool{}
	for _, p := range cold.pods {
		devices[p.device] = true
	}
	if len(devices) != podStartAgents {
		b.Fatalf("warm-up pods landed on %d devices, want %d: %v", len(devices), podStartAgents, devices)
	}
	baseline.warmUp(b, f.Client, 1)
	time.Sleep(settle)
	// One uncounted burst each: the first burst after start-up pays once
	// for what later ones do not (heaps and caches growing in every
	// process).
	for _, r := range []*podRound{&baseline, &ours} {
		r.burst(b, f.Client, podStartPods)
		r.cleanUp(b, f.Client)
		time.Sleep(settle)
	}

	var oursAll, baseAll, oursPaced, basePaced roundStats
	b.ResetTimer()
	for i := range b.N {
		for j := range burstRounds {
			order := []*podRound{&baseline, &ours}
			if (i*burstRounds+j)%2 == 1 {
				order = []*podRound{&ours, &baseline}
			}
			for _, r := range order {
				st := r.burst(b, f.Client, podStartPods)
				report(b, "%-10s burst %d: %s", r.name, i*burstRounds+j, st.summary())
				if r == &ours {
					oursAll.add(st)
				} else {
					baseAll.add(st)
				}
				r.cleanUp(b, f.Client)
				time.Sleep(settle)
			}
		}
		order := []*podRound{&baseline, &ours}
		if i%2 == 1 {
			order = []*podRound{&ours, &baseline}
		}
		for _, r := range order {
			st := r.paced(b, f.Client, pacedPods, pacedInterval)
			report(b, "%-10s paced %d: %s", r.name, i, st.summary())
			if r == &ours {
				oursPaced.add(st)
			} else {
				basePaced.add(st)
			}
			r.cleanUp(b, f.Client)
			time.Sleep(settle)
		}
	}
	b.StopTimer()

	o50, o99 := oursAll.percentile(0.50), oursAll.percentile(0.99)
	b50, b99 := baseAll.percentile(0.50), baseAll.percentile(0.99)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(ms(o50), "p50-ms")
	b.ReportMetric(ms(o99), "p99-ms")
	b.ReportMetric(oursAll.meanWall().Seconds(), "wall-s")
	b.ReportMetric(ms(b50), "base-p50-ms")
	b.ReportMetric(ms(b99), "base-p99-ms")
	b.ReportMetric(baseAll.meanWall().Seconds(), "base-wall-s")
	b.ReportMetric(ratio(o50, b50), "ratio-p50")
	b.ReportMetric(ratio(o99, b99), "ratio-p99")
	oReady, _ := oursAll.sinceStart(func(p podTimes) time.Time { return p.ready })
	bReady, _ := baseAll.sinceStart(func(p podTimes) time.Time { return p.ready })
	b.ReportMetric(ms(oReady), "ready-p50-ms")
	b.ReportMetric(ms(bReady), "base-ready-p50-ms")
	op50, bp50 := oursPaced.percentile(0.5), basePaced.percentile(0.5)
	b.ReportMetric(ms(op50), "paced-p50-ms")
	b.ReportMetric(ms(bp50), "base-paced-p50-ms")
	report(b, "cold start, first pod per agent (pull + compile + start), create→Ready: %s", cold.coldSummary())
	report(b, "burst of %d pods, create→Ready over %d round(s):\n"+
		"  %-10s p50 %6.0f ms  p90 %6.0f ms  p99 %6.0f ms  max %6.0f ms  wall %5.2f s  create→placed p50 %4.0f ms\n"+
		"  %-10s p50 %6.0f ms  p90 %6.0f ms  p99 %6.0f ms  max %6.0f ms  wall %5.2f s  create→placed p50 %4.0f ms\n"+
		"  ratio ours/baseline: p50 %.2f  p99 %.2f  (target ≤ 1.5)\n"+
		"  from the first Create of a burst to Ready, p50: edgefabric %.0f ms, baseline %.0f ms, ratio %.2f",
		podStartPods, len(oursAll.walls),
		"edgefabric", ms(o50), ms(oursAll.percentile(0.90)), ms(o99), ms(oursAll.percentile(1)), oursAll.meanWall().Seconds(), ms(oursAll.placedPercentile(0.5)),
		"baseline", ms(b50), ms(baseAll.percentile(0.90)), ms(b99), ms(baseAll.percentile(1)), baseAll.meanWall().Seconds(), ms(baseAll.placedPercentile(0.5)),
		ratio(o50, b50), ratio(o99, b99),
		ms(oReady), ms(bReady), ratio(oReady, bReady))
	report(b, "%d pods, one every %s, create→Ready:\n"+
		"  %-10s p50 %6.1f ms  p90 %6.1f ms  p99 %6.1f ms\n"+
		"  %-10s p50 %6.1f ms  p90 %6.1f ms  p99 %6.1f ms\n"+
		"  ratio ours/baseline: p50 %.2f  p99 %.2f",
		pacedPods, pacedInterval,
		"edgefabric", ms(op50), ms(oursPaced.percentile(0.9)), ms(oursPaced.percentile(0.99)),
		"baseline", ms(bp50), ms(basePaced.percentile(0.9)), ms(basePaced.percentile(0.99)),
		ratio(op50, bp50), ratio(oursPaced.percentile(0.99), basePaced.percentile(0.99)))
}

// podRound creates pods for one node and watches them become Ready.
type podRound struct {
	name  string // for the report
	node  string
	taint string // value of the node's virtual-kubelet.io/provider taint
	image string
	// container is the name of the pod's one container; "hello" if empty.
	container string
	// createdAt, if set, says when the provider's CreatePod saw the pod;
	// otherwise the first sight of the device annotation stands for it.
	createdAt func(namespace, name string) (time.Time, bool)
	// runningAt, if set, says when the workload of the pod with this UID
	// began to run on the device.
	runningAt func(device string, uid types.UID) time.Time
	// during, if set, is started with each burst; the burst calls what it
	// returns once its pods are Ready.
	during func() (wait func())

	seq int // rounds so far, for pod names
}

// podTimes is what one pod went through.
type podTimes struct {
	name    string
	device  string
	start   time.Time // the first Create of the round was sent
	created time.Time // Create returned
	placed  time.Time // CreatePod called (baseline), or the device annotation seen (ours: it comes with the first status)
	running time.Time // ours: the workload's first log line on the device (zero for the baseline)
	ready   time.Time // the watch saw Ready
}

type roundStats struct {
	pods  []podTimes
	walls []time.Duration
	api   apiRequests // requests the API server served during the round
	cpu   cpuTimes    // CPU time the processes used during the round
}

// sinceStart returns the p50 and max of when the pods reached a point, from
// the first Create of their round.
func (s roundStats) sinceStart(at func(podTimes) time.Time) (p50, maxT time.Duration) {
	var d []time.Duration
	for _, p := range s.pods {
		if t := at(p); !t.IsZero() {
			d = append(d, t.Sub(p.start))
		}
	}
	slices.Sort(d)
	return percentile(d, 0.5), percentile(d, 1)
}

func (s *roundStats) add(o roundStats) {
	s.pods = append(s.pods, o.pods...)
	s.walls = append(s.walls, o.walls...)
}

func (s roundStats) latencies() []time.Duration {
	out := make([]time.Duration, 0, len(s.pods))
	for _, p := range s.pods {
		out = append(out, p.ready.Sub(p.created))
	}
	slices.Sort(out)
	return out
}

func (s roundStats) percentile(q float64) time.Duration { return percentile(s.latencies(), q) }

func (s roundStats) placedPercentile(q float64) time.Duration {
	var out []time.Duration
	for _, p := range s.pods {
		if !p.placed.IsZero() {
			out = append(out, p.placed.Sub(p.created))
		}
	}
	slices.Sort(out)
	return percentile(out, q)
}

func (s roundStats) meanWall() time.Duration {
	if len(s.walls) == 0 {
		return 0
	}
	var sum time.Duration
	for _, w := range s.walls {
		sum += w
	}
	return sum / time.Duration(len(s.walls))
}

func (s roundStats) summary() string {
	c50, cmax := s.sinceStart(func(p podTimes) time.Time { return p.created })
	p50, pmax := s.sinceStart(func(p podTimes) time.Time { return p.placed })
	r50, rmax := s.sinceStart(func(p podTimes) time.Time { return p.ready })
	running, each := "", ""
	if u50, umax := s.sinceStart(func(p podTimes) time.Time { return p.running }); umax > 0 {
		running = fmt.Sprintf(", running %.0f/%.0f", ms(u50), ms(umax))
		each = fmt.Sprintf("\n      each pod (p50): Create returned → running on its device %.1f ms → Ready %.1f ms",
			ms(s.between(func(p podTimes) time.Time { return p.created }, func(p podTimes) time.Time { return p.running })),
			ms(s.between(func(p podTimes) time.Time { return p.running }, func(p podTimes) time.Time { return p.ready })))
	} else if _, pmax := s.sinceStart(func(p podTimes) time.Time { return p.placed }); pmax > 0 {
		each = fmt.Sprintf("\n      each pod (p50): Create returned → CreatePod %.1f ms → Ready %.1f ms",
			ms(s.between(func(p podTimes) time.Time { return p.created }, func(p podTimes) time.Time { return p.placed })),
			ms(s.between(func(p podTimes) time.Time { return p.placed }, func(p podTimes) time.Time { return p.ready })))
	}
	return fmt.Sprintf("p50 %.0f ms, p90 %.0f ms, p99 %.0f ms, max %.0f ms, wall %.2f s, create→placed p50 %.0f ms\n"+
		"      from the first Create (p50/max ms): Create returned %.0f/%.0f%s, placed %.0f/%.0f, Ready %.0f/%.0f%s\n"+
		"      API writes per pod %.1f: %s\n"+
		"      CPU time until the last Ready %s",
		ms(s.percentile(0.5)), ms(s.percentile(0.9)), ms(s.percentile(0.99)), ms(s.percentile(1)), s.meanWall().Seconds(), ms(s.placedPercentile(0.5)),
		ms(c50), ms(cmax), running, ms(p50), ms(pmax), ms(r50), ms(rmax), each,
		s.api.writes()/float64(len(s.pods)), s.api.perPod(len(s.pods)), s.cpu)
}

// between is the p50 over the pods of the time from one point to another,
// where both are known.
func (s roundStats) between(from, to func(podTimes) time.Time) time.Duration {
	var d []time.Duration
	for _, p := range s.pods {
		if f, t := from(p), to(p); !f.IsZero() && !t.IsZero() {
			d = append(d, t.Sub(f))
		}
	}
	slices.Sort(d)
	return percentile(d, 0.5)
}

func (s roundStats) coldSummary() string {
	var parts []string
	for _, p := range s.pods {
		parts = append(parts, fmt.Sprintf("%s %.0f ms", p.device, ms(p.ready.Sub(p.created))))
	}
	return strings.Join(parts, ", ")
}

// firstLogLine is the time of the first line the container logged on the
// device (its CRI log line's timestamp), or zero.
func firstLogLine(f *fabrictest.Fabric, device string, uid types.UID, container string) time.Time {
	a := f.Agent(device)
	if a == nil {
		return time.Time{}
	}
	raw, err := os.ReadFile(a.Logs(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{UID: uid}}, container).Current(0))
	if err != nil {
		return time.Time{}
	}
	ts, _, _ := strings.Cut(string(raw), " ")
	t, _ := time.Parse(time.RFC3339Nano, ts)
	return t
}

// percentile is the nearest-rank percentile of sorted durations.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return math.Inf(1)
	}
	return float64(a) / float64(b)
}

func (r *podRound) pod(label string, i int) *corev1.Pod {
	container := r.container
	if container == "" {
		container = "hello"
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:      fmt.Sprintf("%s-%s-%03d", r.name, label, i),
			Namespace: namespace,
			Labels:    map[string]string{"bench-round": r.name + "-" + label},
		},
		Spec: corev1.PodSpec{
			NodeName:                      r.node,
			TerminationGracePeriodSeconds: new(int64(1)),
			Tolerations: []corev1.Toleration{{
				Key: "virtual-kubelet.io/provider", Operator: corev1.TolerationOpEqual, Value: r.taint, Effect: corev1.TaintEffectNoSchedule,
			}},
			Containers: []corev1.Container{{
				Name:  container,
				Image: r.image,
				// hello idles: one line an hour.
				Env: []corev1.EnvVar{{Name: "INTERVAL", Value: "1h"}},
			}},
		},
	}
}

// warmUp creates n pods one after the other, each after the one before is
// Ready, and leaves them for cleanUp.
func (r *podRound) warmUp(tb testing.TB, client kubernetes.Interface, n int) roundStats {
	tb.Helper()
	label := "warm"
	w := r.watch(tb, client, label)
	defer w.stop()
	var out roundStats
	for i := range n {
		p := r.pod(label, i)
		if _, err := client.CoreV1().Pods(namespace).Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
			tb.Fatal(err)
		}
		created := time.Now()
		t := w.waitReady(tb, p.Name, roundTimeout)
		t.created = created
		out.pods = append(out.pods, t)
	}
	r.cleanUp(tb, client)
	return out
}

// burst creates n pods at once, each from a goroutine of its own, and waits
// until all are Ready.
func (r *podRound) burst(tb testing.TB, client kubernetes.Interface, n int) roundStats {
	return r.round(tb, client, n, 0)
}

// paced creates n pods one every interval and waits until all are Ready.
func (r *podRound) paced(tb testing.TB, client kubernetes.Interface, n int, interval time.Duration) roundStats {
	return r.round(tb, client, n, interval)
}

func (r *podRound) round(tb testing.TB, client kubernetes.Interface, n int, interval time.Duration) roundStats {
	tb.Helper()
	r.seq++
	label := fmt.Sprintf("r%d", r.seq)
	w := r.watch(tb, client, label)
	defer w.stop()

	created := make([]time.Time, n)
	uids := make([]types.UID, n)
	pods := make([]*corev1.Pod, n)
	for i := range n {
		pods[i] = r.pod(label, i)
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	apiBefore := readAPIRequests(tb, client)
	cpuBefore := readCPUTimes()
	wait := func() {}
	if r.during != nil {
		wait = r.during()
	}
	start := time.Now()
	for i := range n {
		time.Sleep(time.Until(start.Add(time.Duration(i) * interval)))
		wg.Go(func() {
			p, err := client.CoreV1().Pods(namespace).Create(context.Background(), pods[i], metav1.CreateOptions{})
			if err != nil {
				errs <- err
				return
			}
			created[i], uids[i] = time.Now(), p.UID
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		tb.Fatal(err)
	}
	var out roundStats
	var last time.Time
	for i, p := range pods {
		t := w.waitReady(tb, p.Name, roundTimeout-time.Since(start))
		t.created = created[i]
		if r.createdAt != nil {
			t.placed, _ = r.createdAt(namespace, p.Name)
		}
		if r.runningAt != nil {
			t.running = r.runningAt(t.device, uids[i])
		}
		out.pods = append(out.pods, t)
		if t.ready.After(last) {
			last = t.ready
		}
	}
	out.walls = []time.Duration{last.Sub(start)}
	for i := range out.pods {
		out.pods[i].start = start
	}
	out.cpu = readCPUTimes().since(cpuBefore)
	out.api = readAPIRequests(tb, client).since(apiBefore)
	wait()
	return out
}

// cleanUp deletes every pod of the round's node and waits until they are gone.
func (r *podRound) cleanUp(tb testing.TB, client kubernetes.Interface) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	sel := "spec.nodeName=" + r.node
	if err := client.CoreV1().Pods(namespace).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{FieldSelector: sel}); err != nil {
		tb.Fatal(err)
	}
	for {
		l, err := client.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{FieldSelector: sel})
		if err != nil {
			tb.Fatalf("waiting for the pods of %s to go: %v", r.node, err)
		}
		if len(l.Items) == 0 {
			return
		}
		select {
		case <-ctx.Done():
			tb.Fatalf("%d pods of %s still there after 3 minutes", len(l.Items), r.node)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// podWatch is a watch of one round's pods, separate from anything the
// providers run, that notes when each pod is first seen Ready and first seen
// with a device annotation.
type podWatch struct {
	stop func()

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every record
	times   map[string]*podTimes
	last    map[string]*corev1.Pod // as last seen, to say why a pod is late
}

func (r *podRound) watch(tb testing.TB, client kubernetes.Interface, label string) *podWatch {
	tb.Helper()
	w := &podWatch{changed: make(chan struct{}), times: map[string]*podTimes{}, last: map[string]*corev1.Pod{}}
	sel := "bench-round=" + r.name + "-" + label
	lw := cache.NewFilteredListWatchFromClient(client.CoreV1().RESTClient(), "pods", namespace, func(o *metav1.ListOptions) {
		o.LabelSelector = sel
	})
	inf := cache.NewSharedIndexInformer(lw, &corev1.Pod{}, 0, cache.Indexers{})
	record := func(obj any) {
		p, ok := obj.(*corev1.Pod)
		if !ok {
			return
		}
		now := time.Now()
		w.mu.Lock()
		defer w.mu.Unlock()
		w.last[p.Name] = p
		t := w.times[p.Name]
		if t == nil {
			t = &podTimes{name: p.Name}
			w.times[p.Name] = t
		}
		if d := p.Annotations[efv1.AnnotationDevice]; d != "" && t.device == "" {
			t.device, t.placed = d, now
		}
		if t.ready.IsZero() && fabrictest.PodReady(p) {
			t.ready = now
			close(w.changed)
			w.changed = make(chan struct{})
		}
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    record,
		UpdateFunc: func(_, obj any) { record(obj) },
	}); err != nil {
		tb.Fatal(err)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		inf.Run(stop)
	}()
	w.stop = func() {
		close(stop)
		<-done
	}
	if !cache.WaitForCacheSync(stop, inf.HasSynced) {
		tb.Fatal("pod watch did not sync")
	}
	return w
}

// waitReady waits until the pod was seen Ready and returns what was seen.
func (w *podWatch) waitReady(tb testing.TB, name string, timeout time.Duration) podTimes {
	tb.Helper()
	deadline := time.After(timeout)
	for {
		w.mu.Lock()
		t := w.times[name]
		changed := w.changed
		w.mu.Unlock()
		if t != nil && !t.ready.IsZero() {
			return *t
		}
		select {
		case <-changed:
		case <-deadline:
			w.mu.Lock()
			p := w.last[name]
			w.mu.Unlock()
			if p == nil {
				tb.Fatalf("pod %s not Ready within %s, and never seen", name, timeout)
			}
			tb.Fatalf("pod %s not Ready within %s; last seen: device %q, status %+v",
				name, timeout, p.Annotations[efv1.AnnotationDevice], p.Status)
		}
	}
}
