package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os/exec"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/edgefabric/edgefabric/pkg/agent/image"
	"github.com/edgefabric/edgefabric/pkg/agent/ldisc"
	"github.com/edgefabric/edgefabric/pkg/agent/pty"
	"github.com/edgefabric/edgefabric/pkg/agent/runtime/wasm"
	hubv1 "github.com/edgefabric/edgefabric/pkg/apis/hub/v1"
)

// TerminalSize is a terminal's size in characters.
type TerminalSize = pty.Size

// ExecRequest is one command to run in a running container (kubectl exec).
type ExecRequest struct {
	// Command is the argv; Command[0] names the program.
	Command []string
	// Stdin is the command's standard input; nil reads as empty.
	Stdin io.Reader
	// Stdout and Stderr receive its output; nil discards it.
	Stdout, Stderr io.Writer
	// TTY asks for a terminal; Resize carries its size changes. A runtime
	// with terminals (process) runs the command on a pseudo-terminal; for
	// one without (WASM) the agent plays the terminal's line discipline
	// (package ldisc) and ignores the size. Output then goes to Stdout
	// only.
	TTY    bool
	Resize <-chan TerminalSize
}

// ExitError is an exec's command that could not run, with the exit code a
// shell gives for it: 126 (cannot run) or 127 (not found).
type ExitError struct {
	Code    int
	Message string
}

func (e *ExitError) Error() string { return e.Message }

// ErrNotRunning is returned by Exec and Attach for a container that does not
// run now.
var ErrNotRunning = errors.New("container is not running")

// running is what exec, attach and usage reports reach of a running container.
type running struct {
	inst Instance
	// commands, if set, says whether the container's image can run a
	// command named so (an *ExitError if not), and which module of the
	// image runs it ("": the container's own).
	commands func(name string) (module string, err error)
	attach   *attachPoint
	usage    func() wasm.Usage // nil: not measured
	started  time.Time
}

// Usage reports what the running containers of every workload use now.
func (s *Supervisor) Usage() []*hubv1.WorkloadUsage {
	s.mu.Lock()
	ws := make([]*workload, 0, len(s.workloads))
	for _, w := range s.workloads {
		ws = append(ws, w)
	}
	s.mu.Unlock()
	now := timestamppb.Now()
	var out []*hubv1.WorkloadUsage
	for _, w := range ws {
		w.mu.Lock()
		wu := &hubv1.WorkloadUsage{Uid: w.spec.GetUid(), Time: now}
		for name, r := range w.running {
			if r.usage == nil {
				continue
			}
			u := r.usage()
			wu.Containers = append(wu.Containers, &hubv1.ContainerUsage{
				Name: name, CpuUsageNanos: u.CPUNanos, CpuMeasured: u.CPUMeasured, MemoryBytes: u.MemoryBytes,
				StartTime: timestamppb.New(r.started),
			})
		}
		w.mu.Unlock()
		if len(wu.Containers) > 0 {
			sort.Slice(wu.Containers, func(i, j int) bool { return wu.Containers[i].GetName() < wu.Containers[j].GetName() })
			out = append(out, wu)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GetUid() < out[j].GetUid() })
	return out
}

func (w *workload) setRunning(name string, r *running) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.running == nil {
		w.running = map[string]*running{}
	}
	if r == nil {
		delete(w.running, name)
		return
	}
	w.running[name] = r
}

func (s *Supervisor) runningContainer(uid, container string) (*running, string, error) {
	s.mu.Lock()
	w, ok := s.workloads[uid]
	s.mu.Unlock()
	if !ok {
		return nil, "", fmt.Errorf("workload %s does not run on this device", uid)
	}
	w.mu.Lock()
	r := w.running[container]
	w.mu.Unlock()
	if r == nil {
		return nil, w.key(), fmt.Errorf("container %q in pod %s: %w", container, w.key(), ErrNotRunning)
	}
	return r, w.key(), nil
}

// Exec runs a command in a running container of workload uid, in the
// container's environment (see Execer), until it ends or ctx ends (which
// stops it). It returns the command's exit code, or an *ExitError for a
// command that could not run.
func (s *Supervisor) Exec(ctx context.Context, uid, container string, req ExecRequest) (int, error) {
	r, key, err := s.runningContainer(uid, container)
	if err != nil {
		return 0, err
	}
	if len(req.Command) == 0 || req.Command[0] == "" {
		return 0, &ExitError{Code: 127, Message: "exec: no command given"}
	}
	_, ok := r.inst.(Execer)
	if !ok {
		return 0, &ExitError{Code: 126, Message: fmt.Sprintf("exec: the runtime of container %q in pod %s cannot run commands", container, key)}
	}
	module := ""
	if r.commands != nil {
		if module, err = r.commands(req.Command[0]); err != nil {
			return 0, err
		}
	}
	var code int
	switch te, ok := r.inst.(terminalExecer); {
	case req.TTY && ok && module == "":
		code, err = te.ExecTTY(ctx, req.Command, req.Stdin, req.Stdout, req.Resize)
	case req.TTY:
		code, err = execOnLineDiscipline(ctx, r.inst, module, req)
	default:
		code, err = execPlain(ctx, r.inst, module, req)
	}
	if err != nil {
		exit := &ExitError{Code: 126, Message: fmt.Sprintf("exec %s: %v", req.Command[0], err)}
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, exec.ErrNotFound) {
			exit.Code = 127
		}
		return 0, exit
	}
	return code, nil
}

// execPlain runs req's command with its streams as they are.
func execPlain(ctx context.Context, inst Instance, module string, req ExecRequest) (int, error) {
	if me, ok := inst.(moduleExecer); ok && module != "" {
		return me.ExecModule(ctx, module, req.Command, req.Stdin, req.Stdout, req.Stderr)
	}
	return inst.(Execer).Exec(ctx, req.Command, req.Stdin, req.Stdout, req.Stderr)
}

// execOnLineDiscipline runs req's command, which has no terminal, behind
// the line discipline a terminal would give it: the client's keystrokes
// are echoed and reach it a line at a time, its output lines end in CRNL,
// and ^C ends it with the exit code of SIGINT (130).
func execOnLineDiscipline(ctx context.Context, inst Instance, module string, req ExecRequest) (int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s := ldisc.New(req.Stdin, req.Stdout, cancel)
	defer s.Close()
	// Not joined: it ends with the client's input, which the caller
	// closes once the exec returned, or with s.Close.
	go s.Run()
	req.Stdin, req.Stdout, req.Stderr = s.Stdin(), s.Stdout(), s.Stdout()
	code, err := execPlain(ctx, inst, module, req)
	if err == nil && s.Interrupted() {
		code = 128 + 2 // SIGINT
	}
	return code, err
}

// terminalExecer is an Instance that can run a command on a terminal of
// its own (process.Instance.ExecTTY).
type terminalExecer interface {
	ExecTTY(ctx context.Context, argv []string, stdin io.Reader, out io.Writer, resize <-chan pty.Size) (int, error)
}

// moduleExecer is a WASM instance that can exec another module of its image.
type moduleExecer interface {
	ExecModule(ctx context.Context, module string, argv []string, stdin io.Reader, stdout, stderr io.Writer) (int, error)
}

// ImageModules finds other modules in an image's filesystem for exec;
// *image.Store implements it. It may read the image's layers.
type ImageModules interface {
	ImageModule(imageID, path string) (string, error)
}

// imageModules is images' ImageModules, if it has them.
func imageModules(images Images) ImageModules {
	m, _ := images.(ImageModules)
	return m
}

// commandsOf says which commands a container of art can exec: any program
// of a native image (the runtime finds it, or not, in the image's root); for
// a WASM module, the module itself, named as its entrypoint (as given, or by
// base name) or by its file name, or, for a path (one with a "/"; relative
// from the image's working directory), the module at that path in the
// image's filesystem, found by mods (nil: none).
func commandsOf(art *image.Artifact, argv []string, mods ImageModules) func(string) (string, error) {
	if art == nil || art.ModulePath == "" {
		return nil
	}
	names := []string{path.Base(art.ModulePath)}
	if len(argv) > 0 {
		names = append(names, argv[0], path.Base(argv[0]))
	}
	return func(name string) (string, error) {
		if slices.Contains(names, name) || slices.Contains(names, path.Base(name)) {
			return "", nil
		}
		if strings.Contains(name, "/") && mods != nil {
			p, err := mods.ImageModule(art.ImageID, name)
			switch {
			case errors.Is(err, image.ErrNotInImage):
				return "", &ExitError{Code: 127, Message: fmt.Sprintf("exec: %q: no such file in the container's image", name)}
			case err != nil:
				return "", &ExitError{Code: 126, Message: fmt.Sprintf("exec: %q: %v", name, err)}
			}
			return p, nil
		}
		return "", &ExitError{Code: 127, Message: fmt.Sprintf("exec: %q: executable file not found in the container's image (a WASM container runs its own module, %q, or another module of its image by path)", name, names[len(names)-1])}
	}
}

// AttachRequest attaches to a running container's stdin and output.
type AttachRequest struct {
	// Stdin is written to the container's stdin (which needs stdin: true);
	// nil attaches output only.
	Stdin io.Reader
	// Stdout and Stderr receive the container's output from now on; with
	// TTY, stderr goes to Stdout as on a terminal.
	Stdout, Stderr io.Writer
	TTY            bool
	// Resize carries the client's terminal size changes (with TTY) to a
	// container that runs on a terminal (tty: true, process runtime).
	Resize <-chan TerminalSize
}

// Attach connects to a running container until it ends or ctx ends.
func (s *Supervisor) Attach(ctx context.Context, uid, container string, req AttachRequest) error {
	r, key, err := s.runningContainer(uid, container)
	if err != nil {
		return err
	}
	if req.Stdin != nil && r.attach.stdinW == nil {
		return fmt.Errorf("container %q in pod %s was not started with stdin: true", container, key)
	}
	if rs, ok := r.inst.(resizer); ok && req.TTY && req.Resize != nil {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		// Not joined: it ends with ctx, at the latest when this returns.
		go func() {
			for {
				select {
				case s, ok := <-req.Resize:
					if !ok {
						return
					}
					rs.Resize(s)
				case <-ctx.Done():
					return
				}
			}
		}()
		return r.attach.attach(ctx, req)
	}
	return r.attach.attach(ctx, req)
}

// resizer is an Instance that runs on a terminal whose size can be set
// (process.Instance with tty: true).
type resizer interface {
	Resize(pty.Size)
}

// attachPoint is a running container's stdin and its output as seen by
// attached clients. The container never waits for a client: output a client
// is too slow to take is dropped for that client.
type attachPoint struct {
	stdinR    *io.PipeReader // the container's stdin; nil without stdin: true
	stdinW    *io.PipeWriter
	stdinOnce bool
	done      chan struct{} // closed when the container ended

	mu      sync.Mutex
	clients map[*attachClient]struct{}
	writing sync.Mutex // one client's stdin at a time
}

func newAttachPoint(c *hubv1.Container) *attachPoint {
	a := &attachPoint{stdinOnce: c.GetStdinOnce(), done: make(chan struct{}), clients: map[*attachClient]struct{}{}}
	if c.GetStdin() {
		a.stdinR, a.stdinW = io.Pipe()
	}
	return a
}

// stdin is the container's stdin: nil (empty) without stdin: true.
func (a *attachPoint) stdin() io.Reader {
	if a.stdinR == nil {
		return nil
	}
	return a.stdinR
}

// output tees the container's stream (stderr or not) to w and to the clients.
func (a *attachPoint) output(w io.Writer, stderr bool) io.Writer {
	return teeWriter{a: a, w: w, stderr: stderr}
}

// end is called when the container ended: clients return.
func (a *attachPoint) end() {
	close(a.done)
	if a.stdinW != nil {
		_ = a.stdinW.Close()
	}
}

type teeWriter struct {
	a      *attachPoint
	w      io.Writer
	stderr bool
}

func (t teeWriter) Write(p []byte) (int, error) {
	t.a.mu.Lock()
	for c := range t.a.clients {
		c.offer(p, t.stderr)
	}
	t.a.mu.Unlock()
	return t.w.Write(p)
}

// attachClient is one attached client's output queue.
type attachClient struct {
	ch chan chunk
}

type chunk struct {
	data   []byte
	stderr bool
}

// attachQueue is how many writes a client may be behind before its output
// is dropped.
const attachQueue = 256

func (c *attachClient) offer(p []byte, stderr bool) {
	select {
	case c.ch <- chunk{append([]byte(nil), p...), stderr}:
	default: // too slow: dropped, the container never waits
	}
}

func (a *attachPoint) attach(ctx context.Context, req AttachRequest) error {
	select {
	case <-a.done:
		return ErrNotRunning
	default:
	}
	c := &attachClient{ch: make(chan chunk, attachQueue)}
	a.mu.Lock()
	a.clients[c] = struct{}{}
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		delete(a.clients, c)
		a.mu.Unlock()
	}()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if req.Stdin != nil {
		// Not joined: it ends when the client's stdin ends, which the
		// caller closes when Attach returns, or when the container ends.
		go a.copyStdin(ctx, req.Stdin)
	}
	write := func(ch chunk) error {
		w := req.Stdout
		if ch.stderr && !req.TTY {
			w = req.Stderr
		}
		if w == nil {
			return nil
		}
		_, err := w.Write(ch.data)
		return err
	}
	for {
		select {
		case ch := <-c.ch:
			if err := write(ch); err != nil {
				return err
			}
		case <-a.done:
			// Give the client what the container wrote last.
			for {
				select {
				case ch := <-c.ch:
					if err := write(ch); err != nil {
						return err
					}
				default:
					return nil
				}
			}
		case <-ctx.Done():
			return nil
		}
	}
}

// copyStdin copies a client's stdin to the container until the client's
// stdin ends (which closes the container's with stdinOnce) or ctx ends.
func (a *attachPoint) copyStdin(ctx context.Context, r io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			a.writing.Lock()
			_, werr := a.stdinW.Write(buf[:n])
			a.writing.Unlock()
			if werr != nil {
				return
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) && a.stdinOnce {
				_ = a.stdinW.Close()
			}
			return
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// listeners are the TCP addresses a container's ports are served on: every
// interface of the device, as the pod IP is the device's address.
func listeners(c *hubv1.Container) []string {
	var out []string
	for _, p := range c.GetPorts() {
		if p.GetProtocol() != "" && p.GetProtocol() != "TCP" {
			continue
		}
		out = append(out, fmt.Sprintf(":%d", p.GetContainerPort()))
	}
	return out
}
