package fabric

import (
	"context"
	"errors"
	"fmt"
	"io"

	hubv1 "github.com/edgefabric/edgefabric/pkg/apis/hub/v1"
)

// chunkSize bounds the data of one frame the provider sends.
const chunkSize = 32 << 10

// Interaction is the consumer's side of an exec or attach session.
type Interaction struct {
	// Stdin is sent to the device; nil sends nothing. Its end is sent as a
	// close_write frame.
	Stdin io.Reader
	// Stdout and Stderr receive the device's output; nil discards it.
	Stdout, Stderr io.Writer
	// Resize carries terminal size changes; nil sends none.
	Resize <-chan *hubv1.TerminalSize
}

// Interact runs an exec or attach session over s until the device ends it,
// and returns the exit status the device sent (nil for an attach). It closes
// s before it returns. A goroutine reading Stdin may outlive it until Stdin's
// Read returns: the caller closes Stdin after Interact returns.
func (s *Stream) Interact(ctx context.Context, in Interaction) (*hubv1.ExitStatus, error) {
	defer s.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if in.Stdin != nil {
		go func() { _ = s.sendAll(ctx, in.Stdin) }()
	}
	if in.Resize != nil {
		go func() {
			for {
				select {
				case r, ok := <-in.Resize:
					if !ok {
						return
					}
					if s.Send(ctx, &hubv1.StreamFrame{Resize: r}) != nil {
						return
					}
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	var exit *hubv1.ExitStatus
	for {
		f, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return exit, nil
		}
		if err != nil {
			return exit, err
		}
		if f.GetExit() != nil {
			exit = f.GetExit()
		}
		w := in.Stdout
		if f.GetStderr() {
			w = in.Stderr
		}
		if len(f.GetData()) > 0 && w != nil {
			if _, err := w.Write(f.GetData()); err != nil {
				return exit, fmt.Errorf("write to client: %w", err)
			}
		}
	}
}

// sendAll sends r's bytes as data frames, then a close_write frame.
func (s *Stream) sendAll(ctx context.Context, r io.Reader) error {
	buf := make([]byte, chunkSize)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if serr := s.Send(ctx, &hubv1.StreamFrame{Data: append([]byte(nil), buf[:n]...)}); serr != nil {
				return serr
			}
		}
		if errors.Is(err, io.EOF) {
			return s.Send(ctx, &hubv1.StreamFrame{CloseWrite: true})
		}
		if err != nil {
			return err
		}
	}
}

// Pipe joins conn (one port-forward connection of a client) to s until the
// device's side of the connection ends: conn's bytes go to the device and its
// end as a close_write; the device's bytes come back. It closes s before it
// returns; the caller closes conn.
func (s *Stream) Pipe(ctx context.Context, conn io.ReadWriter) error {
	defer s.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { _ = s.sendAll(ctx, conn) }() // not joined: ends when the caller closes conn
	for {
		f, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if len(f.GetData()) > 0 {
			if _, err := conn.Write(f.GetData()); err != nil {
				return fmt.Errorf("write to client: %w", err)
			}
		}
	}
}
