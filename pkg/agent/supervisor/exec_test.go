package supervisor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/edgefabric/edgefabric/pkg/agent/image"
	hubv1 "github.com/edgefabric/edgefabric/pkg/apis/hub/v1"
)

type fakeModules map[string]string

func (f fakeModules) ImageModule(_, p string) (string, error) {
	if m, ok := f[p]; ok {
		return m, nil
	}
	if strings.HasSuffix(p, ".txt") {
		return "", errors.New("not a WebAssembly module")
	}
	return "", fmt.Errorf("%s: %w", p, image.ErrNotInImage)
}

func TestExecModule(t *testing.T) {
	art := &image.Artifact{ModulePath: "/cache/sha256/abc.wasm", ImageID: "sha256:x"}
	commands := commandsOf(art, []string{"/app/module.wasm", "serve"}, fakeModules{"/bin/tool.wasm": "/cache/tool", "/app/rel.wasm": "/cache/rel"})
	tests := []struct {
		name     string
		want     string // "": the container's own module
		wantCode int
	}{
		{name: "/app/module.wasm"},
		{name: "module.wasm"},
		{name: "abc.wasm"},
		{name: "/bin/tool.wasm", want: "/cache/tool"},
		{name: "/app/rel.wasm", want: "/cache/rel"},
		{name: "sh", wantCode: 127},
		{name: "/bin/sh", wantCode: 127},
		{name: "./notes.txt", wantCode: 126},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := commands(tt.name)
			var exit *ExitError
			switch {
			case tt.wantCode != 0:
				if !errors.As(err, &exit) || exit.Code != tt.wantCode {
					t.Errorf("commands(%q): got %q, %v; want exit code %d", tt.name, got, err, tt.wantCode)
				}
			case err != nil || got != tt.want:
				t.Errorf("commands(%q): got %q, %v; want %q", tt.name, got, err, tt.want)
			}
		})
	}
	if _, err := commandsOf(art, nil, nil)("/bin/tool.wasm"); err == nil {
		t.Errorf("without image modules, another path: got no error")
	}
}

// TestAttachPoint: output reaches an attached client, stdin reaches the
// container, and a client that does not read never holds the container up.
func TestAttachPoint(t *testing.T) {
	a := newAttachPoint(&hubv1.Container{Stdin: true, StdinOnce: true})
	var logs bytes.Buffer
	stdout := a.output(&logs, false)

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- a.attach(ctx, AttachRequest{Stdin: strings.NewReader("typed\n"), Stdout: pw}) }()

	// stdin reaches the container, and its end closes it (stdinOnce).
	in, err := io.ReadAll(a.stdin())
	if err != nil || string(in) != "typed\n" {
		t.Fatalf("container stdin: got %q, %v", in, err)
	}
	// Wait until the client is registered, then write.
	for {
		a.mu.Lock()
		n := len(a.clients)
		a.mu.Unlock()
		if n == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := io.WriteString(stdout, "out\n"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(pr, buf); err != nil || string(buf) != "out\n" {
		t.Fatalf("attached output: got %q, %v", buf, err)
	}
	// The client stops reading: the container's writes still go through.
	t0 := time.Now()
	for range 2 * attachQueue {
		if _, err := io.WriteString(stdout, "more\n"); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(t0); d > 10*time.Second {
		t.Errorf("writes with a stalled client took %s", d)
	}
	if got := strings.Count(logs.String(), "more\n"); got != 2*attachQueue {
		t.Errorf("logs: got %d lines, want %d", got, 2*attachQueue)
	}
	a.end()
	pr.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Logf("attach ended with %v (its client's pipe was closed)", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("attach did not return after the container ended")
	}
}
