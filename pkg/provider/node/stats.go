package node

import (
	"context"
	"sort"
	"time"

	dto "github.com/prometheus/client_model/go"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	statsv1alpha1 "k8s.io/kubelet/pkg/apis/stats/v1alpha1"

	hubv1 "github.com/edgefabric/edgefabric/pkg/apis/hub/v1"
)

// podUsage is one pod's usage as its device last reported it.
type podUsage struct {
	node, namespace, name, uid string
	cur, prev                  *hubv1.WorkloadUsage
}

// usages returns the reported usage of every pod of every node, ordered.
func usages(m *Manager, nodes []*clusterNode) []podUsage {
	var out []podUsage
	for _, n := range nodes {
		n.mu.Lock()
		var pods []podUsage
		for uid, st := range n.byUID {
			pods = append(pods, podUsage{node: n.name, namespace: st.Pod.Namespace, name: st.Pod.Name, uid: uid})
		}
		n.mu.Unlock()
		for _, p := range pods {
			p.cur, p.prev = m.fab.Usage(p.uid)
			if p.cur != nil {
				out = append(out, p)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].namespace+"/"+out[i].name < out[j].namespace+"/"+out[j].name
	})
	return out
}

// nanoCores is the CPU rate of container name between two reports, or nil.
func nanoCores(name string, cur, prev *hubv1.WorkloadUsage) *uint64 {
	if prev == nil {
		return nil
	}
	var c, p *hubv1.ContainerUsage
	for _, x := range cur.GetContainers() {
		if x.GetName() == name {
			c = x
		}
	}
	for _, x := range prev.GetContainers() {
		if x.GetName() == name {
			p = x
		}
	}
	if c == nil || p == nil || !c.GetCpuMeasured() || !p.GetCpuMeasured() || c.GetCpuUsageNanos() < p.GetCpuUsageNanos() {
		return nil
	}
	dt := cur.GetTime().AsTime().Sub(prev.GetTime().AsTime())
	if dt <= 0 {
		return nil
	}
	v := uint64(float64(c.GetCpuUsageNanos()-p.GetCpuUsageNanos()) / dt.Seconds())
	return &v
}

func add(a *uint64, b uint64) *uint64 {
	v := b
	if a != nil {
		v += *a
	}
	return &v
}

// StatsSummary is the kubelet's /stats/summary over the pods of every node
// the provider runs: CPU and memory per container and pod, as the devices
// last reported them (with their heartbeats). Containers whose CPU time their
// runtime cannot measure have no CPU stats.
func (m *Manager) StatsSummary(context.Context) (*statsv1alpha1.Summary, error) {
	return statsSummary(m, m.allNodes()), nil
}

// statsSummary is the summary of nodes' pods.
func statsSummary(m *Manager, nodes []*clusterNode) *statsv1alpha1.Summary {
	s := &statsv1alpha1.Summary{}
	nodeCPU := &statsv1alpha1.CPUStats{Time: metav1.Now()}
	nodeMem := &statsv1alpha1.MemoryStats{Time: metav1.Now()}
	names := map[string]bool{}
	for _, p := range usages(m, nodes) {
		names[p.node] = true
		ts := metav1.NewTime(p.cur.GetTime().AsTime())
		ps := statsv1alpha1.PodStats{
			PodRef: statsv1alpha1.PodReference{Name: p.name, Namespace: p.namespace, UID: p.uid},
			CPU:    &statsv1alpha1.CPUStats{Time: ts},
			Memory: &statsv1alpha1.MemoryStats{Time: ts},
		}
		for _, c := range p.cur.GetContainers() {
			start := metav1.NewTime(c.GetStartTime().AsTime())
			if ps.StartTime.IsZero() || start.Before(&ps.StartTime) {
				ps.StartTime = start
			}
			mem := c.GetMemoryBytes()
			cs := statsv1alpha1.ContainerStats{
				Name: c.GetName(), StartTime: start,
				Memory: &statsv1alpha1.MemoryStats{Time: ts, UsageBytes: &mem, WorkingSetBytes: &mem},
			}
			ps.Memory.UsageBytes = add(ps.Memory.UsageBytes, mem)
			ps.Memory.WorkingSetBytes = add(ps.Memory.WorkingSetBytes, mem)
			if c.GetCpuMeasured() {
				total := c.GetCpuUsageNanos()
				cs.CPU = &statsv1alpha1.CPUStats{Time: ts, UsageCoreNanoSeconds: &total, UsageNanoCores: nanoCores(c.GetName(), p.cur, p.prev)}
				ps.CPU.UsageCoreNanoSeconds = add(ps.CPU.UsageCoreNanoSeconds, total)
				if r := cs.CPU.UsageNanoCores; r != nil {
					ps.CPU.UsageNanoCores = add(ps.CPU.UsageNanoCores, *r)
				}
			}
			ps.Containers = append(ps.Containers, cs)
		}
		if ps.CPU.UsageCoreNanoSeconds != nil {
			nodeCPU.UsageCoreNanoSeconds = add(nodeCPU.UsageCoreNanoSeconds, *ps.CPU.UsageCoreNanoSeconds)
		}
		if ps.CPU.UsageNanoCores != nil {
			nodeCPU.UsageNanoCores = add(nodeCPU.UsageNanoCores, *ps.CPU.UsageNanoCores)
		}
		nodeMem.UsageBytes = add(nodeMem.UsageBytes, *ps.Memory.UsageBytes)
		nodeMem.WorkingSetBytes = add(nodeMem.WorkingSetBytes, *ps.Memory.WorkingSetBytes)
		s.Pods = append(s.Pods, ps)
	}
	// The provider's shared kubelet port answers for every node; with one
	// node the summary is that node's. Each node's own port answers for it.
	for _, n := range nodes {
		names[n.name] = true
	}
	if len(names) == 1 {
		for name := range names {
			s.Node.NodeName = name
		}
	} else {
		s.Node.NodeName = "edgefabric"
	}
	s.Node.CPU, s.Node.Memory = nodeCPU, nodeMem
	return s
}

// MetricsResource is the kubelet's /metrics/resource (what metrics-server
// scrapes) over the same numbers as StatsSummary.
func (m *Manager) MetricsResource(context.Context) ([]*dto.MetricFamily, error) {
	return metricsResource(m, m.allNodes()), nil
}

// metricsResource is /metrics/resource over nodes' pods.
func metricsResource(m *Manager, nodes []*clusterNode) []*dto.MetricFamily {
	gauge, counter := dto.MetricType_GAUGE, dto.MetricType_COUNTER
	family := func(name, help string, t dto.MetricType) *dto.MetricFamily {
		return &dto.MetricFamily{Name: &name, Help: &help, Type: &t}
	}
	label := func(kv ...string) []*dto.LabelPair {
		var out []*dto.LabelPair
		for i := 0; i+1 < len(kv); i += 2 {
			out = append(out, &dto.LabelPair{Name: &kv[i], Value: &kv[i+1]})
		}
		return out
	}
	cCPU := family("container_cpu_usage_seconds_total", "[STABLE] Cumulative cpu time consumed by the container in core-seconds", counter)
	cMem := family("container_memory_working_set_bytes", "[STABLE] Current working set of the container in bytes", gauge)
	cStart := family("container_start_time_seconds", "[STABLE] Start time of the container since unix epoch in seconds", gauge)
	pCPU := family("pod_cpu_usage_seconds_total", "[STABLE] Cumulative cpu time consumed by the pod in core-seconds", counter)
	pMem := family("pod_memory_working_set_bytes", "[STABLE] Current working set of the pod in bytes", gauge)
	nCPU := family("node_cpu_usage_seconds_total", "[STABLE] Cumulative cpu time consumed by the node in core-seconds", counter)
	nMem := family("node_memory_working_set_bytes", "[STABLE] Current working set of the node in bytes", gauge)
	var nodeCPU, nodeMem float64
	now := time.Now().UnixMilli()
	for _, p := range usages(m, nodes) {
		ms := p.cur.GetTime().AsTime().UnixMilli()
		var podCPU, podMem float64
		cpuMeasured := false
		for _, c := range p.cur.GetContainers() {
			ls := label("container", c.GetName(), "namespace", p.namespace, "pod", p.name)
			mem := float64(c.GetMemoryBytes())
			podMem += mem
			cMem.Metric = append(cMem.Metric, &dto.Metric{Label: ls, Gauge: &dto.Gauge{Value: &mem}, TimestampMs: &ms})
			start := float64(c.GetStartTime().AsTime().UnixNano()) / 1e9
			cStart.Metric = append(cStart.Metric, &dto.Metric{Label: ls, Gauge: &dto.Gauge{Value: &start}, TimestampMs: &ms})
			if c.GetCpuMeasured() {
				cpuMeasured = true
				secs := float64(c.GetCpuUsageNanos()) / 1e9
				podCPU += secs
				cCPU.Metric = append(cCPU.Metric, &dto.Metric{Label: ls, Counter: &dto.Counter{Value: &secs}, TimestampMs: &ms})
			}
		}
		ls := label("namespace", p.namespace, "pod", p.name)
		pMem.Metric = append(pMem.Metric, &dto.Metric{Label: ls, Gauge: &dto.Gauge{Value: &podMem}, TimestampMs: &ms})
		if cpuMeasured {
			pCPU.Metric = append(pCPU.Metric, &dto.Metric{Label: ls, Counter: &dto.Counter{Value: &podCPU}, TimestampMs: &ms})
		}
		nodeCPU += podCPU
		nodeMem += podMem
	}
	nCPU.Metric = []*dto.Metric{{Counter: &dto.Counter{Value: &nodeCPU}, TimestampMs: &now}}
	nMem.Metric = []*dto.Metric{{Gauge: &dto.Gauge{Value: &nodeMem}, TimestampMs: &now}}
	var out []*dto.MetricFamily
	for _, f := range []*dto.MetricFamily{cCPU, cMem, cStart, nCPU, nMem, pCPU, pMem} {
		if len(f.Metric) > 0 {
			out = append(out, f)
		}
	}
	return out
}
