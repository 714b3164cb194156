package wasm

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgefabric/edgefabric/test/ocitest"
)

// The C server (examples/cserver), a module with no language runtime of its
// own, served from a preopened socket; the same checks run against its
// native build, the baseline of the benchmarks.

// startCServer runs examples/cserver for WASI in r on a preopened socket,
// with env added to HOSTNAME=wasm, and returns once it serves.
func startCServer(t *testing.T, r *Runtime, env ...string) (*Instance, string) {
	t.Helper()
	module := writeModule(t, ocitest.BuildC(t, "examples/cserver"))
	return serveModule(t, r, Spec{ModulePath: module, Env: append([]string{"HOSTNAME=wasm"}, env...)}, "serving on preopened fd 3")
}

// startCServerNative runs examples/cserver built for this machine as a
// process on a free port, with env added to HOSTNAME=native, and returns its
// address once it serves.
func startCServerNative(t testing.TB, env ...string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "cserver")
	if err := os.WriteFile(bin, ocitest.BuildCNative(t, "examples/cserver"), 0o755); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	out := newSyncBuffer()
	cmd := exec.Command(bin)
	cmd.Env = append([]string{"PORT=" + port, "HOSTNAME=native"}, env...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	out.waitFor(t, "serving on")
	return addr
}

func TestCServer(t *testing.T) {
	r := newRuntime(t, sharedCache)
	for _, tt := range []struct {
		name, host string
		start      func(t *testing.T, env ...string) string
	}{
		{"wasm", "wasm", func(t *testing.T, env ...string) string {
			inst, addr := startCServer(t, r, env...)
			t.Cleanup(func() {
				select {
				case <-inst.Done():
					t.Errorf("the module ended while serving: %+v", inst.Result())
				default:
				}
			})
			return addr
		}},
		{"native", "native", func(t *testing.T, env ...string) string { return startCServerNative(t, env...) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Run("serve", func(t *testing.T) { checkCServer(t, tt.start(t), tt.host) })
			t.Run("connection limit", func(t *testing.T) { checkConnLimit(t, tt.start(t, "MAX_CONNS=2")) })
			t.Run("idle timeout", func(t *testing.T) {
				c := dial(t, tt.start(t, "IDLE_TIMEOUT=1"))
				expectClosed(t, c, bufio.NewReader(c))
			})
		})
	}
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// answer is a response read off a connection, its body read and closed.
type answer struct {
	status int
	header http.Header
	close  bool  // the server said it closes the connection
	length int64 // Content-Length
	body   string
}

// readResponse reads one response (to a request with method) and its body.
func readResponse(t *testing.T, c net.Conn, br *bufio.Reader, method string) answer {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, close: resp.Close, length: resp.ContentLength, body: string(b)}
}

// expectClosed waits for the server to close c.
func expectClosed(t *testing.T, c net.Conn, br *bufio.Reader) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if b, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Errorf("connection not closed by the server: read %q, %v", b, err)
	}
}

func checkCServer(t *testing.T, addr, host string) {
	client := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(client.CloseIdleConnections)

	t.Run("endpoints", func(t *testing.T) {
		work := func(n int) string { return sha256Hex(make([]byte, n)) + "\n" }
		for _, tt := range []struct {
			method, path string
			status       int
			body         string
		}{
			{"GET", "/", 200, "hello from " + host + "\n"},
			{"GET", "/?x=1", 200, "hello from " + host + "\n"},
			{"HEAD", "/", 200, ""},
			{"GET", "/work", 200, work(1024)},
			{"GET", "/work?n=0", 200, work(0)},
			{"GET", "/work?n=1", 200, work(1)},
			{"GET", "/work?n=55", 200, work(55)},
			{"GET", "/work?n=56", 200, work(56)},
			{"GET", "/work?n=63", 200, work(63)},
			{"GET", "/work?n=64", 200, work(64)},
			{"GET", "/work?n=65", 200, work(65)},
			{"GET", "/work?x=y&n=4097", 200, work(4097)},
			{"GET", "/work?n=1000000", 200, work(1000000)},
			{"GET", "/work?n=junk", 200, work(1024)},
			{"GET", "/work?n=99999999999", 200, work(1024)},
			{"GET", "/nope", 404, "404 page not found\n"},
			{"POST", "/", 405, "method not allowed\n"},
			{"GET", "/sha256", 405, "method not allowed\n"},
			{"GET", "/bytes?n=-1", 400, "n must be a byte count\n"},
			{"GET", "/bytes", 400, "n must be a byte count\n"},
		} {
			req, _ := http.NewRequest(tt.method, "http://"+addr+tt.path, nil)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatalf("%s %s: %v", tt.method, tt.path, err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status || string(b) != tt.body {
				t.Errorf("%s %s: got %d %q, want %d %q", tt.method, tt.path, resp.StatusCode, b, tt.status, tt.body)
			}
			if resp.Header.Get("Date") == "" {
				t.Errorf("%s %s: no Date header", tt.method, tt.path)
			}
		}
	})

	t.Run("sha256 of bodies", func(t *testing.T) {
		// Lengths around SHA-256's 64-byte blocks and its padding
		// (55/56), and bodies larger than a read.
		rng := rand.New(rand.NewPCG(1, 2))
		for _, n := range []int{0, 1, 3, 55, 56, 57, 63, 64, 65, 119, 120, 1000, 8191, 65537, 1 << 20} {
			body := make([]byte, n)
			for i := range body {
				body[i] = byte(rng.UintN(256))
			}
			resp, err := client.Post("http://"+addr+"/sha256", "application/octet-stream", bytes.NewReader(body))
			if err != nil {
				t.Fatalf("POST %d bytes: %v", n, err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if want := fmt.Sprintf("%s %d\n", sha256Hex(body), n); string(got) != want {
				t.Errorf("POST /sha256 of %d bytes: got %q, want %q", n, got, want)
			}
		}
		// FIPS 180-2's "abc" and two-block vectors.
		for body, want := range map[string]string{
			"abc": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
			"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq": "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
		} {
			resp, err := client.Post("http://"+addr+"/sha256", "text/plain", strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if w := fmt.Sprintf("%s %d\n", want, len(body)); string(got) != w {
				t.Errorf("POST /sha256 %q: got %q, want %q", body, got, w)
			}
		}
	})

	t.Run("bytes", func(t *testing.T) {
		var first []byte
		for _, n := range []int{0, 1, 7, 100000, 3 << 20} {
			resp, err := client.Get(fmt.Sprintf("http://%s/bytes?n=%d&seed=7", addr, n))
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || len(b) != n || resp.ContentLength != int64(n) {
				t.Errorf("GET /bytes?n=%d: got %d bytes (Content-Length %d), %v", n, len(b), resp.ContentLength, err)
			}
			if first != nil && len(b) >= len(first) && !bytes.Equal(b[:len(first)], first) {
				t.Errorf("GET /bytes?n=%d: not the same sequence as a shorter answer", n)
			}
			if n == 100000 {
				first = b
			}
		}
	})

	t.Run("concurrent keep-alive connections", func(t *testing.T) {
		const conns, requests = 8, 50
		var wg sync.WaitGroup
		for k := range conns {
			c := dial(t, addr)
			wg.Go(func() {
				br := bufio.NewReader(c)
				for i := range requests {
					n := k*requests + i
					if _, err := fmt.Fprintf(c, "GET /work?n=%d HTTP/1.1\r\nHost: x\r\n\r\n", n); err != nil {
						t.Errorf("connection %d: write: %v", k, err)
						return
					}
					_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
					resp, err := http.ReadResponse(br, nil)
					if err != nil {
						t.Errorf("connection %d, request %d: %v", k, i, err)
						return
					}
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if want := sha256Hex(make([]byte, n)) + "\n"; string(b) != want || resp.Close {
						t.Errorf("connection %d: GET /work?n=%d: got %q (close %v), want %q", k, n, b, resp.Close, want)
						return
					}
				}
			})
		}
		wg.Wait()
	})

	t.Run("pipelined and partial requests", func(t *testing.T) {
		c := dial(t, addr)
		br := bufio.NewReader(c)
		reqs := "GET /work?n=1 HTTP/1.1\r\nHost: x\r\n\r\n" +
			"POST /sha256 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc" +
			"GET /nope HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nxxxxx" + // its body is skipped
			"HEAD /bytes?n=5 HTTP/1.1\r\nHost: x\r\n\r\n" +
			"\r\nGET / HTTP/1.1\nHost: x\n\n" // a leading empty line, bare LFs
		want := []struct {
			method string
			status int
			body   string
		}{
			{"GET", 200, sha256Hex([]byte{0}) + "\n"},
			{"POST", 200, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad 3\n"},
			{"GET", 404, "404 page not found\n"},
			{"HEAD", 200, ""},
			{"GET", 200, "hello from " + host + "\n"},
		}
		check := func(how string) {
			for i, w := range want {
				a := readResponse(t, c, br, w.method)
				if a.status != w.status || a.body != w.body {
					t.Errorf("%s, response %d: got %d %q, want %d %q", how, i, a.status, a.body, w.status, w.body)
				}
				if w.method == "HEAD" && a.length != 5 {
					t.Errorf("%s: HEAD /bytes?n=5: Content-Length %d, want 5", how, a.length)
				}
			}
		}
		if _, err := io.WriteString(c, reqs); err != nil {
			t.Fatal(err)
		}
		check("in one write")
		// The same in pieces of 7 bytes, each its own segment.
		for i := 0; i < len(reqs); i += 7 {
			if _, err := io.WriteString(c, reqs[i:min(i+7, len(reqs))]); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Millisecond)
		}
		check("in pieces")
	})

	t.Run("bad requests", func(t *testing.T) {
		for _, tt := range []struct {
			name, req string
			status    int
		}{
			{"garbage", "GARBAGE\r\n\r\n", 400},
			{"garbage line before the head ends", "GARBAGE\r\n", 400},
			{"binary", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400},
			{"no Host", "GET / HTTP/1.1\r\n\r\n", 400},
			{"two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
			{"bad Content-Length", "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n", 400},
			{"conflicting Content-Lengths", "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400},
			{"line folding", "GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", 400},
			{"space before colon", "GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400},
			{"control character in target", "GET /\x01 HTTP/1.1\r\nHost: x\r\n\r\n", 400},
			{"target not a path", "GET nope HTTP/1.1\r\nHost: x\r\n\r\n", 400},
			{"chunked", "POST /sha256 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 501},
			{"no length", "POST /sha256 HTTP/1.1\r\nHost: x\r\n\r\n", 411},
			{"unknown expectation", "GET / HTTP/1.1\r\nHost: x\r\nExpect: magic\r\n\r\n", 417},
			{"expecting to send a body nobody reads", "GET /nope HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n", 404},
			{"HTTP/2.0", "GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505},
			{"head too large", "GET / HTTP/1.1\r\nHost: x\r\nX: " + strings.Repeat("a", 9000), 431},
		} {
			t.Run(tt.name, func(t *testing.T) {
				c := dial(t, addr)
				br := bufio.NewReader(c)
				if _, err := io.WriteString(c, tt.req); err != nil {
					t.Fatal(err)
				}
				a := readResponse(t, c, br, "GET")
				if a.status != tt.status || !a.close {
					t.Errorf("got %d (close %v) %q, want %d and close", a.status, a.close, a.body, tt.status)
				}
				expectClosed(t, c, br)
			})
		}
	})

	t.Run("expect 100-continue", func(t *testing.T) {
		c := dial(t, addr)
		br := bufio.NewReader(c)
		for range 2 { // and again on the same connection
			if _, err := io.WriteString(c, "POST /sha256 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			if a := readResponse(t, c, br, "POST"); a.status != http.StatusContinue {
				t.Fatalf("before the body: got %d %q, want 100", a.status, a.body)
			}
			if _, err := io.WriteString(c, "abc"); err != nil {
				t.Fatal(err)
			}
			want := "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad 3\n"
			if a := readResponse(t, c, br, "POST"); a.status != http.StatusOK || a.body != want {
				t.Errorf("after the body: got %d %q, want 200 %q", a.status, a.body, want)
			}
		}
	})

	t.Run("connection semantics", func(t *testing.T) {
		for _, tt := range []struct {
			name, req string
			closes    bool
			header    string // the response's Connection header
		}{
			{"HTTP/1.1", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", false, ""},
			{"HTTP/1.1 close", "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", true, "close"},
			{"HTTP/1.0", "GET / HTTP/1.0\r\n\r\n", true, "close"},
			{"HTTP/1.0 keep-alive", "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", false, "keep-alive"},
			{"after a 404", "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", false, ""},
		} {
			t.Run(tt.name, func(t *testing.T) {
				c := dial(t, addr)
				br := bufio.NewReader(c)
				if _, err := io.WriteString(c, tt.req); err != nil {
					t.Fatal(err)
				}
				a := readResponse(t, c, br, "GET")
				// ReadResponse turns "Connection: close" into Close.
				if got := a.header.Get("Connection"); got != tt.header && (tt.header != "close" || !a.close) {
					t.Errorf("Connection header: got %q (close %v), want %q", got, a.close, tt.header)
				}
				if tt.closes {
					expectClosed(t, c, br)
					return
				}
				// Still open: a second request is answered.
				if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
					t.Fatal(err)
				}
				if a := readResponse(t, c, br, "GET"); a.status != http.StatusOK {
					t.Errorf("second request: got %d %q", a.status, a.body)
				}
			})
		}
	})

	t.Run("random input", func(t *testing.T) {
		// Random bytes, and valid requests with random bytes flipped,
		// cut off anywhere: each connection gets whatever answers the
		// server gives (or none) and is closed; the server goes on.
		rng := rand.New(rand.NewPCG(3, 4))
		valid := []byte("POST /sha256?n=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\nabcGET /work?n=9 HTTP/1.1\r\nHost: x\r\n\r\n")
		for i := range 200 {
			var in []byte
			if i%2 == 0 {
				in = make([]byte, rng.IntN(20000))
				for k := range in {
					in[k] = byte(rng.UintN(256))
				}
			} else {
				in = bytes.Clone(valid)
				for range 1 + rng.IntN(4) {
					in[rng.IntN(len(in))] = byte(rng.UintN(256))
				}
				in = in[:rng.IntN(len(in)+1)]
			}
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatalf("connection %d: %v", i, err)
			}
			_, _ = c.Write(in)
			if i%4 == 1 {
				// Read what comes until the server closes or goes quiet.
				_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
				_, _ = io.Copy(io.Discard, c)
			}
			c.Close()
		}
	})

	t.Run("still serving", func(t *testing.T) {
		resp, err := client.Get("http://" + addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := "hello from " + host + "\n"; string(b) != want {
			t.Errorf("got %q, want %q", b, want)
		}
	})
}

// checkConnLimit checks a server started with MAX_CONNS=2: a third
// connection is not served until one of the first two closes.
func checkConnLimit(t *testing.T, addr string) {
	get := func(c net.Conn, br *bufio.Reader) {
		t.Helper()
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		if a := readResponse(t, c, br, "GET"); a.status != http.StatusOK {
			t.Fatalf("got %d %q", a.status, a.body)
		}
	}
	c1, c2 := dial(t, addr), dial(t, addr)
	get(c1, bufio.NewReader(c1))
	get(c2, bufio.NewReader(c2))
	c3 := dial(t, addr) // in the listener's backlog
	if _, err := io.WriteString(c3, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = c3.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	br3 := bufio.NewReader(c3)
	if b, err := br3.ReadByte(); err == nil {
		t.Fatalf("a third connection was served beyond MAX_CONNS=2 (read %q)", b)
	}
	c1.Close()
	a := readResponse(t, c3, br3, "GET")
	if a.status != http.StatusOK || !strings.HasPrefix(a.body, "hello from ") {
		t.Errorf("third connection after the first closed: got %d %q", a.status, a.body)
	}
}
