package bridge

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/mxpp/mxpp/database"
	"github.com/mxpp/mxpp/portal"
)

// restoring is a portal that takes a while to handle Reconnected and
// counts how many do at once.
type restoring struct {
	now, most *atomic.Int32
	told      chan struct{}
	hold      chan struct{}
}

func (r *restoring) Queue(_ context.Context, evt any) bool {
	if _, ok := evt.(portal.Reconnected); ok {
		close(r.told)
	}
	return true
}

func (r *restoring) Flush(ctx context.Context, _ ...id.EventID) ([]id.EventID, error) {
	n := r.now.Add(1)
	defer r.now.Add(-1)
	for m := r.most.Load(); n > m && !r.most.CompareAndSwap(m, n); m = r.most.Load() {
	}
	select {
	case <-r.hold:
		return nil, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (*restoring) QueueXMPP(any) bool                          { return true }
func (*restoring) TryQueue(any) bool                           { return true }
func (*restoring) Drain(context.Context) ([]id.EventID, error) { return nil, nil }
func (*restoring) Stop()                                       {}
func (*restoring) QueueLen() int                               { return 0 }
func (*restoring) Row() *database.Portal                       { return nil }

// TestRestorePortals: after a connect the portals restore a few at a time,
// each waited for, every one of them; a new connection ends the round.
func TestRestorePortals(t *testing.T) {
	b := &Bridge{}
	hold := make(chan struct{})
	var now, most atomic.Int32
	var portals []roomPortal
	var all []*restoring
	for range 3*restoreConcurrency + 1 {
		r := &restoring{now: &now, most: &most, told: make(chan struct{}), hold: hold}
		portals = append(portals, r)
		all = append(all, r)
	}
	done := make(chan struct{})
	go func() {
		b.restorePortals(context.Background(), portals)
		close(done)
	}()
	// The first ones are told; the rest wait for their turn.
	for _, r := range all[:restoreConcurrency] {
		<-r.told
	}
	time.Sleep(50 * time.Millisecond) // room for a wrong extra start to show
	if n := most.Load(); n != int32(restoreConcurrency) {
		t.Fatalf("%d portals restoring at once; want %d", n, restoreConcurrency)
	}
	close(hold)
	<-done
	for i, r := range all {
		select {
		case <-r.told:
		default:
			t.Fatalf("portal %d was never told the link is back", i)
		}
	}
	if n := most.Load(); n > int32(restoreConcurrency) {
		t.Errorf("%d portals restored at once; at most %d may", n, restoreConcurrency)
	}

	// A new connection (the context ends) ends a round that hangs.
	ctx, cancel := context.WithCancel(context.Background())
	stuck := make(chan struct{})
	var wg sync.WaitGroup
	portals = portals[:0]
	for range 2 * restoreConcurrency {
		portals = append(portals, &restoring{now: &now, most: &most, told: make(chan struct{}), hold: stuck})
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		b.restorePortals(ctx, portals)
	}()
	cancel()
	wg.Wait()
}
