package provider

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	ctrlclient "sigs.k8s.io/controller-runtime/pkg/client"

	efv1 "github.com/edgefabric/edgefabric/pkg/apis/edgefabric/v1alpha1"
	"github.com/edgefabric/edgefabric/pkg/provider/fabric"
	"github.com/edgefabric/edgefabric/pkg/provider/fleet"
	"github.com/edgefabric/edgefabric/test/kubetest"
)

// TestWatchDeletions checks the EdgeDevice deletion watch on a real API
// server: without the CRD it fails at once (the provider serves on without
// it), with the CRD a deleted object reaches the writer.
func TestWatchDeletions(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := efv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	decommissioned := make(chan string, 1)
	newWriter := func(c ctrlclient.Client) *fleet.Writer {
		w, err := fleet.New(fleet.Config{
			Devices: func() []fabric.Device { return nil },
			Decommission: func(_ context.Context, account, id string) error {
				decommissioned <- account + "/" + id
				return nil
			},
		}, c, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		return w
	}

	t.Run("no CRD", func(t *testing.T) {
		env := kubetest.Start(t, kubetest.Options{})
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		if _, err := watchDeletions(ctx, env.Config, scheme, newWriter(nil)); err == nil {
			t.Fatal("got no error without the EdgeDevice CRD")
		}
	})

	t.Run("CRD", func(t *testing.T) {
		env := kubetest.Start(t, kubetest.Options{CRDDirectoryPaths: []string{filepath.Join("..", "..", "deploy", "helm", "edgefabric", "crds")}})
		cl, err := ctrlclient.New(env.Config, ctrlclient.Options{Scheme: scheme})
		if err != nil {
			t.Fatal(err)
		}
		w := newWriter(cl)
		c, err := watchDeletions(t.Context(), env.Config, scheme, w)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 2)
		go func() { done <- c.Start(ctx) }()
		go func() { done <- w.Run(ctx) }()
		defer func() {
			cancel()
			for range 2 {
				if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
					t.Errorf("stopping: %v", err)
				}
			}
		}()
		if !c.WaitForCacheSync(ctx) {
			t.Fatal("cache did not sync")
		}
		obj := &efv1.EdgeDevice{
			ObjectMeta: metav1.ObjectMeta{Name: "acme.pi-1"},
			Status:     efv1.EdgeDeviceStatus{Account: "acme", DeviceID: "pi-1", Phase: efv1.DeviceOffline},
		}
		if err := cl.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
		if err := cl.Delete(ctx, obj); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-decommissioned:
			if got != "acme/pi-1" {
				t.Errorf("decommissioned %s, want acme/pi-1", got)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("the deletion did not decommission the device")
		}
	})
}
