package node

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/virtual-kubelet/virtual-kubelet/node/api"
	corev1 "k8s.io/api/core/v1"
	utilexec "k8s.io/utils/exec"

	hubv1 "github.com/edgefabric/edgefabric/pkg/apis/hub/v1"
	"github.com/edgefabric/edgefabric/pkg/provider/fabric"
)

// openWait bounds how long a tunnel request waits for the device to open its
// stream.
const openWait = 15 * time.Second

// target finds the pod's node and uid, and the container a request for
// container is for (containerName); with anyContainer, no container is looked up.
func (m *Manager) target(namespace, name, container string, anyContainer bool) (*clusterNode, string, string, error) {
	for _, n := range m.allNodes() {
		n.mu.Lock()
		uid, ok := n.byKey[namespace+"/"+name]
		var pod *corev1.Pod
		if ok {
			pod = n.byUID[uid].Pod
		}
		n.mu.Unlock()
		if !ok {
			continue
		}
		if anyContainer {
			return n, uid, "", nil
		}
		container, err := containerName(pod, container)
		if err != nil {
			return nil, "", "", err
		}
		return n, uid, container, nil
	}
	return nil, "", "", notFound("pod %s/%s is not on an edgefabric node", namespace, name)
}

func (m *Manager) open(ctx context.Context, uid string, req *hubv1.StreamRequest, what string) (*fabric.Stream, error) {
	octx, cancel := context.WithTimeout(ctx, openWait)
	defer cancel()
	s, err := m.fab.OpenStream(octx, uid, req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return s, nil
}

// Exec runs a command in a container on its device (kubectl exec). A
// non-zero exit code is returned as a utilexec.ExitError, which the API
// server passes on to kubectl as the command's exit code.
func (m *Manager) Exec(ctx context.Context, namespace, name, container string, cmd []string, attach api.AttachIO) error {
	_, uid, container, err := m.target(namespace, name, container, false)
	if err != nil {
		return err
	}
	req := &hubv1.StreamRequest{Container: container, Kind: &hubv1.StreamRequest_Exec{Exec: &hubv1.ExecOptions{
		Command: cmd, Stdin: attach.Stdin() != nil, Stdout: attach.Stdout() != nil, Stderr: attach.Stderr() != nil, Tty: attach.TTY(),
	}}}
	s, err := m.open(ctx, uid, req, fmt.Sprintf("exec in %s/%s", namespace, name))
	if err != nil {
		return err
	}
	exit, err := s.Interact(ctx, interaction(ctx, attach))
	if err != nil {
		return fmt.Errorf("exec in %s/%s: %w", namespace, name, err)
	}
	if exit == nil {
		return fmt.Errorf("exec in %s/%s: the device ended the stream without an exit status", namespace, name)
	}
	if exit.GetCode() != 0 {
		msg := fmt.Sprintf("command terminated with exit code %d", exit.GetCode())
		if exit.GetMessage() != "" {
			msg = exit.GetMessage()
		}
		return utilexec.CodeExitError{Err: fmt.Errorf("%s", msg), Code: int(exit.GetCode())}
	}
	return nil
}

// Attach attaches to a running container's stdin and output (kubectl attach).
func (m *Manager) Attach(ctx context.Context, namespace, name, container string, attach api.AttachIO) error {
	_, uid, container, err := m.target(namespace, name, container, false)
	if err != nil {
		return err
	}
	req := &hubv1.StreamRequest{Container: container, Kind: &hubv1.StreamRequest_Attach{Attach: &hubv1.AttachOptions{
		Stdin: attach.Stdin() != nil, Stdout: attach.Stdout() != nil, Stderr: attach.Stderr() != nil, Tty: attach.TTY(),
	}}}
	s, err := m.open(ctx, uid, req, fmt.Sprintf("attach to %s/%s", namespace, name))
	if err != nil {
		return err
	}
	if _, err := s.Interact(ctx, interaction(ctx, attach)); err != nil {
		return fmt.Errorf("attach to %s/%s: %w", namespace, name, err)
	}
	return nil
}

// PortForward pipes one client connection to a TCP port on the pod's device.
func (m *Manager) PortForward(ctx context.Context, namespace, name string, port int32, conn io.ReadWriteCloser) error {
	_, uid, _, err := m.target(namespace, name, "", true)
	if err != nil {
		return err
	}
	req := &hubv1.StreamRequest{Kind: &hubv1.StreamRequest_PortForward{PortForward: &hubv1.PortForwardOptions{Port: port}}}
	s, err := m.open(ctx, uid, req, fmt.Sprintf("port-forward to %s/%s:%d", namespace, name, port))
	if err != nil {
		return err
	}
	if err := s.Pipe(ctx, conn); err != nil {
		return fmt.Errorf("port-forward to %s/%s:%d: %w", namespace, name, port, err)
	}
	return nil
}

// interaction adapts virtual-kubelet's AttachIO. Nil interfaces are kept nil.
func interaction(ctx context.Context, a api.AttachIO) fabric.Interaction {
	var in fabric.Interaction
	if r := a.Stdin(); r != nil {
		in.Stdin = r
	}
	if w := a.Stdout(); w != nil {
		in.Stdout = w
	}
	if w := a.Stderr(); w != nil {
		in.Stderr = w
	}
	if a.TTY() && a.Resize() != nil {
		ch := make(chan *hubv1.TerminalSize)
		go func() {
			defer close(ch)
			for {
				select {
				case ts, ok := <-a.Resize():
					if !ok {
						return
					}
					select {
					case ch <- &hubv1.TerminalSize{Width: uint32(ts.Width), Height: uint32(ts.Height)}:
					case <-ctx.Done():
						return
					}
				case <-ctx.Done():
					return
				}
			}
		}()
		in.Resize = ch
	}
	return in
}
