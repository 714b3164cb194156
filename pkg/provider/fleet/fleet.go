// Package fleet writes the EdgeDevice objects (edgefabric.io/v1alpha1), the
// fleet view of `kubectl get edgedevices`: one per device the fabric knows,
// with its account, phase, os/arch, capacity, allocation, labels and the
// clusters it belongs to. An object is written when any of that changes, and
// its coarse last-seen time at most every RefreshInterval otherwise: never on
// every heartbeat. Run drives it until its context ends; Changed asks for a
// sync soon (it never blocks).
//
// The writer also ends devices' lives. A device offline longer than GCAfter
// is forgotten (Config.Forget drops it from the fabric) and its object
// deleted; if it comes back it simply appears again. An object deleted by
// anyone else (`kubectl delete edgedevice NAME`: an operator removing the
// device from the fleet) has its device decommissioned (Config.Decommission
// revokes its certificate and drops it). The provider's own deletions are
// told from the others by the object's UID, remembered before deleting.
package fleet

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	efv1 "github.com/edgefabric/edgefabric/pkg/apis/edgefabric/v1alpha1"
	"github.com/edgefabric/edgefabric/pkg/identity"
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
	// GCAfter is how long a device may be offline before it is forgotten:
	// Forget is called and its object deleted. Zero never forgets.
	GCAfter time.Duration
	// Forget drops a device from the fabric, placing its pods elsewhere.
	// Required with GCAfter.
	Forget func(account, id string)
	// Decommission removes a device whose object was deleted by someone
	// else than the writer: revokes its certificate, drops it from the
	// fabric, places its pods elsewhere. Nil ignores such deletions (the
	// object is written again).
	Decommission func(ctx context.Context, account, id string) error
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
	started time.Time
	// lastGC is when devices were last checked for GCAfter.
	lastGC time.Time
	// own are the UIDs of the objects the writer deleted itself; handled
	// those of deleted objects already acted on.
	own, handled map[types.UID]bool

	deletedMu sync.Mutex
	deleted   []*efv1.EdgeDevice // reported by Deleted, not yet acted on
}

type written struct {
	status efv1.EdgeDeviceStatus
	uid    types.UID
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
	if cfg.GCAfter > 0 && cfg.Forget == nil {
		return nil, errors.New("fleet: Forget is required with GCAfter")
	}
	return &Writer{
		cfg: cfg, c: c, log: log, changed: make(chan struct{}, 1), written: map[string]written{},
		started: time.Now(), own: map[types.UID]bool{}, handled: map[types.UID]bool{},
	}, nil
}

// Deleted reports that an EdgeDevice object was deleted (from an informer's
// delete event); Run acts on it soon. It never blocks.
func (w *Writer) Deleted(obj *efv1.EdgeDevice) {
	w.deletedMu.Lock()
	w.deleted = append(w.deleted, obj.DeepCopy())
	w.deletedMu.Unlock()
	w.Changed()
}

// Expired reports whether a device last seen at lastSeen is to be forgotten
// at now: it is offline, and has been for after or longer. A zero after
// never forgets; an unknown (zero) lastSeen is not expired.
func Expired(online bool, lastSeen, now time.Time, after time.Duration) bool {
	return after > 0 && !online && !lastSeen.IsZero() && now.Sub(lastSeen) >= after
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
	every := min(time.Minute, w.cfg.RefreshInterval)
	if w.cfg.GCAfter > 0 {
		every = min(every, w.gcInterval())
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	var debounce <-chan time.Time
	w.Sync(ctx, time.Now())
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-w.changed:
			// Deletions are acted on at once: the device's pods move, and
			// a sync must not write the object again first.
			w.handleDeleted(ctx)
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

// Name is the name of a device's EdgeDevice: <account>.<device ID>, when
// neither holds a dot. Otherwise (account "a.b" and device "c" would share
// a name with account "a" and device "b.c") the dots in each become dashes
// and a hash of both follows as a third label: <account>.<device ID>.<hash>,
// which no plain name (one dot) can be.
func Name(d fabric.Device) string { return nameOf(d.Account, d.ID) }

func nameOf(account, id string) string {
	if !strings.Contains(account, ".") && !strings.Contains(id, ".") {
		return account + "." + id
	}
	h := sha256.New()
	for _, part := range []string{"edgefabric-device", account, id} {
		h.Write(binary.BigEndian.AppendUint64(nil, uint64(len(part))))
		h.Write([]byte(part))
	}
	return strings.ReplaceAll(account, ".", "-") + "." + strings.ReplaceAll(id, ".", "-") + "." + hex.EncodeToString(h.Sum(nil)[:8])
}

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

// gcInterval is how often devices are checked for GCAfter: a tenth of it,
// between a second and a minute.
func (w *Writer) gcInterval() time.Duration {
	return min(max(w.cfg.GCAfter/10, time.Second), time.Minute)
}

// Sync acts on deleted objects, forgets the devices offline longer than
// GCAfter, and writes the objects whose content changed and those last
// written RefreshInterval ago or more.
func (w *Writer) Sync(ctx context.Context, now time.Time) {
	w.handleDeleted(ctx)
	// Devices get a moment to reconnect to a provider that just started
	// before their last-seen times, maybe old from its downtime, count.
	reconnect := min(w.cfg.GCAfter, 5*time.Minute)
	if w.cfg.GCAfter > 0 && now.Sub(w.started) >= reconnect && now.Sub(w.lastGC) >= w.gcInterval() {
		w.lastGC = now
		w.collect(ctx, now)
	}
	refs := map[string][]efv1.ClusterRef{}
	if w.cfg.Clusters != nil {
		for _, c := range w.cfg.Clusters() {
			ref := efv1.ClusterRef{Scope: string(c.Scope), ID: c.ID}
			if w.cfg.NodeOf != nil {
				ref.Node = w.cfg.NodeOf(c.ClusterKey)
			}
			for _, m := range c.Members {
				k := nameOf(c.Account, m)
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
		uid, err := w.write(ctx, name, st, ok)
		if errors.Is(err, errDeleted) {
			// Written before and gone now: someone deleted it.
			w.Deleted(&efv1.EdgeDevice{ObjectMeta: metav1.ObjectMeta{Name: name, UID: last.uid}, Status: last.status})
			continue
		}
		if err != nil {
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
		w.written[name] = written{status: st, uid: uid, at: now}
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

// errDeleted is returned by write for an object written before and gone now.
var errDeleted = errors.New("deleted since it was written")

// write creates or updates the object name and returns its UID. An object
// that was written before (wasWritten) and is not found is not created
// again: errDeleted.
func (w *Writer) write(ctx context.Context, name string, st efv1.EdgeDeviceStatus, wasWritten bool) (types.UID, error) {
	var cur efv1.EdgeDevice
	err := w.c.Get(ctx, client.ObjectKey{Name: name}, &cur)
	switch {
	case apierrors.IsNotFound(err) && !meta.IsNoMatchError(err):
		if wasWritten && w.cfg.Decommission != nil {
			return "", errDeleted
		}
		obj := &efv1.EdgeDevice{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{efv1.LabelAccount: st.Account}}, Status: st}
		if err := w.c.Create(ctx, obj); err != nil {
			return "", fmt.Errorf("create EdgeDevice %s: %w", name, err)
		}
		return obj.UID, nil
	case err != nil:
		return "", err
	}
	cur.Status = st
	if cur.Labels == nil {
		cur.Labels = map[string]string{}
	}
	cur.Labels[efv1.LabelAccount] = st.Account
	if err := w.c.Update(ctx, &cur); err != nil {
		return "", fmt.Errorf("update EdgeDevice %s: %w", name, err)
	}
	return cur.UID, nil
}

// handleDeleted decommissions the devices whose objects someone else than
// the writer deleted.
func (w *Writer) handleDeleted(ctx context.Context) {
	w.deletedMu.Lock()
	deleted := w.deleted
	w.deleted = nil
	w.deletedMu.Unlock()
	for _, obj := range deleted {
		if obj.UID != "" && (w.own[obj.UID] || w.handled[obj.UID]) {
			delete(w.own, obj.UID)
			continue
		}
		if obj.UID != "" {
			w.handled[obj.UID] = true
		}
		delete(w.written, obj.Name)
		if w.cfg.Decommission == nil {
			continue
		}
		account, id := obj.Status.Account, obj.Status.DeviceID
		if identity.ValidName(account) != nil || identity.ValidName(id) != nil || obj.Name != nameOf(account, id) {
			w.log.Warn("deleted EdgeDevice names no device; nothing decommissioned", "name", obj.Name)
			continue
		}
		if err := w.cfg.Decommission(ctx, account, id); err != nil {
			w.log.Error("decommission device", "device", id, "account", account, "err", err)
			continue
		}
		w.log.Info("device decommissioned: its EdgeDevice was deleted", "device", id, "account", account)
		// A sync that ran between the deletion and now wrote it again.
		w.deleteOwn(ctx, obj.Name)
	}
}

// collect forgets the devices offline for GCAfter or longer: those the
// fabric knows, and those only an object remembers (offline since before
// the provider started).
func (w *Writer) collect(ctx context.Context, now time.Time) {
	var list efv1.EdgeDeviceList
	if err := w.c.List(ctx, &list); err != nil {
		if !meta.IsNoMatchError(err) {
			w.log.Warn("list EdgeDevices", "err", err)
		}
		return
	}
	objs := map[string]*efv1.EdgeDevice{}
	for i := range list.Items {
		objs[list.Items[i].Name] = &list.Items[i]
	}
	for _, d := range w.cfg.Devices() {
		name := Name(d)
		seen := d.LastSeen
		obj := objs[name]
		delete(objs, name)
		if obj != nil && obj.Status.LastSeen.After(seen) {
			seen = obj.Status.LastSeen.Time
		}
		if seen.IsZero() {
			seen = w.started // known from a pod only, since the provider started
		}
		if !Expired(d.Online, seen, now, w.cfg.GCAfter) {
			continue
		}
		w.cfg.Forget(d.Account, d.ID)
		w.log.Info("device forgotten: offline longer than the device GC period", "device", d.ID, "account", d.Account,
			"offline", now.Sub(seen).Round(time.Second), "gcAfter", w.cfg.GCAfter)
		w.deleteOwn(ctx, name)
	}
	for name, obj := range objs {
		seen := obj.Status.LastSeen.Time
		if seen.IsZero() {
			seen = obj.CreationTimestamp.Time
		}
		// Not connected since the provider started: offline, whatever the
		// object says.
		if !Expired(false, seen, now, w.cfg.GCAfter) {
			continue
		}
		w.log.Info("device forgotten: offline longer than the device GC period", "device", obj.Status.DeviceID, "account", obj.Status.Account,
			"offline", now.Sub(seen).Round(time.Second), "gcAfter", w.cfg.GCAfter)
		w.deleteOwn(ctx, name)
	}
}

// deleteOwn deletes object name, if it exists, as the writer's own deletion.
func (w *Writer) deleteOwn(ctx context.Context, name string) {
	delete(w.written, name)
	var cur efv1.EdgeDevice
	if err := w.c.Get(ctx, client.ObjectKey{Name: name}, &cur); err != nil {
		if !apierrors.IsNotFound(err) {
			w.log.Warn("read EdgeDevice", "name", name, "err", err)
		}
		return
	}
	w.own[cur.UID] = true
	err := w.c.Delete(ctx, &cur, client.Preconditions{UID: &cur.UID})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		delete(w.own, cur.UID)
		w.log.Warn("delete EdgeDevice", "name", name, "err", err)
	}
}
