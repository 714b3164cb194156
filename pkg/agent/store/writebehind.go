package store

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// WriteBehind writes changes of the desired state to a Store in the
// background, in the order they were queued, as many per transaction as
// have queued up meanwhile.
//
// A bbolt commit waits for the disk twice (about 5 ms here, more on an SD
// card). Written one by one before each change is acted on, a burst of 30
// pods for one device waited 150 ms for the disk before the last started.
// Queued, the changes are acted on at once and reach the disk within one or
// two commits. The cost is a window of a few milliseconds in which a change
// is acted on but not yet stored: should the agent die in it, it learns the
// change again from the hub's full state when it reconnects.
type WriteBehind struct {
	store *Store
	log   *slog.Logger

	mu      sync.Mutex
	queue   []Change
	queued  uint64 // changes ever queued
	written uint64 // changes ever written (or given up on)
	wrote   *sync.Cond
	kick    chan struct{}
}

// NewWriteBehind returns a WriteBehind for s; it writes while Run runs.
func NewWriteBehind(s *Store, log *slog.Logger) *WriteBehind {
	w := &WriteBehind{store: s, log: log, kick: make(chan struct{}, 1)}
	w.wrote = sync.NewCond(&w.mu)
	return w
}

// Queue queues c; it never waits for the disk.
func (w *WriteBehind) Queue(c Change) {
	w.mu.Lock()
	w.queue = append(w.queue, c)
	w.queued++
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// Flush waits until every change queued before it was called is written,
// or Run has given up on it.
func (w *WriteBehind) Flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	target := w.queued
	for w.written < target {
		w.wrote.Wait()
	}
}

// retryInterval is how long Run waits after a failed write before it tries
// again.
const retryInterval = time.Second

// Run writes queued changes until ctx ends, then writes what is still queued
// and returns.
func (w *WriteBehind) Run(ctx context.Context) error {
	for {
		select {
		case <-w.kick:
		case <-ctx.Done():
			w.writeQueued(true)
			return nil
		}
		if !w.writeQueued(false) {
			select {
			case <-time.After(retryInterval):
				w.poke()
			case <-ctx.Done():
				w.writeQueued(true)
				return nil
			}
		}
	}
}

func (w *WriteBehind) poke() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// writeQueued writes what is queued in one transaction. A failed write is
// kept for the next try, unless final, and reported false.
func (w *WriteBehind) writeQueued(final bool) bool {
	w.mu.Lock()
	batch := w.queue
	w.queue = nil
	w.mu.Unlock()
	if len(batch) == 0 {
		return true
	}
	err := w.store.Apply(batch...)
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil && !final {
		w.log.Warn("desired state not stored; trying again", "changes", len(batch), "err", err)
		w.queue = append(batch, w.queue...)
		return false
	}
	if err != nil {
		w.log.Error("desired state not stored before stopping", "changes", len(batch), "err", err)
	}
	w.written += uint64(len(batch))
	w.wrote.Broadcast()
	return true
}
