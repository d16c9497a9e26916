package matrix

import (
	"context"
	"sync"
	"time"
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
	mu    sync.Mutex
	keys  map[any]bool
	waits []func(context.Context) error
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
