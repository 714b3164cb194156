package main

import (
	"bufio"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// tty reports whether stdin is a terminal, its size and whether the process
// leads its own session, then answers lines: "exit N" exits with N, "size"
// prints the terminal size, anything else comes back as "got LINE".
func tty() {
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, unix.SIGWINCH)
	_, err := unix.IoctlGetTermios(0, unix.TCGETS)
	sid, _ := unix.Getsid(0)
	fmt.Printf("tty=%v size=%s leader=%v\n", err == nil, size(), sid == os.Getpid())
	go func() {
		for range winch {
			fmt.Printf("resized %s\n", size())
		}
	}()
	s := bufio.NewScanner(os.Stdin)
	for s.Scan() {
		line := s.Text()
		switch {
		case strings.HasPrefix(line, "exit "):
			code, _ := strconv.Atoi(strings.TrimPrefix(line, "exit "))
			os.Exit(code)
		case line == "size":
			fmt.Println(size())
		default:
			fmt.Printf("got %s\n", line)
		}
	}
}

func size() string {
	ws, err := unix.IoctlGetWinsize(0, unix.TIOCGWINSZ)
	if err != nil {
		return "none"
	}
	return fmt.Sprintf("%dx%d", ws.Col, ws.Row)
}
