package pty

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

func open() (*os.File, *os.File, error) {
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open /dev/ptmx: %w", err)
	}
	n, err := ptsNumber(master)
	if err != nil {
		master.Close()
		return nil, nil, err
	}
	name := "/dev/pts/" + strconv.Itoa(n)
	slave, err := os.OpenFile(name, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		master.Close()
		return nil, nil, fmt.Errorf("open %s: %w", name, err)
	}
	return master, slave, nil
}

// ptsNumber unlocks master's slave (TIOCSPTLCK) and returns its number
// (TIOCGPTN).
func ptsNumber(master *os.File) (int, error) {
	var n int
	var err error
	cerr := control(master, func(fd int) {
		if err = unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
			err = fmt.Errorf("unlock the pseudo-terminal: %w", err)
			return
		}
		if n, err = unix.IoctlGetInt(fd, unix.TIOCGPTN); err != nil {
			err = fmt.Errorf("name the pseudo-terminal: %w", err)
		}
	})
	if cerr != nil {
		return 0, cerr
	}
	return n, err
}

func setSize(f *os.File, s Size) error {
	var err error
	cerr := control(f, func(fd int) {
		err = unix.IoctlSetWinsize(fd, unix.TIOCSWINSZ, &unix.Winsize{Col: s.Width, Row: s.Height})
	})
	if cerr != nil {
		return cerr
	}
	if err != nil {
		return fmt.Errorf("set the terminal size: %w", err)
	}
	return nil
}

func getSize(f *os.File) (Size, error) {
	var ws *unix.Winsize
	var err error
	cerr := control(f, func(fd int) { ws, err = unix.IoctlGetWinsize(fd, unix.TIOCGWINSZ) })
	if cerr != nil {
		return Size{}, cerr
	}
	if err != nil {
		return Size{}, fmt.Errorf("get the terminal size: %w", err)
	}
	return Size{Width: ws.Col, Height: ws.Row}, nil
}

func isTerminal(f *os.File) bool {
	var err error
	if cerr := control(f, func(fd int) { _, err = unix.IoctlGetTermios(fd, unix.TCGETS) }); cerr != nil {
		return false
	}
	return err == nil
}

// control runs fn with f's descriptor without taking f out of the runtime's
// poller (as f.Fd() would).
func control(f *os.File, fn func(fd int)) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	return rc.Control(func(fd uintptr) { fn(int(fd)) })
}
