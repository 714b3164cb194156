// Command tinysh is a very small interactive shell for trying kubectl
// exec -it on edgefabric: it builds natively (a static binary for the
// process runtime, where it runs on a real pseudo-terminal) and for
// wasip1/wasm (where the agent plays the terminal's line discipline). It
// prints a prompt, reads lines and runs a few built-in commands:
//
//	echo ARGS...   print ARGS
//	tty            say whether stdin is a terminal (natively: ioctl TCGETS;
//	               under WASI: whether stdin is a character device)
//	size           the terminal size (natively), as COLSxROWS
//	exit [CODE]    exit with CODE (default 0)
//	sleep          sleep until stopped (a pod's main process to exec into)
//
// End of input (^D on a terminal) exits with 0. Started with arguments,
// tinysh runs them as one command and exits.
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

func main() {
	if len(os.Args) > 1 {
		code, _ := run(os.Args[1:], os.Stdout)
		os.Exit(code)
	}
	in := bufio.NewReader(os.Stdin)
	for {
		fmt.Print("$ ")
		line, err := in.ReadString('\n')
		if f := strings.Fields(line); len(f) > 0 {
			if code, exit := run(f, os.Stdout); exit {
				os.Exit(code)
			}
		}
		if err != nil {
			fmt.Println()
			return
		}
	}
}

// run runs one command; exit says the shell should end with code.
func run(args []string, out io.Writer) (code int, exit bool) {
	switch args[0] {
	case "echo":
		fmt.Fprintln(out, strings.Join(args[1:], " "))
	case "tty":
		if isTerminal() {
			fmt.Fprintln(out, "stdin is a terminal")
		} else {
			fmt.Fprintln(out, "stdin is not a terminal")
			return 1, false
		}
	case "size":
		fmt.Fprintln(out, terminalSize())
	case "sleep":
		for {
			time.Sleep(time.Hour)
		}
	case "exit":
		if len(args) > 1 {
			n, err := strconv.Atoi(args[1])
			if err != nil {
				fmt.Fprintf(os.Stderr, "tinysh: exit: %q is not a number\n", args[1])
				return 2, false
			}
			return n, true
		}
		return 0, true
	default:
		fmt.Fprintf(os.Stderr, "tinysh: %s: command not found\n", args[0])
		return 127, false
	}
	return 0, false
}
