package fleet_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	efv1 "github.com/edgefabric/edgefabric/pkg/apis/edgefabric/v1alpha1"
	"github.com/edgefabric/edgefabric/pkg/identity"
	"github.com/edgefabric/edgefabric/pkg/provider/fabric"
	"github.com/edgefabric/edgefabric/pkg/provider/fleet"
	"github.com/edgefabric/edgefabric/pkg/provider/placement"
	"github.com/edgefabric/edgefabric/pkg/scopes"
	"github.com/edgefabric/edgefabric/test/kubetest"
)

func crdDir(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "deploy", "helm", "edgefabric", "crds")
}

// apiServer starts a real API server with the EdgeDevice CRD and returns a
// client of it.
func apiServer(t *testing.T) client.Client {
	t.Helper()
	env := kubetest.Start(t, kubetest.Options{CRDDirectoryPaths: []string{crdDir(t)}})
	scheme := k8sruntime.NewScheme()
	if err := efv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(env.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestWriterOnRealAPIServer checks that EdgeDevices are written on change and
// on refresh only, never when only the last-seen time moved.
func TestWriterOnRealAPIServer(t *testing.T) {
	c := apiServer(t)
	start := time.Now()
	dev := fabric.Device{
		Device: identity.Device{Account: "acme", ID: "pi-1"}, Online: true, OS: "linux", Arch: "arm64",
		Capacity: placement.Resources{CPUMillis: 4000, MemoryBytes: 1 << 30, Pods: 110}, LastSeen: start,
	}
	clusters := []fabric.Cluster{
		{ClusterKey: fabric.ClusterKey{Account: "acme", Scope: scopes.Network, ID: "lan1"}, Members: []string{"pi-1"}},
		{ClusterKey: fabric.ClusterKey{Account: "acme", Scope: scopes.Account}, Members: []string{"pi-1"}},
	}
	w, err := fleet.New(fleet.Config{
		Devices:           func() []fabric.Device { return []fabric.Device{dev} },
		Clusters:          func() []fabric.Cluster { return clusters },
		NodeOf:            func(k fabric.ClusterKey) string { return k.NodeName() },
		RefreshInterval:   time.Minute,
		AllocatedInterval: 20 * time.Second,
	}, c, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	get := func() efv1.EdgeDevice {
		t.Helper()
		var d efv1.EdgeDevice
		if err := c.Get(t.Context(), client.ObjectKey{Name: "acme.pi-1"}, &d); err != nil {
			t.Fatal(err)
		}
		return d
	}

	w.Sync(t.Context(), start)
	first := get()
	if s := first.Status; s.Phase != efv1.DeviceOnline || s.OS != "linux" || s.Nodes != "edge-acme,edge-acme-net-lan1" || len(s.Clusters) != 2 {
		t.Fatalf("first write: got %+v", s)
	}

	steps := []struct {
		name      string
		change    func()
		at        time.Duration
		wantWrite bool
	}{
		{name: "heartbeat only", change: func() { dev.LastSeen = start.Add(10 * time.Second) }, at: 10 * time.Second},
		{name: "went offline", change: func() { dev.Online = false }, at: 20 * time.Second, wantWrite: true},
		{name: "nothing new", change: func() {}, at: 30 * time.Second},
		{name: "refresh after the interval", change: func() { dev.LastSeen = start.Add(70 * time.Second) }, at: 90 * time.Second, wantWrite: true},
		{name: "joined another cluster", change: func() { clusters[0].ID = "lan2" }, at: 95 * time.Second, wantWrite: true},
		{name: "pod placed: allocation waits", change: func() { dev.Allocated = placement.Resources{CPUMillis: 100, Pods: 1} }, at: 100 * time.Second},
		{name: "another pod placed", change: func() { dev.Allocated = placement.Resources{CPUMillis: 200, Pods: 2} }, at: 110 * time.Second},
		{name: "allocation written after its interval", change: func() {}, at: 116 * time.Second, wantWrite: true},
		{name: "online again is written at once", change: func() { dev.Online, dev.Allocated = true, placement.Resources{} }, at: 117 * time.Second, wantWrite: true},
	}
	rv := first.ResourceVersion
	for _, s := range steps {
		s.change()
		w.Sync(t.Context(), start.Add(s.at))
		d := get()
		if wrote := d.ResourceVersion != rv; wrote != s.wantWrite {
			t.Errorf("%s: written %v, want %v", s.name, wrote, s.wantWrite)
		}
		rv = d.ResourceVersion
	}
	if d := get(); d.Status.Phase != efv1.DeviceOnline || d.Status.Nodes != "edge-acme,edge-acme-net-lan2" {
		t.Errorf("last write: got %+v", d.Status)
	}
}

func TestExpired(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	week := 168 * time.Hour
	tests := []struct {
		name     string
		online   bool
		lastSeen time.Time
		after    time.Duration
		want     bool
	}{
		{name: "offline longer than the period", lastSeen: now.Add(-week - time.Second), after: week, want: true},
		{name: "offline exactly the period", lastSeen: now.Add(-week), after: week, want: true},
		{name: "offline less than the period", lastSeen: now.Add(-week + time.Second), after: week},
		{name: "online, not seen for long", online: true, lastSeen: now.Add(-2 * week), after: week},
		{name: "GC disabled", lastSeen: now.Add(-100 * week), after: 0},
		{name: "never seen", after: week},
		{name: "seen in the future (clock skew)", lastSeen: now.Add(time.Hour), after: week},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := fleet.Expired(tc.online, tc.lastSeen, now, tc.after); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// TestWriterForgetsAndDecommissions checks on a real API server that a
// device offline past GCAfter is forgotten and its object deleted (and that
// this deletion is not taken for an operator's), that an object only left
// from before a restart is deleted too, and that an object deleted by
// someone else decommissions its device instead of being written again.
func TestWriterForgetsAndDecommissions(t *testing.T) {
	c := apiServer(t)
	start := time.Now()
	devs := map[string]*fabric.Device{}
	for _, id := range []string{"pi-1", "pi-2", "pi-3"} {
		devs[id] = &fabric.Device{Device: identity.Device{Account: "acme", ID: id}, Online: true, LastSeen: start}
	}
	var forgotten, decommissioned []string
	w, err := fleet.New(fleet.Config{
		Devices: func() []fabric.Device {
			var out []fabric.Device
			for _, id := range []string{"pi-1", "pi-2", "pi-3"} {
				if d := devs[id]; d != nil {
					out = append(out, *d)
				}
			}
			return out
		},
		GCAfter: time.Hour,
		Forget: func(account, id string) {
			forgotten = append(forgotten, account+"/"+id)
			delete(devs, id)
		},
		Decommission: func(_ context.Context, account, id string) error {
			decommissioned = append(decommissioned, account+"/"+id)
			delete(devs, id)
			return nil
		},
	}, c, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	// An object from before a restart, of a device the fabric does not know.
	stale := &efv1.EdgeDevice{
		ObjectMeta: metav1.ObjectMeta{Name: "acme.old"},
		Status:     efv1.EdgeDeviceStatus{Account: "acme", DeviceID: "old", Phase: efv1.DeviceOnline, LastSeen: metav1.NewTime(start.Add(-2 * time.Hour))},
	}
	if err := c.Create(t.Context(), stale); err != nil {
		t.Fatal(err)
	}
	exists := func(name string) bool {
		t.Helper()
		err := c.Get(t.Context(), client.ObjectKey{Name: name}, &efv1.EdgeDevice{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
		return err == nil
	}

	w.Sync(t.Context(), start)
	// Nothing is forgotten in the first five minutes: devices reconnect to a
	// provider that just started, whatever their objects' last-seen times.
	for _, n := range []string{"acme.pi-1", "acme.pi-2", "acme.pi-3", "acme.old"} {
		if !exists(n) {
			t.Fatalf("%s not there after the first sync", n)
		}
	}
	devs["pi-1"].Online, devs["pi-1"].LastSeen = false, start.Add(time.Minute)
	devs["pi-2"].Online, devs["pi-2"].LastSeen = false, start.Add(40*time.Minute)
	w.Sync(t.Context(), start.Add(2*time.Minute))
	if !exists("acme.old") || len(forgotten) > 0 {
		t.Errorf("forgotten within five minutes of the start: %v, acme.old exists %v", forgotten, exists("acme.old"))
	}

	// The operator deletes pi-3's object: the next sync must not write it again.
	if err := c.Delete(t.Context(), &efv1.EdgeDevice{ObjectMeta: metav1.ObjectMeta{Name: "acme.pi-3"}}); err != nil {
		t.Fatal(err)
	}
	devs["pi-3"].Allocated.Pods = 1 // a change, so the sync writes
	w.Sync(t.Context(), start.Add(3*time.Minute))
	w.Sync(t.Context(), start.Add(4*time.Minute)) // acts on what the first found
	if diff := cmp.Diff([]string{"acme/pi-3"}, decommissioned); diff != "" {
		t.Errorf("decommissioned (-want +got):\n%s", diff)
	}
	if exists("acme.pi-3") {
		t.Error("acme.pi-3 was written again after its deletion")
	}

	// An hour and a bit later: pi-1 and the stale object expired, pi-2 not yet.
	w.Sync(t.Context(), start.Add(62*time.Minute))
	if diff := cmp.Diff([]string{"acme/pi-1"}, forgotten); diff != "" {
		t.Errorf("forgotten (-want +got):\n%s", diff)
	}
	for n, want := range map[string]bool{"acme.pi-1": false, "acme.pi-2": true, "acme.old": false} {
		if got := exists(n); got != want {
			t.Errorf("%s exists %v, want %v", n, got, want)
		}
	}
	// The writer's own deletions, reported back as an informer would, do
	// not decommission anything.
	w.Deleted(&efv1.EdgeDevice{ObjectMeta: metav1.ObjectMeta{Name: "acme.old", UID: stale.UID}, Status: stale.Status})
	w.Sync(t.Context(), start.Add(63*time.Minute))
	if diff := cmp.Diff([]string{"acme/pi-3"}, decommissioned); diff != "" {
		t.Errorf("decommissioned after own deletions (-want +got):\n%s", diff)
	}
	// pi-1 comes back: it appears again.
	devs["pi-1"] = &fabric.Device{Device: identity.Device{Account: "acme", ID: "pi-1"}, Online: true, LastSeen: start.Add(64 * time.Minute)}
	w.Sync(t.Context(), start.Add(64*time.Minute))
	if !exists("acme.pi-1") {
		t.Error("acme.pi-1 not written again after it came back")
	}
}
