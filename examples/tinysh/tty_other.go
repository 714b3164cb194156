//go:build !linux

package main

import "os"

func isTerminal() bool {
	fi, err := os.Stdin.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func terminalSize() string { return "unknown" }
