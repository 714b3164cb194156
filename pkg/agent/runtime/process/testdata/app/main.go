// Command app is the process runtime's test container. Its first argument
// picks what it does.
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Println("usage: app MODE")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "info":
		// args, working dir, pid, an env var and a file.
		wd, _ := os.Getwd()
		fmt.Printf("args=%v\nwd=%s\npid=%d\nGREETING=%s\nuid=%d gid=%d\n", os.Args[2:], wd, os.Getpid(), os.Getenv("GREETING"), os.Getuid(), os.Getgid())
		file := os.Getenv("FILE")
		if file == "" {
			file = "/data/in.txt"
		}
		b, err := os.ReadFile(file)
		fmt.Printf("file=%q err=%v\n", b, err)
		if err := os.WriteFile("/written.txt", []byte("x"), 0o644); err != nil {
			fmt.Printf("write-root-err=%v\n", err)
		}
		if len(os.Args) > 2 {
			code, _ := strconv.Atoi(os.Args[2])
			os.Exit(code)
		}
	case "cat":
		b, err := os.ReadFile(os.Args[2])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Stdout.Write(b)
	case "serve":
		// Runs until SIGTERM, then says so and exits 0.
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGTERM)
		fmt.Println("running")
		<-ch
		fmt.Println("terminated")
	case "stubborn":
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("running")
		time.Sleep(time.Hour)
	case "eat":
		// Allocates and touches memory until killed.
		var keep [][]byte
		for {
			b := make([]byte, 8<<20)
			for k := range b {
				if k%4096 == 0 {
					b[k] = 1
				}
			}
			keep = append(keep, b)
			time.Sleep(5 * time.Millisecond)
		}
	case "http":
		// Serves /healthz on 127.0.0.1:PORT: 200 unless the file SICK
		// names exists; runs until SIGTERM.
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGTERM)
		http.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
			if _, err := os.Stat(os.Getenv("SICK")); err == nil {
				http.Error(w, "sick", http.StatusInternalServerError)
				return
			}
			fmt.Fprintln(w, "ok")
		})
		ln, err := net.Listen("tcp", "127.0.0.1:"+os.Getenv("PORT"))
		if err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		fmt.Println("listening")
		go http.Serve(ln, nil)
		<-ch
	case "append":
		// Appends its second argument and a newline to the file named first.
		f, err := os.OpenFile(os.Args[2], os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		fmt.Fprintln(f, os.Args[3])
		f.Close()
		if len(os.Args) > 4 {
			code, _ := strconv.Atoi(os.Args[4])
			os.Exit(code)
		}
	case "spin":
		for {
		}
	case "tty":
		tty()
	case "sandbox":
		sandbox()
	case "ns":
		namespaces()
	case "userns":
		userns()
	}
}
