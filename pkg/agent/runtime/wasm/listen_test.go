package wasm

import (
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgefabric/edgefabric/pkg/apis/hub/v1/reasons"
	"github.com/edgefabric/edgefabric/test/ocitest"
)

// freeAddr returns a loopback address with a port nobody listens on now.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// startHTTPServer runs examples/httpserver on a preopened socket and returns
// once it serves, with the address it serves on.
func startHTTPServer(t *testing.T, r *Runtime) (*Instance, string) {
	t.Helper()
	module := writeModule(t, ocitest.BuildGo(t, "examples/httpserver"))
	return serveModule(t, r, Spec{ModulePath: module, Env: []string{"HOSTNAME=wasm"}}, "serving on")
}

// serveModule starts spec in r with its output collected and, unless spec
// names them, one listener on a fresh loopback address; it stops the
// instance when the test ends and returns once the output shows ready, with
// the first listener's address.
func serveModule(t *testing.T, r *Runtime, spec Spec, ready string) (*Instance, string) {
	t.Helper()
	if len(spec.Listeners) == 0 {
		spec.Listeners = []string{freeAddr(t)}
	}
	out := newSyncBuffer()
	spec.Stdout, spec.Stderr = out, out
	inst, err := r.Start(t.Context(), spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inst.Stop(0) })
	out.waitFor(t, ready)
	return inst, spec.Listeners[0]
}

// TestListeners serves HTTP from a Go wasip1 module on a preopened socket.
func TestListeners(t *testing.T) {
	r := newRuntime(t, sharedCache)
	inst, addr := startHTTPServer(t, r)
	defer inst.Stop(0)

	for _, tt := range []struct{ path, want string }{
		{"/", "hello from wasm\n"},
		{"/work?n=0", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"},
	} {
		resp, err := http.Get("http://" + addr + tt.path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != tt.want {
			t.Errorf("GET %s: got %q, want %q", tt.path, b, tt.want)
		}
	}
	resp, err := http.Post("http://"+addr+"/sha256", "application/octet-stream", strings.NewReader("abc"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad 3\n"; string(b) != want {
		t.Errorf("POST /sha256: got %q, want %q", b, want)
	}

	inst.Stop(0)
	if res := inst.Result(); res.Reason != reasons.Killed {
		t.Errorf("result after Stop: got %+v", res)
	}
	// The listener is closed with the module: the port is free again.
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Errorf("listen on %s after the module ended: %v", addr, err)
	} else {
		l.Close()
	}
}

func TestListenerErrors(t *testing.T) {
	r := newRuntime(t, sharedCache)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, tt := range []struct{ addr, want string }{
		{"nonsense", "listener"},
		{"127.0.0.1:99999", "bad port"},
		{busy.Addr().String(), "address already in use"},
	} {
		_, err := r.Start(t.Context(), Spec{ModulePath: hello(t), Listeners: []string{tt.addr}})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("listener %q: got %v, want an error with %q", tt.addr, err, tt.want)
		}
	}
}

// TestListenerOnFD3WithVolumes runs a Go server that takes its listener from
// fd 3, as wazero's examples do, in a container with two volumes and two
// ports: the first port's socket is fd 3 (hack/wazero patch 0009), and the
// module still sees the volumes after the sockets (the runtime's
// fd_prestat_get tells them apart) and its working directory from PWD.
func TestListenerOnFD3WithVolumes(t *testing.T) {
	r := newRuntime(t, sharedCache)
	config, data := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(config, "greeting"), []byte("hello from a volume\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, addr := serveModule(t, r, Spec{
		ModulePath:   writeModule(t, ocitest.BuildGo(t, "pkg/agent/runtime/wasm/testdata/fd3server")),
		Env:          []string{"FILE=/etc/config/greeting", "PWD=/data"},
		ReadOnlyDirs: map[string]string{"/etc/config": config},
		Dirs:         map[string]string{"/data": data},
		Listeners:    []string{freeAddr(t), freeAddr(t)},
	}, "serving on fd 3")
	for _, tt := range []struct{ query, want string }{
		{"", "hello from a volume\n"},
		{"?cwd", "/data\n"},
	} {
		resp, err := http.Get("http://" + addr + "/" + tt.query)
		if err != nil {
			t.Fatalf("GET %s: %v", tt.query, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(b) != tt.want {
			t.Errorf("GET /%s: %d %q, want 200 %q", tt.query, resp.StatusCode, b, tt.want)
		}
	}
}
