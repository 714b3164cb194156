package hub

import (
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	hubv1 "github.com/edgefabric/edgefabric/pkg/apis/hub/v1"
	"github.com/edgefabric/edgefabric/pkg/identity"
	"github.com/edgefabric/edgefabric/pkg/provider/revocation"
)

// TestDecommissionedDeviceIsRefused walks a decommission: the device's open
// stream ends with the decommissioned status, its certificate is refused on
// reconnect and for renewal, another device is not affected, and a new join
// with a token gets a certificate that is accepted.
func TestDecommissionedDeviceIsRefused(t *testing.T) {
	revs, err := revocation.Open(t.Context(), revocation.File{Path: filepath.Join(t.TempDir(), "revocations.json")}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	f := startWith(t, revs)
	f.fab.MarkReady()
	pi := identity.Device{Account: "acme", ID: "pi-1"}
	old, err := f.join(t, "pi-1", "good")
	if err != nil {
		t.Fatal(err)
	}
	other, err := f.join(t, "pi-2", "good")
	if err != nil {
		t.Fatal(err)
	}
	control := func(id string, useOld bool) (func() error, error) {
		t.Helper()
		cert := other
		if useOld {
			cert = old
		}
		s, err := f.dial(t, cert).Control(t.Context())
		if err != nil {
			return nil, err
		}
		if err := s.Send(&hubv1.AgentMessage{Msg: &hubv1.AgentMessage_Hello{Hello: &hubv1.Hello{DeviceId: id}}}); err != nil && !errors.Is(err, io.EOF) {
			return nil, err // io.EOF: refused; Recv says why
		}
		if _, err := s.Recv(); err != nil {
			return nil, err
		}
		// The rest of the stream: what it ends with.
		return func() error {
			for {
				if _, err := s.Recv(); err != nil {
					return err
				}
			}
		}, nil
	}
	wantRefused := func(what string, err error) {
		t.Helper()
		if status.Code(err) != codes.PermissionDenied || status.Convert(err).Message() != hubv1.DecommissionedMessage("pi-1") {
			t.Errorf("%s: got %v, want PermissionDenied %q", what, err, hubv1.DecommissionedMessage("pi-1"))
		}
	}

	rest, err := control("pi-1", true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := control("pi-2", false); err != nil {
		t.Fatal(err)
	}
	if _, err := revs.Revoke(t.Context(), pi, time.Now(), time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, known := f.fab.Drop(pi, true); !known {
		t.Fatal("pi-1 unknown to the fabric")
	}
	wantRefused("open stream", rest())
	_, err = control("pi-1", true)
	wantRefused("reconnect", err)
	key, err := identity.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := identity.NewCSR(key, "pi-1")
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.dial(t, old).Renew(t.Context(), &hubv1.RenewRequest{CsrDer: csr})
	wantRefused("renew", err)
	if _, err := control("pi-2", false); err != nil {
		t.Errorf("pi-2 refused after pi-1's decommission: %v", err)
	}

	// Not with the token that enrolled it: the provider, not only the
	// agent, refuses that.
	_, err = f.join(t, "pi-1", "good")
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "join it again with a new bootstrap token") {
		t.Errorf("join again with the enrolling token: got %v, want PermissionDenied asking for a new token", err)
	}
	// A new join with another token, within the same second as the
	// revocation or later.
	fresh, err := f.join(t, "pi-1", "fresh")
	if err != nil {
		t.Fatal(err)
	}
	old = fresh
	if _, err := control("pi-1", true); err != nil {
		t.Errorf("pi-1 joined again and refused: %v", err)
	}
	if _, ok := f.fab.Device("acme", "pi-1"); !ok {
		t.Error("pi-1 joined again and is not in the fabric")
	}
}
