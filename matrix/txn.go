package matrix

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/id"
)

// TxnTimeout bounds how long a transaction waits for its events to be
// handled before the homeserver is told to retry it. Homeservers give up on
// a request after 30 s (Dendrite) or more.
const TxnTimeout = 20 * time.Second

// Txn is the handling of one appservice transaction. Handlers that hand
// its events on for later register, with Await, what must finish before the
// homeserver is told the transaction was handled; if any fails, the
// homeserver is asked to send the transaction again.
type Txn struct {
	mu     sync.Mutex
	keys   map[any]bool
	waits  []func(context.Context) error
	events map[any][]id.EventID // per key of AwaitEvents
}

type txnKey struct{}

// TxnFrom returns the transaction an event came in, or nil for events that
// did not come in one (from the sync fallback).
func TxnFrom(ctx context.Context) *Txn {
	t, _ := ctx.Value(txnKey{}).(*Txn)
	return t
}

// WithTxn returns a context in which events come in t. The appservice
// listener makes one per transaction; handlers' tests may too.
func WithTxn(ctx context.Context, t *Txn) context.Context { return context.WithValue(ctx, txnKey{}, t) }

// Await registers wait, once per key, to run before the transaction is
// acknowledged.
func (t *Txn) Await(key any, wait func(context.Context) error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.keys == nil {
		t.keys = map[any]bool{}
	}
	if t.keys[key] {
		return
	}
	t.keys[key] = true
	t.waits = append(t.waits, wait)
}

// AwaitEvent registers, under key, an event whose delivery wait checks:
// the first registration of key registers wait, which gets every event
// registered under key (none for an ephemeral event, which has no ID).
func (t *Txn) AwaitEvent(key any, evtID id.EventID, wait func(ctx context.Context, events []id.EventID) error) {
	t.mu.Lock()
	if t.events == nil {
		t.events = map[any][]id.EventID{}
	}
	if evtID != "" {
		t.events[key] = append(t.events[key], evtID)
	}
	t.mu.Unlock()
	t.Await(key, func(ctx context.Context) error {
		t.mu.Lock()
		events := slices.Clone(t.events[key])
		t.mu.Unlock()
		return wait(ctx, events)
	})
}

// Finish runs the registered waits, all at once, and returns the first
// error.
func (t *Txn) Finish(ctx context.Context) error {
	t.mu.Lock()
	waits := t.waits
	t.mu.Unlock()
	errs := make(chan error, len(waits))
	for _, w := range waits {
		go func() { errs <- w(ctx) }()
	}
	var first error
	for range waits {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// handUntilDelivered has events that no homeserver transaction carries
// (from the sync fallback, a catch-up, a wait for a room key) delivered like
// one: hand gives them to the handler within a transaction, and until the
// transaction's waits succeed they are handed again, after a growing pause
// (events delivered meanwhile are recognised as such), until ctx ends. A
// transaction the caller already handed them in is passed as first. It
// reports whether they were delivered.
func (c *Connector) handUntilDelivered(ctx context.Context, first *Txn, what string, hand func(context.Context)) bool {
	txn, backoff := first, time.Second
	for {
		if txn == nil {
			txn = &Txn{}
			hand(WithTxn(ctx, txn))
		}
		wctx, cancel := context.WithTimeout(ctx, TxnTimeout)
		err := txn.Finish(wctx)
		cancel()
		if err == nil {
			return true
		}
		zerolog.Ctx(ctx).Warn().Err(err).Stringer("retry_in", backoff).Msg(what + " not delivered; trying again")
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return false
		}
		txn, backoff = nil, min(backoff*2, 30*time.Second)
	}
}

// redeliver is handUntilDelivered on a goroutine of its own, for events
// first handed in txn; then runs once they were delivered.
func (c *Connector) redeliver(ctx context.Context, txn *Txn, what string, hand func(context.Context), then func()) {
	c.redelivering.Add(1)
	go func() {
		defer c.redelivering.Done()
		if c.handUntilDelivered(ctx, txn, what, hand) && then != nil {
			then()
		}
	}()
}
