// Command echo-go is a CGI function built for GOOS=wasip1 GOARCH=wasm: it
// answers with the request's method, path and query on one line, then
// echoes the request body. Its query can ask for more:
//
//	status=404       a Status header
//	location=/x      a Location header
//	header=K:V       a header (repeatable)
//	env=NAME         a line "NAME=value" from its environment (repeatable)
//	malformed        output that is no CGI response
//	loop             compute forever before answering
//	alloc=MB         allocate and touch MB megabytes first
package main

import (
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
)

func main() {
	q, _ := url.ParseQuery(os.Getenv("QUERY_STRING"))
	if q.Has("malformed") {
		fmt.Print("this is not a header\n\n")
		return
	}
	if q.Has("loop") {
		n := 0
		for {
			n++
		}
	}
	if mb, err := strconv.Atoi(q.Get("alloc")); err == nil {
		b := make([]byte, mb<<20)
		for i := range b {
			b[i] = 1
		}
	}
	fmt.Print("Content-Type: text/plain\r\nX-Function: echo-go\r\n")
	if s := q.Get("status"); s != "" {
		fmt.Printf("Status: %s\r\n", s)
	}
	if l := q.Get("location"); l != "" {
		fmt.Printf("Location: %s\r\n", l)
	}
	for _, h := range q["header"] {
		fmt.Printf("%s\r\n", h)
	}
	fmt.Print("\r\n")
	fmt.Printf("%s %s?%s\n", os.Getenv("REQUEST_METHOD"), os.Getenv("PATH_INFO"), os.Getenv("QUERY_STRING"))
	for _, name := range q["env"] {
		fmt.Printf("%s=%s\n", name, os.Getenv(name))
	}
	if _, err := io.Copy(os.Stdout, os.Stdin); err != nil {
		fmt.Fprintln(os.Stderr, "echo-go: copy body:", err)
		os.Exit(1)
	}
}
