package boundary_test

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/edgefabric/edgefabric/pkg/boundary"
)

func TestRecover(t *testing.T) {
	var logged bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logged, nil))
	handler := func(panics bool) (err error) {
		defer boundary.Recover(log, "serve logs", &err)
		if panics {
			var s []int
			_ = s[3] // index out of range
		}
		return errors.New("plain error")
	}
	if err := handler(false); err == nil || err.Error() != "plain error" {
		t.Errorf("without a panic: got %v, want the handler's own error", err)
	}
	if logged.Len() != 0 {
		t.Errorf("without a panic: logged %q", logged.String())
	}
	err := handler(true)
	if !errors.Is(err, boundary.ErrPanic) || !strings.HasPrefix(err.Error(), "serve logs: ") {
		t.Errorf("after a panic: got %v, want serve logs: ErrPanic", err)
	}
	for _, want := range []string{"handler panicked", "handler=\"serve logs\"", "index out of range", "boundary_test.go"} {
		if !strings.Contains(logged.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logged.String())
		}
	}
}

func TestRecoverWithoutError(t *testing.T) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer boundary.Recover(slog.New(slog.DiscardHandler), "a goroutine", nil)
		panic("boom")
	}()
	<-done // the process is still here
}
