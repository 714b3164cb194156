package pty

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestOpenResize(t *testing.T) {
	master, slave, err := Open()
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	defer slave.Close()
	if !IsTerminal(slave) || !IsTerminal(master) {
		t.Errorf("IsTerminal: got slave %v, master %v; want both true", IsTerminal(slave), IsTerminal(master))
	}
	for _, want := range []Size{{Width: 80, Height: 24}, {Width: 200, Height: 50}, {Width: 1, Height: 1}} {
		if err := SetSize(master, want); err != nil {
			t.Fatal(err)
		}
		// The slave, as the command sees it, reads back what the master set.
		got, err := GetSize(slave)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("size: got %+v, want %+v", got, want)
		}
	}
}

func TestNotATerminal(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if IsTerminal(r) {
		t.Error("IsTerminal(pipe): got true")
	}
	if _, err := GetSize(r); err == nil {
		t.Error("GetSize(pipe): got no error")
	}
}

// TestCookedMode checks that the slave's default line discipline is what
// a command expects: input echoed, CR read as NL, NL written as CRNL.
func TestCookedMode(t *testing.T) {
	master, slave, err := Open()
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	cmd := exec.Command("/bin/sh", "-c", "read line; echo \"got $line\"")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	if err := cmd.Start(); err != nil {
		t.Skipf("no /bin/sh: %v", err)
	}
	slave.Close()
	if _, err := master.Write([]byte("hi\r")); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	_ = master.SetReadDeadline(time.Now().Add(30 * time.Second))
	buf := make([]byte, 1024)
	for !strings.Contains(out.String(), "got hi\r\n") {
		n, err := master.Read(buf)
		out.Write(buf[:n])
		if err != nil {
			if errors.Is(err, io.EOF) || !errors.Is(err, os.ErrDeadlineExceeded) {
				break // EIO: the command ended
			}
			t.Fatalf("read: %v (so far %q)", err, out.String())
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if want := "hi\r\ngot hi\r\n"; out.String() != want {
		t.Errorf("terminal output: got %q, want %q", out.String(), want)
	}
}
