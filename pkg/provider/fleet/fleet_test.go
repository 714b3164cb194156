package fleet_test

import (
	"log/slog"
	"path/filepath"
	"runtime"
	"testing"
	"time"

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

// TestWriterOnRealAPIServer checks that EdgeDevices are written on change and
// on refresh only, never when only the last-seen time moved.
func TestWriterOnRealAPIServer(t *testing.T) {
	env := kubetest.Start(t, kubetest.Options{CRDDirectoryPaths: []string{crdDir(t)}})
	scheme := k8sruntime.NewScheme()
	if err := efv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(env.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
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
