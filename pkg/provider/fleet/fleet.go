// Package fleet writes the EdgeDevice objects (edgefabric.io/v1alpha1), the
// fleet view of `kubectl get edgedevices`: one per device the fabric knows,
// with its account, phase, os/arch, capacity, allocation, labels and the
// clusters it belongs to. An object is written when any of that changes, and
// its coarse last-seen time at most every RefreshInterval otherwise: never on
// every heartbeat. Run drives it until its context ends; Changed asks for a
// sync soon (it never blocks).
package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	efv1 "github.com/edgefabric/edgefabric/pkg/apis/edgefabric/v1alpha1"
	"github.com/edgefabric/edgefabric/pkg/provider/fabric"
)

// Config configures a Writer.
type Config struct {
	// Devices returns every device the fabric knows. Required.
	Devices func() []fabric.Device
	// Clusters returns the clusters devices belong to, and NodeOf the
	// virtual node published for one ("" if none). Nil means none.
	Clusters func() []fabric.Cluster
	NodeOf   func(fabric.ClusterKey) string
	// RefreshInterval is how often an object whose content did not change
	// is written anyway, to move its last-seen time; zero means 3 minutes.
	RefreshInterval time.Duration
	// Debounce is how long after Changed a sync runs; zero means 500 ms.
	Debounce time.Duration
	// AllocatedInterval is how long an object whose only change is its
	// allocation (pods placed or gone) waits after its last write; zero
	// means 30 s. Every pod started or deleted changes an allocation: written
	// at once, a device running pods one after another costs the API server
	// an EdgeDevice GET and PUT per pod.
	AllocatedInterval time.Duration
}

// Writer keeps the EdgeDevice objects.
type Writer struct {
	cfg Config
	c   client.Client
	log *slog.Logger

	changed chan struct{}
	// written is the status last written per object name, and when.
	written map[string]written
	missing bool // the CRD is not installed: warned once
}

type written struct {
	status efv1.EdgeDeviceStatus
	at     time.Time
}

// New returns a writer using c, whose scheme must know efv1.
func New(cfg Config, c client.Client, log *slog.Logger) (*Writer, error) {
	if cfg.Devices == nil {
		return nil, errors.New("fleet: Devices is required")
	}
	if cfg.RefreshInterval == 0 {
		cfg.RefreshInterval = 3 * time.Minute
	}
	if cfg.AllocatedInterval == 0 {
		cfg.AllocatedInterval = 30 * time.Second
	}
	if cfg.Debounce == 0 {
		cfg.Debounce = 500 * time.Millisecond
	}
	return &Writer{cfg: cfg, c: c, log: log, changed: make(chan struct{}, 1), written: map[string]written{}}, nil
}

// Changed asks for a sync soon. It never blocks.
func (w *Writer) Changed() {
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

// Run syncs on Changed and every minute until ctx ends.
func (w *Writer) Run(ctx context.Context) error {
	tick := time.NewTicker(min(time.Minute, w.cfg.RefreshInterval))
	defer tick.Stop()
	var debounce <-chan time.Time
	w.Sync(ctx, time.Now())
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-w.changed:
			if debounce == nil {
				debounce = time.After(w.cfg.Debounce)
			}
		case <-debounce:
			debounce = nil
			w.Sync(ctx, time.Now())
		case <-tick.C:
			w.Sync(ctx, time.Now())
		}
	}
}

// Name is the name of a device's EdgeDevice: <account>.<device ID>.
func Name(d fabric.Device) string { return d.Account + "." + d.ID }

// Status is the EdgeDevice status of d; clusters are the clusters it is in.
func Status(d fabric.Device, clusters []efv1.ClusterRef) efv1.EdgeDeviceStatus {
	phase := efv1.DeviceOffline
	if d.Online {
		phase = efv1.DeviceOnline
	}
	st := efv1.EdgeDeviceStatus{
		Account: d.Account, DeviceID: d.ID, Phase: phase, OS: d.OS, Arch: d.Arch, Hostname: d.Hostname,
		AgentVersion: d.AgentVersion, Labels: d.Labels, Clusters: clusters,
		Capacity:  resources(d.Capacity.CPUMillis, d.Capacity.MemoryBytes, d.Capacity.Pods),
		Allocated: resources(d.Allocated.CPUMillis, d.Allocated.MemoryBytes, d.Allocated.Pods),
	}
	var nodes []string
	for _, c := range clusters {
		if c.Node != "" {
			nodes = append(nodes, c.Node)
		}
	}
	st.Nodes = strings.Join(nodes, ",")
	if !d.LastSeen.IsZero() {
		st.LastSeen = metav1.NewTime(d.LastSeen.Truncate(time.Second))
	}
	return st
}

func resources(cpu, mem, pods int64) corev1.ResourceList {
	return corev1.ResourceList{
		corev1.ResourceCPU:    *resource.NewMilliQuantity(cpu, resource.DecimalSI),
		corev1.ResourceMemory: *resource.NewQuantity(mem, resource.BinarySI),
		corev1.ResourcePods:   *resource.NewQuantity(pods, resource.DecimalSI),
	}
}

// Sync writes the objects whose content changed, and those last written
// RefreshInterval ago or more.
func (w *Writer) Sync(ctx context.Context, now time.Time) {
	refs := map[string][]efv1.ClusterRef{}
	if w.cfg.Clusters != nil {
		for _, c := range w.cfg.Clusters() {
			ref := efv1.ClusterRef{Scope: string(c.Scope), ID: c.ID}
			if w.cfg.NodeOf != nil {
				ref.Node = w.cfg.NodeOf(c.ClusterKey)
			}
			for _, m := range c.Members {
				k := c.Account + "." + m
				refs[k] = append(refs[k], ref)
			}
		}
	}
	for _, d := range w.cfg.Devices() {
		name := Name(d)
		cs := refs[name]
		slices.SortFunc(cs, func(a, b efv1.ClusterRef) int { return strings.Compare(a.Scope+"/"+a.ID, b.Scope+"/"+b.ID) })
		st := Status(d, cs)
		last, ok := w.written[name]
		if ok && sameContent(last.status, st) && now.Sub(last.at) < w.cfg.RefreshInterval {
			continue
		}
		if ok && sameButAllocated(last.status, st) && now.Sub(last.at) < w.cfg.AllocatedInterval {
			continue // written by a later sync (Run syncs at least every minute)
		}
		if err := w.write(ctx, name, st); err != nil {
			if meta.IsNoMatchError(err) {
				if !w.missing {
					w.log.Warn("EdgeDevice CRD not installed; fleet objects are not written", "crd", "deploy/helm/edgefabric/crds/edgefabric.io_edgedevices.yaml")
					w.missing = true
				}
				return
			}
			w.log.Warn("write EdgeDevice", "name", name, "err", err)
			continue
		}
		w.missing = false
		w.written[name] = written{status: st, at: now}
	}
}

// sameContent compares two statuses but for their last-seen times.
func sameContent(a, b efv1.EdgeDeviceStatus) bool {
	a.LastSeen, b.LastSeen = metav1.Time{}, metav1.Time{}
	return equality.Semantic.DeepEqual(a, b)
}

// sameButAllocated compares two statuses but for their allocations and
// last-seen times.
func sameButAllocated(a, b efv1.EdgeDeviceStatus) bool {
	a.Allocated, b.Allocated = nil, nil
	return sameContent(a, b)
}

func (w *Writer) write(ctx context.Context, name string, st efv1.EdgeDeviceStatus) error {
	var cur efv1.EdgeDevice
	err := w.c.Get(ctx, client.ObjectKey{Name: name}, &cur)
	switch {
	case apierrors.IsNotFound(err) && !meta.IsNoMatchError(err):
		obj := &efv1.EdgeDevice{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{scopeLabelAccount: st.Account}}, Status: st}
		if err := w.c.Create(ctx, obj); err != nil {
			return fmt.Errorf("create EdgeDevice %s: %w", name, err)
		}
		return nil
	case err != nil:
		return err
	}
	cur.Status = st
	if cur.Labels == nil {
		cur.Labels = map[string]string{}
	}
	cur.Labels[scopeLabelAccount] = st.Account
	if err := w.c.Update(ctx, &cur); err != nil {
		return fmt.Errorf("update EdgeDevice %s: %w", name, err)
	}
	return nil
}

// scopeLabelAccount labels each object with its account, for selectors.
const scopeLabelAccount = "edgefabric.io/account"
