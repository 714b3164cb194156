// Package logs keeps a container's stdout and stderr in per-attempt log files
// the way the kubelet does, and reads them back for `kubectl logs`.
//
// The runtime opens a Writer for each attempt (restart count) of a container
// and hands its Stdout and Stderr to the workload; the agent's log endpoint
// calls Read. Files are in the CRI format, one record a line:
//
//	<RFC3339Nano timestamp> <stdout|stderr> <F|P> <content>
//
// where P marks a partial chunk of a longer line (over 16 KiB, or unterminated
// when the writer was closed) and F the chunk that ends it. The files of one
// container (Files) hold its current and previous attempt, each file named
// by the container's prefix followed by
//
//	<attempt>.log        the file being written
//	<attempt>.log.<seq>  rotated files, oldest has the lowest seq
//	<attempt>.done       present once the attempt has finished (Writer.Close)
//
// The done marker lives on disk so that a reader in another process, or after
// an agent restart, knows when following has to stop.
package logs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// maxChunk is the longest content of one record; longer lines are split into
// P records, as the kubelet does.
const maxChunk = 16 * 1024

// Writer writes one attempt of a container's logs. Stdout and Stderr may be
// written from different goroutines at the same time.
type Writer struct {
	files    Files
	attempt  int
	maxBytes int64
	maxFiles int
	now      func() time.Time

	mu      sync.Mutex // guards everything below and both streams' buffers
	f       *os.File
	size    int64
	nextSeq int
	closed  bool
	stdout  *stream
	stderr  *stream
}

// Open starts (or continues, if its files exist) attempt number attempt of a
// container's logs, creating their directory if needed. The files of attempts
// other than attempt and attempt-1 are deleted.
//
// When the current file reaches maxBytes it is rotated; at most maxFiles files
// (rotated ones and the current one) are kept for the attempt, the oldest are
// deleted. maxBytes <= 0 disables rotation; maxFiles <= 0 keeps every rotated
// file.
func Open(lf Files, attempt int, maxBytes int64, maxFiles int) (*Writer, error) {
	if attempt < 0 {
		return nil, fmt.Errorf("open logs %s: negative attempt %d", lf, attempt)
	}
	if err := os.MkdirAll(lf.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("open logs %s: %w", lf, err)
	}
	files, err := listFiles(lf)
	if err != nil {
		return nil, fmt.Errorf("open logs %s: %w", lf, err)
	}
	nextSeq := 1
	var errs []error
	for _, f := range files {
		switch {
		case f.attempt != attempt && f.attempt != attempt-1:
			if err := os.Remove(lf.path(f.name)); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		case f.attempt == attempt && f.kind == kindDone:
			// Reopened: the attempt is running again.
			if err := os.Remove(lf.path(f.name)); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		case f.attempt == attempt && f.kind == kindRotated:
			nextSeq = max(nextSeq, f.seq+1)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("open logs %s: %w", lf, err)
	}
	w := &Writer{
		files:    lf,
		attempt:  attempt,
		maxBytes: maxBytes,
		maxFiles: maxFiles,
		now:      time.Now,
		nextSeq:  nextSeq,
	}
	if err := w.openCurrent(); err != nil {
		return nil, fmt.Errorf("open logs %s: %w", lf, err)
	}
	w.stdout = &stream{w: w, name: "stdout"}
	w.stderr = &stream{w: w, name: "stderr"}
	return w, nil
}

// Stdout returns the writer for the container's standard output.
func (w *Writer) Stdout() io.Writer { return w.stdout }

// Stderr returns the writer for the container's standard error.
func (w *Writer) Stderr() io.Writer { return w.stderr }

// Close writes out unterminated lines as partial records, closes the file and
// marks the attempt finished, so that followers stop once they have read
// everything. Calling Close again does nothing. Writes after Close fail with
// os.ErrClosed.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	var errs []error
	for _, s := range []*stream{w.stdout, w.stderr} {
		if len(s.buf) > 0 {
			errs = append(errs, w.writeRecord(s.name, 'P', s.buf))
			s.buf = nil
		}
	}
	errs = append(errs, w.f.Close())
	errs = append(errs, os.WriteFile(w.files.path(doneName(w.attempt)), nil, 0o644))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close logs %s: %w", w.files, err)
	}
	return nil
}

func (w *Writer) openCurrent() error {
	f, err := os.OpenFile(w.files.path(currentName(w.attempt)), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	w.f, w.size = f, st.Size()
	return nil
}

// writeRecord appends one CRI record and rotates if the file has become too
// big. w.mu must be held.
func (w *Writer) writeRecord(streamName string, tag byte, content []byte) error {
	var b bytes.Buffer
	b.Grow(len(content) + 64)
	b.WriteString(w.now().Format(time.RFC3339Nano))
	b.WriteByte(' ')
	b.WriteString(streamName)
	b.WriteByte(' ')
	b.WriteByte(tag)
	b.WriteByte(' ')
	b.Write(content)
	b.WriteByte('\n')
	n, err := w.f.Write(b.Bytes())
	w.size += int64(n)
	if err != nil {
		return err
	}
	if w.maxBytes > 0 && w.size >= w.maxBytes {
		return w.rotate()
	}
	return nil
}

// rotate renames the current file and starts a new one, then deletes the
// oldest rotated files beyond maxFiles. w.mu must be held.
func (w *Writer) rotate() error {
	if err := w.f.Close(); err != nil {
		return err
	}
	cur := w.files.path(currentName(w.attempt))
	if err := os.Rename(cur, w.files.path(rotatedName(w.attempt, w.nextSeq))); err != nil {
		return err
	}
	w.nextSeq++
	if err := w.openCurrent(); err != nil {
		return err
	}
	if w.maxFiles <= 0 {
		return nil
	}
	files, err := listFiles(w.files)
	if err != nil {
		return err
	}
	rotated := attemptFiles(files, w.attempt, kindRotated) // oldest first
	var errs []error
	for len(rotated)+1 > w.maxFiles && len(rotated) > 0 {
		if err := os.Remove(w.files.path(rotated[0].name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
		rotated = rotated[1:]
	}
	return errors.Join(errs...)
}

// stream splits one output stream into records.
type stream struct {
	w    *Writer
	name string
	buf  []byte // unterminated tail, guarded by w.mu
}

// Write implements io.Writer. It always consumes all of p unless the file
// cannot be written.
func (s *stream) Write(p []byte) (int, error) {
	w := s.w
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return 0, os.ErrClosed
	}
	s.buf = append(s.buf, p...)
	rest := s.buf
	var err error
	for err == nil {
		i := bytes.IndexByte(rest, '\n')
		switch {
		case i >= 0 && i <= maxChunk:
			err = w.writeRecord(s.name, 'F', rest[:i])
			rest = rest[i+1:]
			continue
		case len(rest) >= maxChunk:
			err = w.writeRecord(s.name, 'P', rest[:maxChunk])
			rest = rest[maxChunk:]
			continue
		}
		break
	}
	s.buf = s.buf[:copy(s.buf, rest)]
	if err != nil {
		return len(p), fmt.Errorf("write %s log: %w", s.name, err)
	}
	return len(p), nil
}
