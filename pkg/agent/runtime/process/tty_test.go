package process_test

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/edgefabric/edgefabric/pkg/agent/pty"
	"github.com/edgefabric/edgefabric/pkg/agent/runtime/process"
)

// TestExecTTY runs a command on a terminal in a running container: it sees
// a terminal of the size given, leads its own session, gets the size
// changes, its input is echoed and its lines end in CRNL, and its exit code
// comes back.
func TestExecTTY(t *testing.T) {
	for _, cfg := range modes(t) {
		t.Run(modeName(cfg), func(t *testing.T) {
			r := newRuntime(t, cfg)
			var out syncBuffer
			inst, err := r.Start(t.Context(), process.Spec{ID: uniqueID("tty"), RootFS: rootfs(t), Args: []string{"/bin/app", "serve"}, Stdout: &out})
			if err != nil {
				t.Fatalf("Start: %v", err)
			}
			defer inst.Stop(0)
			waitOutput(t, &out, "running")

			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
			defer cancel()
			stdinR, stdinW := io.Pipe()
			defer stdinR.Close()
			resize := make(chan pty.Size, 1)
			resize <- pty.Size{Width: 100, Height: 30}
			var term syncBuffer
			type result struct {
				code int
				err  error
			}
			done := make(chan result, 1)
			go func() {
				code, err := inst.ExecTTY(ctx, []string{"/bin/app", "tty"}, stdinR, &term, resize)
				done <- result{code, err}
			}()
			waitOutput(t, &term, "tty=true size=100x30 leader=true\r\n")
			resize <- pty.Size{Width: 132, Height: 43}
			waitOutput(t, &term, "resized 132x43\r\n")
			_, _ = io.WriteString(stdinW, "hello\r")
			waitOutput(t, &term, "hello\r\ngot hello\r\n")
			_, _ = io.WriteString(stdinW, "exit 7\r")
			select {
			case res := <-done:
				if res.err != nil || res.code != 7 {
					t.Errorf("ExecTTY: got (%d, %v), want (7, nil); terminal %q", res.code, res.err, term.String())
				}
			case <-ctx.Done():
				t.Fatalf("ExecTTY did not return after exit; terminal %q", term.String())
			}
			if strings.Count(term.String(), "got ") != 1 {
				t.Errorf("terminal: got %q, want one answer", term.String())
			}
		})
	}
}

// TestExecTTYCancel ends a command on a terminal that does not end by
// itself when its context ends.
func TestExecTTYCancel(t *testing.T) {
	r := newRuntime(t, process.Config{NoIsolation: true, NoCgroups: true})
	var out syncBuffer
	inst, err := r.Start(t.Context(), process.Spec{ID: uniqueID("tty-cancel"), RootFS: rootfs(t), Args: []string{"/bin/app", "serve"}, Stdout: &out})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer inst.Stop(0)
	waitOutput(t, &out, "running")
	ctx, cancel := context.WithCancel(t.Context())
	var term syncBuffer
	done := make(chan int, 1)
	go func() {
		code, _ := inst.ExecTTY(ctx, []string{"/bin/app", "tty"}, nil, &term, nil)
		done <- code
	}()
	waitOutput(t, &term, "tty=true")
	cancel()
	select {
	case code := <-done:
		if code != 137 {
			t.Errorf("exit code: got %d, want 137 (killed)", code)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("ExecTTY did not return after its context ended")
	}
}

// TestStartTTY runs a container's main process on a terminal (a pod's tty:
// true): it sees a terminal, its input comes from Stdin, its output (echo
// included) goes to Stdout, Resize reaches it, and its exit code is the
// container's.
func TestStartTTY(t *testing.T) {
	for _, cfg := range modes(t) {
		t.Run(modeName(cfg), func(t *testing.T) {
			r := newRuntime(t, cfg)
			stdinR, stdinW := io.Pipe()
			defer stdinW.Close()
			var out, errOut syncBuffer
			inst, err := r.Start(t.Context(), process.Spec{
				ID: uniqueID("main-tty"), RootFS: rootfs(t), Args: []string{"/bin/app", "tty"},
				Stdin: stdinR, Stdout: &out, Stderr: &errOut, TTY: true,
			})
			if err != nil {
				t.Fatalf("Start: %v", err)
			}
			defer inst.Stop(0)
			waitOutput(t, &out, "tty=true size=0x0 leader=true\r\n")
			inst.Resize(pty.Size{Width: 120, Height: 40})
			waitOutput(t, &out, "resized 120x40\r\n")
			_, _ = io.WriteString(stdinW, "abc\r")
			waitOutput(t, &out, "abc\r\ngot abc\r\n")
			_, _ = io.WriteString(stdinW, "exit 5\r")
			if res := wait(t, inst, 30*time.Second); res.ExitCode != 5 {
				t.Errorf("exit code: got %d, want 5", res.ExitCode)
			}
			if errOut.String() != "" {
				t.Errorf("stderr: got %q, want nothing (one stream on a terminal)", errOut.String())
			}
		})
	}
}
