package database

import (
	"context"
	"errors"
	"sync"
	"time"
)

// ErrClosed is what a write gets once the database is closing.
var ErrClosed = errors.New("database closed")

// maxBatch bounds how many writes share one commit.
const maxBatch = 64

// commitTimeout bounds one shared transaction; it runs on no caller's
// context, as it commits for several.
const commitTimeout = time.Minute

// batcher commits the bridge's per-message writes (the message map, the
// notes of sends under way) from all rooms together: each write still
// waits for its commit, but the writes that come while a commit runs
// share the next one (group commit). A lone write commits at once; under
// load one commit carries many rooms' rows, so SQLite writes and syncs
// its log once for them and PostgreSQL flushes its WAL once. When a shared
// transaction fails, each of its writes runs again alone, so that one
// write's error (a constraint) is its own.
type batcher struct {
	// commit runs writes in one transaction (stmtCache.run).
	commit func(ctx context.Context, writes []*write) error
	// hold, if set, runs before each commit (tests).
	hold func(batch int)

	once    sync.Once
	mu      sync.Mutex
	queue   []*write
	closed  bool
	wake    chan struct{}
	stopped chan struct{}
}

// write is one caller's statements, committed together.
type write struct {
	stmts   []statement
	changed []int64 // rows each statement changed, once done
	err     error
	done    chan struct{}
}

// do queues statements and waits for their commit.
func (b *batcher) do(stmts []statement) ([]int64, error) {
	b.once.Do(b.start)
	w := &write{stmts: stmts, changed: make([]int64, len(stmts)), done: make(chan struct{})}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, ErrClosed
	}
	b.queue = append(b.queue, w)
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
	<-w.done
	if w.err != nil {
		return nil, w.err
	}
	return w.changed, nil
}

func (b *batcher) start() {
	b.wake = make(chan struct{}, 1)
	b.stopped = make(chan struct{})
	go b.run()
}

// run commits what is queued, batch after batch, until close; what was
// queued before close is committed first.
func (b *batcher) run() {
	defer close(b.stopped)
	for range b.wake {
		for {
			b.mu.Lock()
			n := min(len(b.queue), maxBatch)
			batch := b.queue[:n:n]
			b.queue = b.queue[n:]
			if len(b.queue) == 0 {
				b.queue = nil // let the backing array go
			}
			closed := b.closed
			b.mu.Unlock()
			if n == 0 {
				if closed {
					return
				}
				break
			}
			b.commitBatch(batch)
		}
	}
}

func (b *batcher) commitBatch(batch []*write) {
	if b.hold != nil {
		b.hold(len(batch))
	}
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	err := b.commit(ctx, batch)
	if err != nil && len(batch) > 1 {
		for _, w := range batch {
			clear(w.changed)
			w.err = b.commit(ctx, []*write{w})
		}
	} else {
		for _, w := range batch {
			w.err = err
		}
	}
	for _, w := range batch {
		close(w.done)
	}
}

// close commits what is queued and stops; later writes get ErrClosed.
func (b *batcher) close() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.once.Do(func() {}) // never started: nothing to wait for, and no start after
	if b.wake == nil {
		return
	}
	select {
	case b.wake <- struct{}{}:
	default:
	}
	<-b.stopped
}
