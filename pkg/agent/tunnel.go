package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/edgefabric/edgefabric/pkg/agent/client"
	"github.com/edgefabric/edgefabric/pkg/agent/supervisor"
	hubv1 "github.com/edgefabric/edgefabric/pkg/apis/hub/v1"
	"github.com/edgefabric/edgefabric/pkg/boundary"
)

// tunnelHandler serves the hub's stream requests: exec, attach and
// port-forward here, logs by logsHandler. own returns the TCP ports of the
// agent's own services, which port-forward never reaches.
func tunnelHandler(sup *supervisor.Supervisor, podIP string, own func() []int32, logsHandler client.StreamHandler) client.StreamHandler {
	return func(ctx context.Context, req *hubv1.StreamRequest, send func(*hubv1.StreamFrame) error, recv func() (*hubv1.StreamFrame, error)) error {
		switch k := req.GetKind().(type) {
		case *hubv1.StreamRequest_Exec:
			return serveExec(ctx, sup, req, k.Exec, send, recv)
		case *hubv1.StreamRequest_Attach:
			return serveAttach(ctx, sup, req, k.Attach, send, recv)
		case *hubv1.StreamRequest_PortForward:
			return servePortForward(ctx, sup.Workload, podIP, own, req, send, recv)
		case *hubv1.StreamRequest_Logs:
			return logsHandler(ctx, req, send, recv)
		}
		return errors.New("unsupported stream kind")
	}
}

// pumpInput passes the hub's data frames to w until a close_write frame
// (which closes w), the stream's end or a failed write; resizes go to
// resize, the newest winning when the reader is behind.
func pumpInput(recv func() (*hubv1.StreamFrame, error), w *io.PipeWriter, resize chan supervisor.TerminalSize) {
	defer boundary.Recover(nil, "stream input", nil)
	for {
		f, err := recv()
		if err != nil {
			if w != nil {
				_ = w.CloseWithError(err)
			}
			return
		}
		if r := f.GetResize(); r != nil && resize != nil {
			ts := supervisor.TerminalSize{Width: uint16(r.GetWidth()), Height: uint16(r.GetHeight())}
			select {
			case resize <- ts:
			default:
				select {
				case <-resize:
				default:
				}
				select {
				case resize <- ts:
				default:
				}
			}
		}
		if len(f.GetData()) > 0 && w != nil {
			if _, err := w.Write(f.GetData()); err != nil {
				return
			}
		}
		if f.GetCloseWrite() && w != nil {
			_ = w.Close()
			w = nil
		}
	}
}

// streamOptions are the options exec and attach share.
type streamOptions interface {
	GetStdin() bool
	GetStdout() bool
	GetStderr() bool
}

// streams are a stream's stdin, stdout, stderr (nil where not asked for) and
// terminal resizes, as an exec or attach takes them.
type streams struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	resize         chan supervisor.TerminalSize
	close          func()
}

// openStreams starts reading the stream's input (stdin and resizes) and
// makes writers of its output frames.
func openStreams(o streamOptions, send func(*hubv1.StreamFrame) error, recv func() (*hubv1.StreamFrame, error)) streams {
	s := streams{resize: make(chan supervisor.TerminalSize, 1), close: func() {}}
	var stdinW *io.PipeWriter
	if o.GetStdin() {
		var stdinR *io.PipeReader
		stdinR, stdinW = io.Pipe()
		s.stdin, s.close = stdinR, func() { _ = stdinR.Close() }
	}
	// Not joined: it ends with the stream, which ends after the exec or
	// attach returns.
	go pumpInput(recv, stdinW, s.resize)
	if o.GetStdout() {
		s.stdout = frameWriter{send: send}
	}
	if o.GetStderr() {
		s.stderr = frameWriter{send: send, stderr: true}
	}
	return s
}

func serveExec(ctx context.Context, sup *supervisor.Supervisor, req *hubv1.StreamRequest, o *hubv1.ExecOptions,
	send func(*hubv1.StreamFrame) error, recv func() (*hubv1.StreamFrame, error)) error {
	s := openStreams(o, send, recv)
	defer s.close()
	er := supervisor.ExecRequest{Command: o.GetCommand(), TTY: o.GetTty(), Stdin: s.stdin, Stdout: s.stdout, Stderr: s.stderr, Resize: s.resize}
	if er.Stderr == nil && o.GetTty() {
		er.Stderr = er.Stdout
	}
	code, err := sup.Exec(ctx, req.GetWorkloadUid(), req.GetContainer(), er)
	var exit *supervisor.ExitError
	switch {
	case errors.As(err, &exit):
		if er.Stderr != nil {
			_, _ = fmt.Fprintln(er.Stderr, exit.Message)
		}
		return send(&hubv1.StreamFrame{Exit: &hubv1.ExitStatus{Code: int32(exit.Code), Message: exit.Message}})
	case err != nil:
		return err
	}
	return send(&hubv1.StreamFrame{Exit: &hubv1.ExitStatus{Code: int32(code)}})
}

func serveAttach(ctx context.Context, sup *supervisor.Supervisor, req *hubv1.StreamRequest, o *hubv1.AttachOptions,
	send func(*hubv1.StreamFrame) error, recv func() (*hubv1.StreamFrame, error)) error {
	s := openStreams(o, send, recv)
	defer s.close()
	ar := supervisor.AttachRequest{TTY: o.GetTty(), Stdin: s.stdin, Stdout: s.stdout, Stderr: s.stderr, Resize: s.resize}
	return sup.Attach(ctx, req.GetWorkloadUid(), req.GetContainer(), ar)
}

// servePortForward connects to the port the request names, if the
// workload serves it (forwardable), and pipes the connection through the
// stream: the hub's close_write half-closes the connection, and the stream
// ends once the workload's side has ended. workload looks up the workloads
// the device runs; own returns the agent's own ports.
func servePortForward(ctx context.Context, workload func(uid string) (*hubv1.Workload, bool), podIP string, own func() []int32,
	req *hubv1.StreamRequest, send func(*hubv1.StreamFrame) error, recv func() (*hubv1.StreamFrame, error)) error {
	port := req.GetPortForward().GetPort()
	w, ok := workload(req.GetWorkloadUid())
	if !ok {
		return fmt.Errorf("port-forward: no pod with uid %s runs on this device", req.GetWorkloadUid())
	}
	if err := forwardable(w, port, own()); err != nil {
		return err
	}
	var d net.Dialer
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := d.DialContext(dctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port))))
	if err != nil && podIP != "" && podIP != "127.0.0.1" {
		conn, err = d.DialContext(dctx, "tcp", net.JoinHostPort(podIP, strconv.Itoa(int(port))))
	}
	if err != nil {
		return fmt.Errorf("connect to port %d on the device: %w", port, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	go func() { // not joined: ends with the stream or the connection
		defer boundary.Recover(nil, "port-forward input", nil)
		for {
			f, err := recv()
			if err != nil {
				_ = conn.Close()
				return
			}
			if len(f.GetData()) > 0 {
				if _, err := conn.Write(f.GetData()); err != nil {
					return
				}
			}
			if f.GetCloseWrite() {
				if cw, ok := conn.(interface{ CloseWrite() error }); ok {
					_ = cw.CloseWrite()
				}
			}
		}
	}()
	_, err = io.CopyBuffer(frameWriter{send: send}, conn, make([]byte, 32<<10))
	if err != nil && ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("read from port %d: %w", port, err)
	}
	return nil
}

// forwardable says why port-forward may not reach port for workload w, or
// nil if it may: the port must be a TCP containerPort of one of the pod's
// containers (a WASM container's listening sockets are exactly those), and
// not one of own, the ports of the agent's own services (its debug server,
// the device mesh), which a pod declaring them cannot have bound.
func forwardable(w *hubv1.Workload, port int32, own []int32) error {
	pod := w.GetNamespace() + "/" + w.GetName()
	if port <= 0 || port > 65535 {
		return fmt.Errorf("port %d is not a TCP port", port)
	}
	if slices.Contains(own, port) {
		return fmt.Errorf("port %d belongs to the device's agent, not to pod %s: port-forward reaches the pod's own ports only", port, pod)
	}
	var declared []string
	for _, c := range append(slices.Clone(w.GetInitContainers()), w.GetContainers()...) {
		for _, p := range c.GetPorts() {
			if pr := p.GetProtocol(); pr != "" && pr != "TCP" {
				continue
			}
			if p.GetContainerPort() == port {
				return nil
			}
			declared = append(declared, strconv.Itoa(int(p.GetContainerPort())))
		}
	}
	if len(declared) == 0 {
		return fmt.Errorf("port %d is not a port of pod %s: port-forward reaches the containerPorts a pod declares, and it declares none", port, pod)
	}
	return fmt.Errorf("port %d is not a port of pod %s: port-forward reaches the containerPorts a pod declares (%s)", port, pod, strings.Join(declared, ", "))
}
