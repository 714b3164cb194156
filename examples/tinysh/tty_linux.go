package main

import (
	"fmt"

	"golang.org/x/sys/unix"
)

func isTerminal() bool {
	_, err := unix.IoctlGetTermios(0, unix.TCGETS)
	return err == nil
}

func terminalSize() string {
	ws, err := unix.IoctlGetWinsize(0, unix.TIOCGWINSZ)
	if err != nil {
		return "unknown"
	}
	return fmt.Sprintf("%dx%d", ws.Col, ws.Row)
}
