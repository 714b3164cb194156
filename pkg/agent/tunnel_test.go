package agent

import (
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"testing"

	hubv1 "github.com/edgefabric/edgefabric/pkg/apis/hub/v1"
)

// listen serves greeting to every connection on a loopback port, as a
// workload's server or the agent's debug server would.
func listen(t *testing.T, greeting string) int32 {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_, _ = io.WriteString(c, greeting)
			c.Close()
		}
	})
	return int32(l.Addr().(*net.TCPAddr).Port)
}

// forward runs servePortForward for one connection to port of workload uid
// and returns what came back and the error.
func forward(t *testing.T, workloads map[string]*hubv1.Workload, own []int32, uid string, port int32) (string, error) {
	t.Helper()
	var mu sync.Mutex
	var got strings.Builder
	send := func(f *hubv1.StreamFrame) error {
		mu.Lock()
		defer mu.Unlock()
		got.Write(f.GetData())
		return nil
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	recv := func() (*hubv1.StreamFrame, error) { <-ctx.Done(); return nil, ctx.Err() }
	lookup := func(uid string) (*hubv1.Workload, bool) { w, ok := workloads[uid]; return w, ok }
	req := &hubv1.StreamRequest{WorkloadUid: uid, Kind: &hubv1.StreamRequest_PortForward{PortForward: &hubv1.PortForwardOptions{Port: port}}}
	err := servePortForward(ctx, lookup, "", func() []int32 { return own }, req, send, recv)
	mu.Lock()
	defer mu.Unlock()
	return got.String(), err
}

// TestPortForwardReachesOnlyThePodsPorts: port-forward reaches the ports a
// pod declares, never another service of the device such as the agent's
// debug server, even when a pod declares that port.
func TestPortForwardReachesOnlyThePodsPorts(t *testing.T) {
	web := listen(t, "hello from web")
	debug := listen(t, "agent debug server")
	other := listen(t, "another service of the device")
	pod := func(ports ...int32) *hubv1.Workload {
		c := &hubv1.Container{Name: "app"}
		for _, p := range ports {
			c.Ports = append(c.Ports, &hubv1.ContainerPort{ContainerPort: p, Protocol: "TCP"})
		}
		return &hubv1.Workload{Uid: "u1", Namespace: "default", Name: "web", Containers: []*hubv1.Container{c}}
	}
	tests := []struct {
		name    string
		w       *hubv1.Workload
		uid     string
		port    int32
		want    string
		wantErr string
	}{
		{name: "declared port", w: pod(web), uid: "u1", port: web, want: "hello from web"},
		{name: "agent's debug port", w: pod(web), uid: "u1", port: debug, wantErr: "belongs to the device's agent"},
		{name: "another service of the device", w: pod(web), uid: "u1", port: other, wantErr: "is not a port of pod default/web: port-forward reaches the containerPorts a pod declares"},
		{name: "pod that declares no port", w: pod(), uid: "u1", port: other, wantErr: "it declares none"},
		{name: "debug port declared by the pod", w: pod(web, debug), uid: "u1", port: debug, wantErr: "belongs to the device's agent"},
		{name: "no such workload", w: pod(web), uid: "other", port: web, wantErr: "no pod with uid other"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := forward(t, map[string]*hubv1.Workload{"u1": tt.w}, []int32{debug}, tt.uid, tt.port)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %q, error %v; want an error containing %q", got, err, tt.wantErr)
				}
				if got != "" {
					t.Errorf("refused, yet %q came back", got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
