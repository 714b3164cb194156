package function

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgefabric/edgefabric/pkg/agent/runtime/wasm"
	"github.com/edgefabric/edgefabric/pkg/apis/hub/v1/reasons"
)

// Config configures one function.
type Config struct {
	// Name names the function in errors; empty is "function".
	Name string
	// ModulePath is the file of the WASI command module. Deploy compiles
	// it; the runtime keeps the compiled module.
	ModulePath string
	// Args is the module's argv; empty is the base name of ModulePath.
	Args []string
	// Env holds the function's own "KEY=VALUE" entries, to which each
	// request adds its CGI variables (see Env); nil is none.
	Env []string
	// Dirs and ReadOnlyDirs map guest paths to host directories mounted
	// read-write and read-only, as in wasm.Spec; empty mounts nothing.
	Dirs, ReadOnlyDirs map[string]string
	// MemoryLimitBytes caps each instance's linear memory, as in
	// wasm.Spec; 0 leaves the runtime's default.
	MemoryLimitBytes int64
	// MaxConcurrency is how many instances may run at once; at least 1.
	MaxConcurrency int
	// MaxQueue is how many requests beyond MaxConcurrency wait for an
	// instance; more get 503 at once. 0 lets none wait.
	MaxQueue int
	// QueueTimeout is how long a request waits in the queue before it gets
	// 503; must be positive when MaxQueue is.
	QueueTimeout time.Duration
	// Timeout bounds each invocation, from the start of its instance to
	// the end of its response; the instance is then closed and, if no
	// response was sent yet, the client gets 504. Must be positive.
	Timeout time.Duration
	// Log receives the modules' standard error and one line per
	// invocation; nil discards both. It is written from several
	// goroutines, one write at a time.
	Log io.Writer
}

// DefaultConfig returns a Config with the limits a function gets unless its
// pod says otherwise, for the module at modulePath.
func DefaultConfig(modulePath string) Config {
	return Config{
		ModulePath:     modulePath,
		MaxConcurrency: 4,
		MaxQueue:       32,
		QueueTimeout:   10 * time.Second,
		Timeout:        30 * time.Second,
	}
}

// Validate reports the first invalid field of c.
func (c Config) Validate() error {
	switch {
	case c.ModulePath == "":
		return errors.New("no module path")
	case c.MemoryLimitBytes < 0:
		return fmt.Errorf("negative memory limit %d", c.MemoryLimitBytes)
	case c.MaxConcurrency < 1:
		return fmt.Errorf("concurrency limit %d is below 1", c.MaxConcurrency)
	case c.MaxQueue < 0:
		return fmt.Errorf("negative queue length %d", c.MaxQueue)
	case c.MaxQueue > 0 && c.QueueTimeout <= 0:
		return fmt.Errorf("queue timeout %s is not positive", c.QueueTimeout)
	case c.Timeout <= 0:
		return fmt.Errorf("timeout %s is not positive", c.Timeout)
	}
	return nil
}

// Stats counts what a function did since it was deployed.
type Stats struct {
	// Invocations counts the requests served, rejected ones included.
	Invocations int64
	// ColdStarts counts the instances started for a request.
	ColdStarts int64
	// Errors counts the requests answered with an error of the function's
	// or of the runtime's: rejected (503), timed out (504), malformed
	// output or a module that failed before its response (502), and
	// modules that failed after their header was sent.
	Errors int64
	// InFlight is the number of requests being served now, queued ones
	// included; Queued those of them waiting for an instance.
	InFlight, Queued int64
}

// Function is a deployed function. It holds no instance while no request
// is in flight. Its methods are safe for concurrent use.
type Function struct {
	rt   *wasm.Runtime
	cfg  Config
	name string
	log  *lockedWriter

	slots chan struct{} // one token per running instance

	// undeployed ends when Close is called; it ends every invocation.
	undeployed context.Context
	undeploy   context.CancelFunc
	mu         sync.Mutex
	closed     bool
	wg         sync.WaitGroup // requests in Serve

	invocations, coldStarts, errs, inFlight, queued atomic.Int64

	// onQueue, if set (by tests), is called when a request starts to wait
	// in the queue.
	onQueue func()
}

var _ http.Handler = (*Function)(nil)

// Deploy compiles the function's module (unless the runtime has it
// already) and returns the Function, which starts no instance until it
// serves a request.
func Deploy(ctx context.Context, rt *wasm.Runtime, cfg Config) (*Function, error) {
	name := cfg.Name
	if name == "" {
		name = "function"
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("deploy %s: %w", name, err)
	}
	if err := rt.Compile(ctx, cfg.ModulePath); err != nil {
		return nil, fmt.Errorf("deploy %s: %w", name, err)
	}
	undeployed, undeploy := context.WithCancel(context.Background())
	return &Function{
		rt:         rt,
		cfg:        cfg,
		name:       name,
		log:        &lockedWriter{w: cfg.Log},
		slots:      make(chan struct{}, cfg.MaxConcurrency),
		undeployed: undeployed,
		undeploy:   undeploy,
	}, nil
}

// Close stops the instances still running, answers requests still queued
// with 503, and returns once every Serve has returned. Later requests get
// 503.
func (f *Function) Close() {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	f.undeploy()
	f.wg.Wait()
}

// Stats returns the function's counters.
func (f *Function) Stats() Stats {
	return Stats{
		Invocations: f.invocations.Load(),
		ColdStarts:  f.coldStarts.Load(),
		Errors:      f.errs.Load(),
		InFlight:    f.inFlight.Load(),
		Queued:      f.queued.Load(),
	}
}

// ServeHTTP serves r with the whole path as PATH_INFO.
func (f *Function) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.Serve(r.Context(), w, r, r.URL.Path)
}

// Serve runs one instance of the function for r and writes its response to
// w; pathInfo is the part of r's path that follows the function's name. It
// returns when the instance has ended, having written either the module's
// response or an error: 503 when the function is busy, 504 when the
// invocation timed out before a response, 502 when the module failed before
// a response or wrote no valid CGI header, 500 when it could not be
// started. ctx (which should end with r's) ending stops the instance.
func (f *Function) Serve(ctx context.Context, w http.ResponseWriter, r *http.Request, pathInfo string) {
	start := time.Now()
	f.invocations.Add(1)
	sw := &statusWriter{ResponseWriter: w}
	f.mu.Lock()
	closed := f.closed
	if !closed {
		f.wg.Add(1)
	}
	f.mu.Unlock()
	if closed {
		f.errs.Add(1)
		sw.error(http.StatusServiceUnavailable, "function %s is not deployed", f.name)
		return
	}
	f.inFlight.Add(1)
	defer func() {
		if p := recover(); p != nil {
			f.errs.Add(1)
			fmt.Fprintf(f.log, "function %s panicked serving %s %s: %v\n", f.name, r.Method, r.URL.Path, p)
			if sw.status == 0 {
				sw.error(http.StatusInternalServerError, "function %s: internal error", f.name)
			}
		}
		f.inFlight.Add(-1)
		f.wg.Done()
		fmt.Fprintf(f.log, "%s %s %d %s cold\n", r.Method, r.URL.Path, sw.status, time.Since(start).Round(time.Microsecond))
	}()
	if strings.ContainsFunc(r.URL.Path, isCtl) || strings.ContainsFunc(pathInfo, isCtl) {
		sw.error(http.StatusBadRequest, "function %s: control character in the path", f.name)
		return
	}
	if err := f.acquire(ctx); err != nil {
		f.errs.Add(1)
		sw.error(http.StatusServiceUnavailable, "function %s: %v", f.name, err)
		return
	}
	defer func() { <-f.slots }()
	if !f.invoke(ctx, sw, r, pathInfo) {
		f.errs.Add(1)
	}
}

// errBusy is why a request found no instance.
var errBusy = errors.New("too many requests")

// acquire takes a slot, waiting in the queue if there is room in it.
func (f *Function) acquire(ctx context.Context) error {
	select {
	case f.slots <- struct{}{}:
		return nil
	default:
	}
	if f.queued.Add(1) > int64(f.cfg.MaxQueue) {
		f.queued.Add(-1)
		return fmt.Errorf("%w: %d running, %d waiting", errBusy, f.cfg.MaxConcurrency, f.cfg.MaxQueue)
	}
	defer f.queued.Add(-1)
	if f.onQueue != nil {
		f.onQueue()
	}
	t := time.NewTimer(f.cfg.QueueTimeout)
	defer t.Stop()
	select {
	case f.slots <- struct{}{}:
		return nil
	case <-t.C:
		return fmt.Errorf("%w: waited %s for an instance", errBusy, f.cfg.QueueTimeout)
	case <-ctx.Done():
		return fmt.Errorf("waiting for an instance: %w", context.Cause(ctx))
	case <-f.undeployed.Done():
		return errors.New("undeployed while waiting for an instance")
	}
}

// errTimeout ends the output of an instance that ran out of time.
var errTimeout = errors.New("invocation timed out")

// invoke runs one instance for r and streams its response to w. It reports
// whether the invocation succeeded.
func (f *Function) invoke(ctx context.Context, w *statusWriter, r *http.Request, pathInfo string) bool {
	ctx, cancel := context.WithTimeoutCause(ctx, f.cfg.Timeout, errTimeout)
	defer cancel()
	stopUndeploy := context.AfterFunc(f.undeployed, cancel)
	defer stopUndeploy()

	body := r.Body
	if body == nil {
		body = http.NoBody
	}
	stdin := &requestBody{r: body, rc: http.NewResponseController(w.ResponseWriter)}
	// The module may read its input after it has written its header, as
	// a CGI program may: without this, net/http takes the body away once
	// the header is sent (an error where the ResponseWriter cannot do it).
	_ = stdin.rc.EnableFullDuplex()
	pr, pw := io.Pipe()
	inst, err := f.rt.Start(ctx, wasm.Spec{
		ModulePath:       f.cfg.ModulePath,
		Args:             f.cfg.Args,
		Env:              Env(r, pathInfo, f.cfg.Env),
		MemoryLimitBytes: f.cfg.MemoryLimitBytes,
		Stdin:            stdin,
		Stdout:           pw,
		Stderr:           f.log,
		Dirs:             f.cfg.Dirs,
		ReadOnlyDirs:     f.cfg.ReadOnlyDirs,
	})
	if err != nil {
		w.error(http.StatusInternalServerError, "function %s: %v", f.name, err)
		return false
	}
	f.coldStarts.Add(1)
	// The order matters, as deferred: first the pipe is closed, so that a
	// module blocked writing its output is released, then the instance is
	// stopped and waited for.
	defer inst.Stop(0)
	defer pr.CloseWithError(errors.New("response ended"))
	go func() {
		<-inst.Done()
		pw.Close() // the output's EOF
	}()
	stopTimeout := context.AfterFunc(ctx, func() {
		pr.CloseWithError(context.Cause(ctx))
		stdin.Close()
		inst.Stop(0)
	})
	defer stopTimeout()

	br := bufio.NewReaderSize(pr, MaxHeaderLine)
	resp, err := ParseHeader(br)
	if err != nil {
		switch {
		case ctx.Err() != nil && errors.Is(context.Cause(ctx), errTimeout):
			w.error(http.StatusGatewayTimeout, "function %s: no response within %s", f.name, f.cfg.Timeout)
		case ctx.Err() != nil:
			w.error(http.StatusServiceUnavailable, "function %s: request ended: %v", f.name, context.Cause(ctx))
		case errors.Is(err, ErrMalformed):
			// The output has ended (EOF) or is wrong: say how the
			// module ended if it did.
			select {
			case <-inst.Done():
			default:
				pr.CloseWithError(err)
				inst.Stop(0)
			}
			if res := inst.Result(); res.Reason != reasons.Completed && res.Reason != reasons.Killed {
				w.error(http.StatusBadGateway, "function %s failed: %s (exit code %d) %s", f.name, res.Reason, res.ExitCode, res.Message)
			} else {
				w.error(http.StatusBadGateway, "function %s: %v", f.name, err)
			}
		default:
			w.error(http.StatusBadGateway, "function %s: %v", f.name, err)
		}
		return false
	}

	h := w.Header()
	for k, v := range resp.Header {
		h[k] = v
	}
	w.WriteHeader(resp.Status)
	_ = stdin.rc.Flush()
	buf := make([]byte, 32<<10)
	for {
		n, err := br.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				fmt.Fprintf(f.log, "function %s: response cut: %v\n", f.name, werr)
				return false // the deferred calls stop the instance
			}
			_ = stdin.rc.Flush()
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			fmt.Fprintf(f.log, "function %s: response cut: %v\n", f.name, err)
			return false
		}
	}
	<-inst.Done()
	if res := inst.Result(); res.Reason != reasons.Completed {
		fmt.Fprintf(f.log, "function %s ended %s (exit code %d) after its response header %s\n", f.name, res.Reason, res.ExitCode, res.Message)
		return false
	}
	return true
}

// requestBody is a module's standard input: the request body, whose Close
// (called when the instance is stopped) ends a read blocked on the client.
type requestBody struct {
	r      io.Reader
	rc     *http.ResponseController
	closed atomic.Bool
}

func (b *requestBody) Read(p []byte) (int, error) {
	if b.closed.Load() {
		return 0, io.EOF
	}
	return b.r.Read(p)
}

func (b *requestBody) Close() error {
	b.closed.Store(true)
	_ = b.rc.SetReadDeadline(time.Now())
	return nil
}

// statusWriter notes the status written, for the invocation's log line.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// error answers with a plain text error, unless a status was written.
func (w *statusWriter) error(code int, format string, args ...any) {
	if w.status != 0 {
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	fmt.Fprintf(w, format+"\n", args...)
}

// lockedWriter serialises writes to w; a nil w discards them.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	if l.w == nil {
		return len(p), nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
