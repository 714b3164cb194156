package hub

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	hubv1 "github.com/edgefabric/edgefabric/pkg/apis/hub/v1"
	"github.com/edgefabric/edgefabric/pkg/provider/fabric"
	"github.com/edgefabric/edgefabric/test/poll"
)

// session connects device pi-1 and places workloads uids on it.
func session(t *testing.T, f *fixture, uids ...string) (hubv1.HubClient, hubv1.Hub_ControlClient) {
	t.Helper()
	l := &recorder{statuses: make(chan *hubv1.WorkloadStatus, 100)}
	f.fab.SetListener(l)
	cert, err := f.join(t, "pi-1", "good")
	if err != nil {
		t.Fatal(err)
	}
	client := f.dial(t, cert)
	s, err := client.Control(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(&hubv1.AgentMessage{Msg: &hubv1.AgentMessage_Hello{Hello: &hubv1.Hello{
		DeviceId: "pi-1", Runtimes: []string{"wasm"}, Capacity: &hubv1.Resources{CpuMillis: 1000, MemoryBytes: 1 << 30, Pods: 10},
	}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recv(); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 10*time.Second, func() bool { d, ok := f.fab.Device("acme", "pi-1"); return ok && d.Online })
	for _, uid := range uids {
		f.fab.Assign("acme", "pi-1", &hubv1.Workload{Uid: uid, Namespace: "default", Name: uid, Runtime: "wasm"})
	}
	f.fab.MarkReady()
	if _, err := s.Recv(); err != nil { // the desired state
		t.Fatal(err)
	}
	return client, s
}

// open asks for a stream of workload uid and plays the device: it returns
// the consumer's and the device's ends.
func open(t *testing.T, f *fixture, client hubv1.HubClient, control hubv1.Hub_ControlClient, uid string, req *hubv1.StreamRequest) (*fabric.Stream, hubv1.Hub_StreamClient) {
	t.Helper()
	opened := make(chan *fabric.Stream, 1)
	go func() {
		st, err := f.fab.OpenStream(t.Context(), uid, req)
		if err != nil {
			t.Errorf("open stream: %v", err)
		}
		opened <- st
	}()
	m, err := control.Recv()
	if err != nil || m.GetStream() == nil {
		t.Fatalf("stream request: got %v, %v", m, err)
	}
	ds, err := client.Stream(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := ds.Send(&hubv1.StreamFrame{Open: m.GetStream().GetId()}); err != nil {
		t.Fatal(err)
	}
	return <-opened, ds
}

// TestSlowConsumer: a consumer that does not read holds up its own stream
// only (the device's sends block, nothing piles up in the provider); the
// control stream and another stream of the same device keep flowing.
func TestSlowConsumer(t *testing.T) {
	f := start(t)
	client, control := session(t, f, "slow", "fast")
	slow, slowDev := open(t, f, client, control, "slow", &hubv1.StreamRequest{Kind: &hubv1.StreamRequest_Logs{Logs: &hubv1.LogOptions{}}})
	defer slow.Close()

	// The device writes to the slow stream until gRPC's flow control stops it.
	chunk := bytes.Repeat([]byte("x"), 32<<10)
	sent := make(chan int, 1)
	blocked := make(chan struct{})
	go func() {
		n := 0
		for {
			done := make(chan error, 1)
			go func() { done <- slowDev.Send(&hubv1.StreamFrame{Data: chunk}) }()
			select {
			case err := <-done:
				if err != nil {
					sent <- n
					return
				}
				n += len(chunk)
			case <-time.After(2 * time.Second):
				close(blocked)
				if err := <-done; err != nil {
					t.Logf("the blocked send ended with %v", err)
				}
				sent <- n
				return
			}
		}
	}()
	select {
	case <-blocked:
	case n := <-sent:
		t.Fatalf("the device's sends to a consumer that does not read ended after %d bytes without blocking", n)
	case <-time.After(60 * time.Second):
		t.Fatal("the device's sends never blocked")
	}

	// Meanwhile the control stream works: a status report gets through...
	if err := control.Send(&hubv1.AgentMessage{Msg: &hubv1.AgentMessage_Heartbeat{Heartbeat: &hubv1.Heartbeat{
		Usage: []*hubv1.WorkloadUsage{{Uid: "fast", Containers: []*hubv1.ContainerUsage{{Name: "c", MemoryBytes: 42}}}},
	}}}); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 10*time.Second, func() bool {
		u, _ := f.fab.Usage("fast")
		return len(u.GetContainers()) == 1 && u.GetContainers()[0].GetMemoryBytes() == 42
	})

	// ...and so does another stream, both ways.
	fast, fastDev := open(t, f, client, control, "fast", &hubv1.StreamRequest{Kind: &hubv1.StreamRequest_Exec{Exec: &hubv1.ExecOptions{Command: []string{"x"}}}})
	go func() {
		f, err := fastDev.Recv() // stdin
		if err != nil {
			return
		}
		_ = fastDev.Send(&hubv1.StreamFrame{Data: append([]byte("echo: "), f.GetData()...)})
		_ = fastDev.Send(&hubv1.StreamFrame{Data: []byte("oops"), Stderr: true})
		_ = fastDev.Send(&hubv1.StreamFrame{Exit: &hubv1.ExitStatus{Code: 3}})
		_ = fastDev.Send(&hubv1.StreamFrame{Eof: true})
	}()
	var stdout, stderr bytes.Buffer
	exit, err := fast.Interact(t.Context(), fabric.Interaction{Stdin: bytes.NewReader([]byte("hi")), Stdout: &stdout, Stderr: &stderr})
	if err != nil {
		t.Fatal(err)
	}
	if exit.GetCode() != 3 || stdout.String() != "echo: hi" || stderr.String() != "oops" {
		t.Errorf("exec: got exit %v, stdout %q, stderr %q", exit, stdout.String(), stderr.String())
	}

	// The slow consumer reads at last and gets everything in order.
	slow.Close()
	n := <-sent
	if n == 0 {
		t.Errorf("nothing was sent before the sends blocked")
	}
	t.Logf("the device could send %d KiB before the slow consumer's stream blocked it", n>>10)
}

// TestPipeHalfClose: a port-forward's client end is passed on as close_write
// and the stream ends only with the device's side.
func TestPipeHalfClose(t *testing.T) {
	f := start(t)
	client, control := session(t, f, "pf")
	st, dev := open(t, f, client, control, "pf", &hubv1.StreamRequest{Kind: &hubv1.StreamRequest_PortForward{PortForward: &hubv1.PortForwardOptions{Port: 80}}})
	go func() {
		var got []byte
		for {
			fr, err := dev.Recv()
			if err != nil {
				return
			}
			got = append(got, fr.GetData()...)
			if fr.GetCloseWrite() {
				break
			}
		}
		// The device answers after the client's half-close, then ends.
		_ = dev.Send(&hubv1.StreamFrame{Data: append([]byte("got "), got...)})
		_ = dev.Send(&hubv1.StreamFrame{Eof: true})
	}()
	conn := &halfConn{r: bytes.NewReader([]byte("request")), w: &bytes.Buffer{}}
	if err := st.Pipe(t.Context(), conn); err != nil {
		t.Fatal(err)
	}
	if got := conn.w.String(); got != "got request" {
		t.Errorf("reply: got %q", got)
	}
}

type halfConn struct {
	r io.Reader
	w *bytes.Buffer
}

func (c *halfConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c *halfConn) Write(p []byte) (int, error) { return c.w.Write(p) }

// TestStreamClosedByConsumer: Deliver and Send fail once the consumer closed.
func TestStreamClosedByConsumer(t *testing.T) {
	st := fabric.NewStream()
	st.Close()
	if err := st.Deliver(context.Background(), &hubv1.StreamFrame{}); !errors.Is(err, fabric.ErrStreamClosed) {
		t.Errorf("Deliver after Close: got %v", err)
	}
	if err := st.Send(context.Background(), &hubv1.StreamFrame{}); !errors.Is(err, fabric.ErrStreamClosed) {
		t.Errorf("Send after Close: got %v", err)
	}
	st2 := fabric.NewStream()
	st2.Finish(errors.New("boom"))
	if _, err := st2.Recv(); err == nil || err.Error() != "boom" {
		t.Errorf("Recv after Finish: got %v", err)
	}
	if err := st2.Send(context.Background(), &hubv1.StreamFrame{}); !errors.Is(err, fabric.ErrStreamClosed) {
		t.Errorf("Send after Finish: got %v", err)
	}
}
