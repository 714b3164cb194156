package function

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/edgefabric/edgefabric/pkg/agent/runtime/wasm"
	"github.com/edgefabric/edgefabric/test/ocitest"
)

// runtime is shared by the tests, so that each module is compiled once.
var runtime *wasm.Runtime

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "function-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	runtime, err = wasm.New(context.Background(), wasm.Config{CacheDir: dir}, slog.New(slog.DiscardHandler))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	goleak.VerifyTestMain(m, goleak.Cleanup(func(int) {
		_ = runtime.Close(context.Background())
		os.RemoveAll(dir)
	}))
}

// syncBuffer is a log the test reads while functions write it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// deploy deploys module with the default config changed by edit.
func deploy(t testing.TB, module []byte, edit func(*Config)) (*Function, *syncBuffer) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fn.wasm")
	if err := os.WriteFile(path, module, 0o644); err != nil {
		t.Fatal(err)
	}
	log := &syncBuffer{}
	cfg := DefaultConfig(path)
	cfg.Name = "test"
	cfg.Log = log
	if edit != nil {
		edit(&cfg)
	}
	f, err := Deploy(t.Context(), runtime, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	return f, log
}

// serve serves f at /fn/... on a real HTTP server.
func serve(t *testing.T, f *Function) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.Serve(r.Context(), w, r, strings.TrimPrefix(r.URL.Path, "/fn"))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func tinyWAT(t testing.TB) []byte {
	return ocitest.Wat2Wasm(t, filepath.Join(ocitest.RepoRoot(t), "examples/functions/tiny/tiny.wat"))
}

func echoGo(t testing.TB) []byte { return ocitest.BuildGo(t, "examples/functions/echo-go") }

func echoC(t testing.TB) []byte { return ocitest.BuildC(t, "examples/functions/echo-c") }

// checkIdle checks that no instance is left: the function scaled to zero.
func checkIdle(t *testing.T, f *Function) {
	t.Helper()
	if n := runtime.Instances(); n != 0 {
		t.Errorf("%d instances running after the request, want 0", n)
	}
	if s := f.Stats(); s.InFlight != 0 || s.Queued != 0 {
		t.Errorf("stats %+v: requests still in flight", s)
	}
}

func TestTinyWAT(t *testing.T) {
	f, log := deploy(t, tinyWAT(t), nil)
	if n := runtime.Instances(); n != 0 {
		t.Fatalf("%d instances running once deployed, want 0", n)
	}
	for i := range 3 {
		w := httptest.NewRecorder()
		f.Serve(t.Context(), w, httptest.NewRequest(http.MethodGet, "/fn/x", nil), "/x")
		if w.Code != 200 || w.Body.String() != "hello from wat\n" || w.Header().Get("Content-Type") != "text/plain" {
			t.Fatalf("request %d: got %d %v %q", i, w.Code, w.Header(), w.Body)
		}
		checkIdle(t, f)
	}
	if got, want := f.Stats(), (Stats{Invocations: 3, ColdStarts: 3}); got != want {
		t.Errorf("got stats %+v, want %+v", got, want)
	}
	if !strings.Contains(log.String(), "GET /fn/x 200 ") || !strings.Contains(log.String(), " cold\n") {
		t.Errorf("log %q has no invocation line", log)
	}
}

func TestEcho(t *testing.T) {
	type request struct {
		method, target, body string
		header               http.Header
	}
	type want struct {
		status int
		header http.Header
		body   string
	}
	common := []struct {
		name string
		req  request
		want want
	}{{
		name: "GET",
		req:  request{method: "GET", target: "/fn/a/b?x=1"},
		want: want{status: 200, body: "GET /a/b?x=1\n"},
	}, {
		name: "POST body on stdin",
		req:  request{method: "POST", target: "/fn/post", body: strings.Repeat("body ", 20000)},
		want: want{status: 200, body: "POST /post?\n" + strings.Repeat("body ", 20000)},
	}}
	goOnly := []struct {
		name string
		req  request
		want want
	}{{
		name: "status",
		req:  request{method: "GET", target: "/fn/missing?status=404+Not+Found"},
		want: want{status: 404, body: "GET /missing?status=404+Not+Found\n"},
	}, {
		name: "location gives 302",
		req:  request{method: "GET", target: "/fn/?location=/elsewhere"},
		want: want{status: 302, header: http.Header{"Location": {"/elsewhere"}}, body: "GET /?location=/elsewhere\n"},
	}, {
		name: "headers out, headers in",
		req: request{method: "GET", target: "/fn/h?header=X-Out:%20yes&env=HTTP_X_IN&env=HTTP_PROXY",
			header: http.Header{"X-In": {"in"}, "Proxy": {"http://evil"}}},
		want: want{status: 200, header: http.Header{"X-Out": {"yes"}},
			body: "GET /h?header=X-Out:%20yes&env=HTTP_X_IN&env=HTTP_PROXY\nHTTP_X_IN=in\nHTTP_PROXY=\n"},
	}, {
		name: "malformed output",
		req:  request{method: "GET", target: "/fn/?malformed"},
		want: want{status: 502, body: "function test: malformed CGI response: line \"this is not a header\" is not a header field\n"},
	}}
	modules := []struct {
		name   string
		module func(testing.TB) []byte
		cases  int
	}{
		{"go", echoGo, len(common) + len(goOnly)},
		{"c", echoC, len(common)},
	}
	for _, m := range modules {
		t.Run(m.name, func(t *testing.T) {
			f, _ := deploy(t, m.module(t), nil)
			srv := serve(t, f)
			for _, tc := range append(common, goOnly...)[:m.cases] {
				t.Run(tc.name, func(t *testing.T) {
					req, err := http.NewRequestWithContext(t.Context(), tc.req.method, srv.URL+tc.req.target, strings.NewReader(tc.req.body))
					if err != nil {
						t.Fatal(err)
					}
					for k, v := range tc.req.header {
						req.Header[k] = v
					}
					client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
					resp, err := client.Do(req)
					if err != nil {
						t.Fatal(err)
					}
					defer resp.Body.Close()
					body, err := io.ReadAll(resp.Body)
					if err != nil {
						t.Fatal(err)
					}
					if resp.StatusCode != tc.want.status {
						t.Errorf("got status %d, want %d", resp.StatusCode, tc.want.status)
					}
					for k, v := range tc.want.header {
						if got := resp.Header.Values(k); !slicesEqual(got, v) {
							t.Errorf("got header %s %q, want %q", k, got, v)
						}
					}
					if string(body) != tc.want.body {
						t.Errorf("got body %.200q, want %.200q", body, tc.want.body)
					}
					checkIdle(t, f)
				})
			}
		})
	}
}

func slicesEqual(a, b []string) bool { return strings.Join(a, "\x00") == strings.Join(b, "\x00") }

func TestTimeoutStopsLoopingFunction(t *testing.T) {
	f, log := deploy(t, ocitest.Wat2Wasm(t, "testdata/loop.wat"), func(c *Config) { c.Timeout = 200 * time.Millisecond })
	w := httptest.NewRecorder()
	f.Serve(t.Context(), w, httptest.NewRequest(http.MethodGet, "/fn", nil), "")
	if w.Code != http.StatusGatewayTimeout || !strings.Contains(w.Body.String(), "no response within 200ms") {
		t.Errorf("got %d %q, want 504", w.Code, w.Body)
	}
	checkIdle(t, f)
	if s := f.Stats(); s.Errors != 1 || s.ColdStarts != 1 {
		t.Errorf("got stats %+v, want 1 error", s)
	}
	if !strings.Contains(log.String(), "GET /fn 504 ") {
		t.Errorf("log %q has no invocation line", log)
	}
}

func TestMemoryLimit(t *testing.T) {
	for _, tc := range []struct {
		name   string
		module func(testing.TB) []byte
		target string
	}{
		{"wat", func(t testing.TB) []byte { return ocitest.Wat2Wasm(t, "testdata/grow.wat") }, "/fn"},
		{"go", echoGo, "/fn?alloc=64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, _ := deploy(t, tc.module(t), func(c *Config) { c.MemoryLimitBytes = 32 << 20 })
			w := httptest.NewRecorder()
			f.Serve(t.Context(), w, httptest.NewRequest(http.MethodGet, tc.target, nil), "")
			if w.Code != http.StatusBadGateway || !strings.Contains(w.Body.String(), "function test failed: OOMKilled") {
				t.Errorf("got %d %q, want 502 OOMKilled", w.Code, w.Body)
			}
			checkIdle(t, f)
		})
	}
	t.Run("under the limit", func(t *testing.T) {
		f, _ := deploy(t, echoGo(t), func(c *Config) { c.MemoryLimitBytes = 64 << 20 })
		w := httptest.NewRecorder()
		f.Serve(t.Context(), w, httptest.NewRequest(http.MethodGet, "/fn?alloc=8", nil), "")
		if w.Code != 200 {
			t.Errorf("got %d %q, want 200", w.Code, w.Body)
		}
	})
}

func TestConcurrencyLimit(t *testing.T) {
	f, _ := deploy(t, echoGo(t), func(c *Config) {
		c.MaxConcurrency = 1
		c.MaxQueue = 1
		c.QueueTimeout = time.Minute
	})
	queued := make(chan struct{}, 1)
	f.onQueue = func() { queued <- struct{}{} }
	srv := serve(t, f)
	post := func(body io.Reader) (*http.Response, error) {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/fn/", body)
		if err != nil {
			return nil, err
		}
		return srv.Client().Do(req)
	}

	// The first request runs: its response header has come, and the
	// module waits for the rest of its body.
	bodyA, writeA := io.Pipe()
	respA, err := post(bodyA)
	if err != nil {
		t.Fatal(err)
	}
	defer respA.Body.Close()

	// The second waits in the queue.
	type result struct {
		status int
		body   string
		err    error
	}
	doneB := make(chan result, 1)
	go func() {
		resp, err := post(strings.NewReader("b"))
		if err != nil {
			doneB <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		doneB <- result{resp.StatusCode, string(b), err}
	}()
	<-queued

	// The third finds the queue full.
	respC, err := post(strings.NewReader("c"))
	if err != nil {
		t.Fatal(err)
	}
	c, _ := io.ReadAll(respC.Body)
	respC.Body.Close()
	if respC.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(c), "too many requests: 1 running, 1 waiting") {
		t.Errorf("third request: got %d %q, want 503", respC.StatusCode, c)
	}
	if s := f.Stats(); s.InFlight != 2 || s.Queued != 1 || s.ColdStarts != 1 {
		t.Errorf("got stats %+v, want 2 in flight, 1 queued", s)
	}

	// The first ends; the second runs.
	if _, err := io.WriteString(writeA, "a"); err != nil {
		t.Fatal(err)
	}
	writeA.Close()
	a, err := io.ReadAll(respA.Body)
	if err != nil || string(a) != "POST /?\na" {
		t.Errorf("first request: got %q, %v", a, err)
	}
	b := <-doneB
	if b.err != nil || b.status != 200 || b.body != "POST /?\nb" {
		t.Errorf("second request: got %+v", b)
	}
	if got, want := f.Stats(), (Stats{Invocations: 3, ColdStarts: 2, Errors: 1}); got != want {
		t.Errorf("got stats %+v, want %+v", got, want)
	}
	checkIdle(t, f)
}

// panicWriter panics when the response body is written.
type panicWriter struct{ *httptest.ResponseRecorder }

func (panicWriter) Write([]byte) (int, error) { panic("writer broke") }

func TestPanicRecovers(t *testing.T) {
	f, log := deploy(t, tinyWAT(t), nil)
	w := panicWriter{httptest.NewRecorder()}
	f.Serve(t.Context(), w, httptest.NewRequest(http.MethodGet, "/fn", nil), "")
	if !strings.Contains(log.String(), "function test panicked serving GET /fn: writer broke") {
		t.Errorf("log %q tells of no panic", log)
	}
	if s := f.Stats(); s.Errors != 1 {
		t.Errorf("got stats %+v, want 1 error", s)
	}
	checkIdle(t, f)
}

func TestClientGoneStopsFunction(t *testing.T) {
	f, _ := deploy(t, echoGo(t), nil)
	served := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(served)
		f.Serve(r.Context(), w, r, "/")
	}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(t.Context())
	body, write := io.Pipe()
	defer write.Close()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	cancel() // the module is blocked reading the body
	resp.Body.Close()
	<-served
	checkIdle(t, f)
}

func TestClosedFunction(t *testing.T) {
	f, _ := deploy(t, tinyWAT(t), nil)
	f.Close()
	w := httptest.NewRecorder()
	f.Serve(t.Context(), w, httptest.NewRequest(http.MethodGet, "/fn", nil), "")
	if w.Code != http.StatusServiceUnavailable {
		t.Errorf("got %d, want 503", w.Code)
	}
}

func TestControlCharacterInPath(t *testing.T) {
	f, _ := deploy(t, tinyWAT(t), nil)
	w := httptest.NewRecorder()
	f.Serve(t.Context(), w, httptest.NewRequest(http.MethodGet, "/fn/a%0Ab", nil), "/a\nb")
	if w.Code != http.StatusBadRequest {
		t.Errorf("got %d, want 400", w.Code)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"default", func(*Config) {}, ""},
		{"no module", func(c *Config) { c.ModulePath = "" }, "no module path"},
		{"no concurrency", func(c *Config) { c.MaxConcurrency = 0 }, "concurrency limit 0 is below 1"},
		{"negative queue", func(c *Config) { c.MaxQueue = -1 }, "negative queue length -1"},
		{"queue without timeout", func(c *Config) { c.QueueTimeout = 0 }, "queue timeout 0s is not positive"},
		{"no queue, no queue timeout", func(c *Config) { c.MaxQueue, c.QueueTimeout = 0, 0 }, ""},
		{"no timeout", func(c *Config) { c.Timeout = 0 }, "timeout 0s is not positive"},
		{"negative memory", func(c *Config) { c.MemoryLimitBytes = -1 }, "negative memory limit -1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig("/m.wasm")
			tc.edit(&c)
			got := ""
			if err := c.Validate(); err != nil {
				got = err.Error()
			}
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
