package logs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"
)

var (
	// ErrNoLogs is returned by Read when the container has no attempt yet.
	ErrNoLogs = errors.New("no logs")
	// ErrNoPrevious is returned by Read with Options.Previous when there is
	// only one attempt.
	ErrNoPrevious = errors.New("no previous attempt")
)

// followInterval is how often a follower looks for new lines.
const followInterval = 100 * time.Millisecond

// Options selects what Read returns, with the meaning of `kubectl logs` flags.
type Options struct {
	// Follow keeps reading new lines until the context is done or the
	// attempt has finished. False reads what is there and returns.
	Follow bool
	// TailLines is how many of the last lines to return: negative means all,
	// 0 means none (with Follow, only new lines), as `kubectl logs --tail`.
	TailLines int64
	// Since drops lines written before it; the zero time keeps all.
	Since time.Time
	// Timestamps prefixes each line with "<RFC3339Nano> "; false gives the
	// bare content.
	Timestamps bool
	// Previous reads the attempt before the newest instead of the newest.
	Previous bool
	// LimitBytes stops after that many bytes of output; 0 means no limit.
	LimitBytes int64
}

// Read writes the content of a container's logs to w, as selected by
// opts. Lines are written as they were logged, without the stream and tag
// columns; a line that was never terminated is written without a newline.
//
// With opts.Follow, Read blocks, polling for new lines, until ctx is done (it
// then returns nil) or the attempt has finished and has been read to its end.
// An attempt has finished when its Writer was closed, in any process, or when
// a newer attempt has started.
//
// Read returns an error wrapping ErrNoLogs when there is no attempt and
// ErrNoPrevious when opts.Previous asks for one that does not exist.
func Read(ctx context.Context, lf Files, opts Options, w io.Writer) error {
	files, err := listFiles(lf)
	if err != nil {
		return fmt.Errorf("read logs %s: %w", lf, err)
	}
	atts := attempts(files)
	if len(atts) == 0 {
		return fmt.Errorf("read logs %s: %w", lf, ErrNoLogs)
	}
	attempt := atts[len(atts)-1]
	if opts.Previous {
		if len(atts) < 2 {
			return fmt.Errorf("read logs %s: %w", lf, ErrNoPrevious)
		}
		attempt = atts[len(atts)-2]
	}
	r := &reader{
		files:   lf,
		attempt: attempt,
		opts:    opts,
		out:     &output{w: w, timestamps: opts.Timestamps, limit: opts.LimitBytes},
		seenSeq: 0,
		collect: opts.TailLines >= 0,
	}
	err = r.run(ctx, files)
	if errors.Is(err, errLimitReached) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read logs %s: %w", lf, err)
	}
	return nil
}

// line is one logical log line, assembled from its records.
type line struct {
	ts       time.Time // of its first record
	content  []byte
	complete bool // ended by an F record
}

type reader struct {
	files   Files
	attempt int
	opts    Options
	out     *output

	pending [2]*line // per stream: a line whose P records have been read
	collect bool     // gather lines for TailLines instead of writing them
	lines   []line   // gathered lines

	cur     *os.File // the current file, or nil if it did not exist
	curInfo os.FileInfo
	rest    []byte // unterminated record at the end of cur
	seenSeq int    // highest rotated seq read
}

func (r *reader) run(ctx context.Context, files []logFile) error {
	defer func() {
		if r.cur != nil {
			r.cur.Close()
		}
	}()
	if err := r.openCurrent(); err != nil {
		return err
	}
	if err := r.readRotated(files); err != nil {
		return err
	}
	if err := r.drainCurrent(); err != nil {
		return err
	}
	if !r.opts.Follow {
		if err := r.flushPending(); err != nil {
			return err
		}
		return r.writeCollected()
	}
	if err := r.writeCollected(); err != nil {
		return err
	}
	ticker := time.NewTicker(followInterval)
	defer ticker.Stop()
	for {
		// Look for the end before reading: everything written before the
		// marker is then read below.
		finished, err := r.finished()
		if err != nil {
			return err
		}
		if err := r.follow(); err != nil {
			return err
		}
		if finished {
			return r.flushPending()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}

// openCurrent opens the attempt's current file, if it exists.
func (r *reader) openCurrent() error {
	f, err := os.Open(r.files.path(currentName(r.attempt)))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	if r.cur != nil {
		r.cur.Close()
	}
	r.cur, r.curInfo, r.rest = f, info, nil
	return nil
}

// readRotated reads the rotated files not read yet, oldest first, skipping
// the one that is open as current.
func (r *reader) readRotated(files []logFile) error {
	for _, lf := range attemptFiles(files, r.attempt, kindRotated) {
		if lf.seq <= r.seenSeq {
			continue
		}
		r.seenSeq = lf.seq
		f, err := os.Open(r.files.path(lf.name))
		if errors.Is(err, os.ErrNotExist) {
			continue // deleted by rotation meanwhile
		}
		if err != nil {
			return err
		}
		if info, err := f.Stat(); err == nil && r.curInfo != nil && os.SameFile(info, r.curInfo) {
			f.Close()
			continue
		}
		var rest []byte
		err = r.drain(f, &rest)
		f.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

func (r *reader) drainCurrent() error {
	if r.cur == nil {
		return nil
	}
	return r.drain(r.cur, &r.rest)
}

// follow reads what was added since the last call, moving on to the new
// current file if the old one was rotated.
func (r *reader) follow() error {
	if r.cur == nil {
		if err := r.openCurrent(); err != nil || r.cur == nil {
			return err
		}
	}
	if err := r.drainCurrent(); err != nil {
		return err
	}
	info, err := os.Stat(r.files.path(currentName(r.attempt)))
	if errors.Is(err, os.ErrNotExist) {
		return nil // between rename and create, or deleted
	}
	if err != nil {
		return err
	}
	if os.SameFile(info, r.curInfo) {
		return nil
	}
	// Rotated: no more writes go to the open file once it is renamed, so
	// read it to its end, then the files rotated after it, then the new one.
	if err := r.drainCurrent(); err != nil {
		return err
	}
	old := r.curInfo
	files, err := listFiles(r.files)
	if err != nil {
		return err
	}
	for _, lf := range attemptFiles(files, r.attempt, kindRotated) {
		if info, err := os.Stat(r.files.path(lf.name)); err == nil && os.SameFile(info, old) {
			r.seenSeq = max(r.seenSeq, lf.seq)
		}
	}
	r.curInfo = nil
	if err := r.readRotated(files); err != nil {
		return err
	}
	if err := r.openCurrent(); err != nil {
		return err
	}
	return r.drainCurrent()
}

// finished reports whether the attempt will get no more lines.
func (r *reader) finished() (bool, error) {
	if _, err := os.Stat(r.files.path(doneName(r.attempt))); err == nil {
		return true, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return false, err
	}
	files, err := listFiles(r.files)
	if err != nil {
		return false, err
	}
	return slices.ContainsFunc(files, func(f logFile) bool { return f.attempt > r.attempt }), nil
}

// drain reads f to its end and handles its complete records; an unterminated
// record is kept in *rest for the next call.
func (r *reader) drain(f *os.File, rest *[]byte) error {
	buf := make([]byte, 32*1024)
	for {
		n, err := f.Read(buf)
		if n > 0 {
			data := append(*rest, buf[:n]...)
			for {
				i := bytes.IndexByte(data, '\n')
				if i < 0 {
					break
				}
				if err := r.record(data[:i]); err != nil {
					return err
				}
				data = data[i+1:]
			}
			*rest = append((*rest)[:0], data...)
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// record handles one CRI record; malformed ones are skipped.
func (r *reader) record(b []byte) error {
	ts, s, partial, content, ok := parseRecord(b)
	if !ok {
		return nil
	}
	l := r.pending[s]
	if l == nil {
		l = &line{ts: ts}
	}
	l.content = append(l.content, content...)
	if partial {
		r.pending[s] = l
		return nil
	}
	r.pending[s] = nil
	l.complete = true
	return r.emit(*l)
}

// flushPending emits the lines whose end was never written.
func (r *reader) flushPending() error {
	var ls []*line
	for i, l := range r.pending {
		if l != nil {
			ls = append(ls, l)
			r.pending[i] = nil
		}
	}
	slices.SortStableFunc(ls, func(a, b *line) int { return a.ts.Compare(b.ts) })
	for _, l := range ls {
		if err := r.emit(*l); err != nil {
			return err
		}
	}
	return nil
}

func (r *reader) emit(l line) error {
	if !r.opts.Since.IsZero() && l.ts.Before(r.opts.Since) {
		return nil
	}
	if !r.collect {
		return r.out.line(l)
	}
	r.lines = append(r.lines, l)
	// Drop what the tail will not show once there is as much of it as the
	// tail keeps (at least 1024 lines): each line is moved O(1) times. The
	// sums are done in int64 so that no TailLines, however large, overflows
	// them (a tail beyond the lines there are keeps every line).
	if excess := int64(len(r.lines)) - r.opts.TailLines; excess > max(r.opts.TailLines, 1024) {
		r.lines = slices.Delete(r.lines, 0, int(excess))
	}
	return nil
}

// writeCollected writes the last TailLines gathered lines and stops gathering.
func (r *reader) writeCollected() error {
	if !r.collect {
		return nil
	}
	r.collect = false
	lines := r.lines
	r.lines = nil
	if excess := int64(len(lines)) - r.opts.TailLines; excess > 0 {
		lines = lines[excess:]
	}
	for _, l := range lines {
		if err := r.out.line(l); err != nil {
			return err
		}
	}
	return nil
}

// parseRecord splits "<timestamp> <stream> <tag> <content>"; stream is 0 for
// stdout and 1 for stderr.
func parseRecord(b []byte) (ts time.Time, stream int, partial bool, content []byte, ok bool) {
	tsField, rest, ok := bytes.Cut(b, []byte{' '})
	if !ok {
		return
	}
	ts, err := time.Parse(time.RFC3339Nano, string(tsField))
	if err != nil {
		return ts, 0, false, nil, false
	}
	streamField, rest, ok := bytes.Cut(rest, []byte{' '})
	if !ok {
		return
	}
	switch string(streamField) {
	case "stdout":
		stream = 0
	case "stderr":
		stream = 1
	default:
		return ts, 0, false, nil, false
	}
	tag, content, ok := bytes.Cut(rest, []byte{' '})
	if !ok {
		return
	}
	switch string(tag) {
	case "F":
	case "P":
		partial = true
	default:
		return ts, 0, false, nil, false
	}
	return ts, stream, partial, content, true
}

var errLimitReached = errors.New("byte limit reached")

// output writes lines in the requested form, up to a byte limit.
type output struct {
	w          io.Writer
	timestamps bool
	limit      int64 // 0 means none
	written    int64
	buf        []byte
}

func (o *output) line(l line) error {
	b := o.buf[:0]
	if o.timestamps {
		b = l.ts.AppendFormat(b, time.RFC3339Nano)
		b = append(b, ' ')
	}
	b = append(b, l.content...)
	if l.complete {
		b = append(b, '\n')
	}
	o.buf = b
	limited := false
	if o.limit > 0 {
		remaining := o.limit - o.written
		if int64(len(b)) >= remaining {
			b, limited = b[:remaining], true
		}
	}
	n, err := o.w.Write(b)
	o.written += int64(n)
	if err != nil {
		return err
	}
	if limited {
		return errLimitReached
	}
	return nil
}
