package wasm

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
)

type terminalReader struct{ io.Reader }

func (terminalReader) IsTerminal() bool { return true }

func TestPollStdin(t *testing.T) {
	t.Run("idle then data", func(t *testing.T) {
		pr, pw := io.Pipe()
		defer pw.Close()
		s := newPollStdin(pr, make(chan struct{}))
		if ready, errno := s.Poll(experimentalsys.POLLIN, 0); ready || errno != 0 {
			t.Fatalf("Poll of an idle pipe: ready %v, errno %v", ready, errno)
		}
		start := time.Now()
		if ready, _ := s.Poll(experimentalsys.POLLIN, 100); ready {
			t.Fatal("Poll of an idle pipe with a timeout: ready")
		}
		if d := time.Since(start); d < 100*time.Millisecond {
			t.Errorf("Poll returned after %v, before its timeout", d)
		}
		go func() { _, _ = pw.Write([]byte("hello")) }()
		if ready, _ := s.Poll(experimentalsys.POLLIN, -1); !ready {
			t.Fatal("Poll without timeout returned not ready")
		}
		b := make([]byte, 3)
		for _, want := range []string{"hel", "lo"} {
			n, err := s.Read(b)
			if err != nil || string(b[:n]) != want {
				t.Errorf("Read: got %q, %v, want %q", b[:n], err, want)
			}
		}
		pw.Close()
		if ready, _ := s.Poll(experimentalsys.POLLIN, -1); !ready {
			t.Fatal("Poll at EOF: not ready")
		}
		for range 2 {
			if n, err := s.Read(b); n != 0 || !errors.Is(err, io.EOF) {
				t.Errorf("Read at EOF: got %d, %v", n, err)
			}
		}
	})
	t.Run("read without poll reads directly", func(t *testing.T) {
		s := newPollStdin(strings.NewReader("abc"), make(chan struct{}))
		b := make([]byte, 10)
		if n, err := s.Read(b); err != nil || string(b[:n]) != "abc" {
			t.Errorf("Read: got %q, %v", b[:n], err)
		}
		if s.pending != nil {
			t.Error("a Read started a read ahead")
		}
	})
	t.Run("stop ends a read waiting for a read ahead", func(t *testing.T) {
		pr, pw := io.Pipe()
		defer pw.Close()
		stop := make(chan struct{})
		s := newPollStdin(pr, stop)
		if ready, _ := s.Poll(experimentalsys.POLLIN, 10); ready {
			t.Fatal("ready")
		}
		go func() { time.Sleep(50 * time.Millisecond); close(stop) }()
		if _, err := s.Read(make([]byte, 1)); !errors.Is(err, errStdinStopped) {
			t.Errorf("Read after stop: got %v, want %v", err, errStdinStopped)
		}
		if ready, _ := s.Poll(experimentalsys.POLLIN, -1); ready {
			t.Error("Poll after stop: ready")
		}
	})
	t.Run("terminal", func(t *testing.T) {
		if !newPollStdin(terminalReader{strings.NewReader("")}, nil).IsTerminal() {
			t.Error("a terminal's reader is not a terminal")
		}
		if newPollStdin(strings.NewReader(""), nil).IsTerminal() {
			t.Error("a plain reader is a terminal")
		}
		if _, errno := newPollStdin(strings.NewReader(""), nil).Poll(experimentalsys.POLLOUT, 0); errno != experimentalsys.ENOTSUP {
			t.Errorf("Poll for writing: errno %v, want ENOTSUP", errno)
		}
	})
}
