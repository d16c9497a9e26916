package roomloop

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"mellium.im/xmpp/jid"

	"github.com/mxpp/mxpp/xmpp"
)

// slowRoom takes a while for each stanza, and fails to deliver the Matrix
// events named in fail.
type slowRoom struct {
	loop    *Loop
	stanzas atomic.Int64
	fail    map[id.EventID]bool
	handled []id.EventID
}

func (r *slowRoom) HandleEvent(_ context.Context, evt any) bool {
	switch e := evt.(type) {
	case *event.Event:
		r.handled = append(r.handled, e.ID)
		if r.fail[e.ID] {
			r.loop.DeliveryFailed()
		}
	case func():
		e()
	case string:
		time.Sleep(20 * time.Millisecond)
		r.stanzas.Add(1)
	}
	return true
}

// TestFlushLeavesTheInbox: a transaction's Flush waits for the Matrix
// events queued before it, not for the room's whole XMPP inbox (a burst
// from XMPP would make every transaction time out); Drain, for shutdown,
// handles the inbox too.
func TestFlushLeavesTheInbox(t *testing.T) {
	r := &slowRoom{}
	l := New(r, zerolog.Nop())
	r.loop = l
	const n = 100 // 20 ms each: 2 s in all
	for range n {
		l.inbox.push("stanza")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l.Start(ctx)
	if _, err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if left := l.inbox.len(); left == 0 {
		t.Errorf("Flush returned after the whole XMPP inbox (%d stanzas handled)", r.stanzas.Load())
	}
	if _, err := l.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if left, done := l.inbox.len(), r.stanzas.Load(); left != 0 || done != n {
		t.Errorf("after Drain: %d stanzas left, %d handled; want 0 and %d", left, done, n)
	}
	l.Stop()
}

// TestFlushReportsUndelivered: a Matrix event that did not reach XMPP, and
// every later one, is reported by the next Flush that asks for it and not
// tried; the flush after that starts clean.
func TestFlushReportsUndelivered(t *testing.T) {
	r := &slowRoom{fail: map[id.EventID]bool{"$b": true}}
	l := New(r, zerolog.Nop())
	r.loop = l
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l.Start(ctx)
	for _, e := range []id.EventID{"$a", "$b", "$c"} {
		l.Queue(ctx, &event.Event{ID: e})
	}
	failed, err := l.Flush(ctx, "$a", "$b", "$c")
	if err != nil || !slices.Equal(failed, []id.EventID{"$b", "$c"}) {
		t.Fatalf("Flush = %v, %v; want [$b $c]", failed, err)
	}
	if len(r.handled) != 2 {
		t.Errorf("handled %v; $c must wait for the retry", r.handled)
	}
	l.Queue(ctx, &event.Event{ID: "$c"})
	if failed, err = l.Flush(ctx, "$c"); err != nil || len(failed) != 0 {
		t.Errorf("second Flush = %v, %v; want nothing", failed, err)
	}
	l.Stop()
	if failed, err = l.Flush(ctx, "$c"); err != nil || failed != nil {
		t.Errorf("Flush of a stopped loop = %v, %v; want nothing", failed, err)
	}
}

// TestFlushClaimsOwnFailures: of two waiters, each learns only of its own
// events' failures, whichever flush comes first; the failures of a waiter
// that gave up wait for its retry; Drain reports what nobody claimed.
func TestFlushClaimsOwnFailures(t *testing.T) {
	r := &slowRoom{fail: map[id.EventID]bool{"$sync": true}}
	l := New(r, zerolog.Nop())
	r.loop = l
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l.Start(ctx)
	// A sync event fails; a transaction's event queued after it is not
	// tried; the transaction's flush comes first.
	l.Queue(ctx, &event.Event{ID: "$sync"})
	l.Queue(ctx, &event.Event{ID: "$txn"})
	if failed, err := l.Flush(ctx, "$txn"); err != nil || !slices.Equal(failed, []id.EventID{"$txn"}) {
		t.Fatalf("the transaction's Flush = %v, %v; want only its own [$txn]", failed, err)
	}
	if failed, err := l.Flush(ctx, "$sync"); err != nil || !slices.Equal(failed, []id.EventID{"$sync"}) {
		t.Fatalf("the sync's Flush = %v, %v; want [$sync], claimed by nobody else", failed, err)
	}
	if failed, err := l.Flush(ctx, "$sync", "$txn"); err != nil || len(failed) != 0 {
		t.Errorf("a third Flush = %v, %v; want nothing: each failure goes to one waiter", failed, err)
	}

	// A waiter that gives up before the loop reaches its flush leaves its
	// failure for the retry.
	block := make(chan struct{})
	l.Queue(ctx, func() { <-block })
	l.Queue(ctx, &event.Event{ID: "$sync"})
	gone, stop := context.WithCancel(ctx)
	stop()
	if _, err := l.Flush(gone, "$sync"); err == nil {
		t.Fatal("a flush whose waiter gave up reported success")
	}
	close(block)
	if failed, err := l.Flush(ctx, "$sync"); err != nil || !slices.Equal(failed, []id.EventID{"$sync"}) {
		t.Errorf("the retry's Flush = %v, %v; want the failure the first waiter left", failed, err)
	}
	l.Queue(ctx, &event.Event{ID: "$sync"})
	if failed, err := l.Drain(ctx); err != nil || !slices.Equal(failed, []id.EventID{"$sync"}) {
		t.Errorf("Drain = %v, %v; want the unclaimed [$sync]", failed, err)
	}
	l.Stop()
}

func TestInbox(t *testing.T) {
	var q inbox
	next := 0
	// Interleave pushes and pops past the compaction point.
	for i := 0; i < 2*MaxInbox; i++ {
		if !q.push(i) {
			t.Fatalf("push %d refused with %d queued", i, q.len())
		}
		if i%3 != 0 {
			st, _ := q.pop()
			if st != next {
				t.Fatalf("pop = %v; want %d", st, next)
			}
			next++
		}
	}
	for q.len() < MaxInbox {
		q.push(-1)
	}
	if q.push(-2) {
		t.Fatal("push beyond MaxInbox accepted")
	}
	for q.len() > 0 {
		st, more := q.pop()
		if v := st.(int); v >= 0 && v != next {
			t.Fatalf("pop = %d; want %d", v, next)
		} else if v >= 0 {
			next++
		}
		if more != (q.len() > 0) {
			t.Fatal("pop's more disagrees with len")
		}
	}
	if st, more := q.pop(); st != nil || more {
		t.Fatalf("pop of empty = %v, %v", st, more)
	}
}

// TestInboxBytes: the inbox refuses what would take a room past its byte
// budget, or one sender past its share, while other senders still get in;
// what a sender had waiting counts no more once handled.
func TestInboxBytes(t *testing.T) {
	var q inbox
	from := func(sender string, size int) *xmpp.Message {
		return &xmpp.Message{From: xmpp.A(jid.MustParse(sender + "@xmpp.test/r")), Size: size}
	}
	const big = MaxSenderBytes / 4
	for i := range 4 {
		if !q.push(from("alice", big)) {
			t.Fatalf("alice's stanza %d refused within her share", i)
		}
	}
	if q.push(from("alice", big)) {
		t.Fatal("alice's stanza beyond her share accepted")
	}
	if !q.push(from("bob", big)) {
		t.Fatal("bob refused while alice's share was full")
	}
	q.pop() // one of alice's handled
	if !q.push(from("alice", big)) {
		t.Fatal("alice refused after one of hers was handled")
	}
	// The room's budget: many senders, each within their share.
	n := 0
	for i := 0; q.push(from(fmt.Sprintf("u%d", i), big)); i++ {
		n++
	}
	if q.bytes > MaxInboxBytes || q.bytes+big <= MaxInboxBytes {
		t.Errorf("room inbox holds %d bytes after refusing; want just under %d", q.bytes, MaxInboxBytes)
	}
	for q.len() > 0 {
		q.pop()
	}
	if q.bytes != 0 || len(q.sender) != 0 {
		t.Errorf("empty inbox counts %d bytes, %d senders", q.bytes, len(q.sender))
	}
}

// fileRoom holds a sender's later stanzas while a "file" of its is under
// way, as a portal does while it fetches a shared file.
type fileRoom struct {
	loop    *Loop
	mu      sync.Mutex
	order   []string // bodies handled, in order
	refused []string
}

func (r *fileRoom) HandleEvent(ctx context.Context, evt any) bool {
	switch e := evt.(type) {
	case *xmpp.Message:
		r.mu.Lock()
		r.order = append(r.order, e.Body)
		r.mu.Unlock()
		if strings.HasPrefix(e.Body, "file") {
			r.loop.HoldSender(e.From.Bare().String())
		}
	case string: // the file is ready
		r.loop.ReleaseSender(e)
	}
	return true
}

func (r *fileRoom) Refuse(_ context.Context, st any) {
	r.mu.Lock()
	r.refused = append(r.refused, st.(*xmpp.Message).Body)
	r.mu.Unlock()
}

func (r *fileRoom) handled() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.order)
}

// TestHoldSender: while a sender's shared file is under way, that sender's
// later stanzas wait and come after it, in order (a second file among
// them holds the rest again); everyone else's go on meanwhile; past
// MaxHeldPerSender the sender's are refused.
func TestHoldSender(t *testing.T) {
	r := &fileRoom{}
	l := New(r, zerolog.Nop())
	r.loop = l
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l.Start(ctx)
	msg := func(from, body string) *xmpp.Message {
		return &xmpp.Message{From: xmpp.A(jid.MustParse(from + "@xmpp.test/r")), Body: body}
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; handled %q", what, r.handled())
			}
		}
	}
	for _, m := range []*xmpp.Message{msg("alice", "file1"), msg("alice", "a2"), msg("bob", "b1"), msg("alice", "file3"),
		msg("alice", "a4"), msg("bob", "b2")} {
		l.QueueXMPP(m)
	}
	waitFor("bob's stanzas", func() bool { return len(r.handled()) == 3 })
	if got, want := r.handled(), []string{"file1", "b1", "b2"}; !slices.Equal(got, want) {
		t.Fatalf("while alice's file is under way: handled %q; want %q", got, want)
	}
	l.Queue(ctx, "alice@xmpp.test")
	waitFor("alice's next file", func() bool { return len(r.handled()) == 5 })
	if got, want := r.handled(), []string{"file1", "b1", "b2", "a2", "file3"}; !slices.Equal(got, want) {
		t.Fatalf("after the first file: handled %q; want %q", got, want)
	}
	for range MaxHeldPerSender + 1 {
		l.QueueXMPP(msg("alice", "more"))
	}
	waitFor("a refusal", func() bool { r.mu.Lock(); defer r.mu.Unlock(); return len(r.refused) > 0 })
	l.Queue(ctx, "alice@xmpp.test")
	waitFor("the rest", func() bool { return len(r.handled()) == 6+MaxHeldPerSender-1 })
	if got := r.handled(); got[5] != "a4" || got[len(got)-1] != "more" {
		t.Errorf("after the second file: %q …; want a4 first", got[5:7])
	}
}

// recorder notes what it handled, in order, and can be held up.
type recorder struct {
	mu   sync.Mutex
	got  []string
	gate chan struct{} // when not nil, each event waits for a receive
}

func (r *recorder) HandleEvent(_ context.Context, evt any) bool {
	if r.gate != nil {
		<-r.gate
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	s := fmt.Sprint(evt)
	r.got = append(r.got, s)
	return s != "last"
}

func (r *recorder) handled() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// running reports whether a goroutine handles the loop's queues.
func (l *Loop) isRunning() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.running
}

// TestIdleLoop: a loop holds a goroutine only while it has something to
// handle; what was queued before Start is handled after it, in order; a
// full queue makes Queue wait (TryQueue refuses) until there is room;
// Matrix events and stanzas take turns; the handler's false ends the
// loop, and an ended loop takes nothing.
func TestIdleLoop(t *testing.T) {
	r := &recorder{}
	l := New(r, zerolog.Nop())
	ctx := context.Background()
	l.Queue(ctx, "a")
	l.Queue(ctx, "b")
	if l.isRunning() {
		t.Fatal("a loop runs before Start")
	}
	l.Start(ctx)
	if _, err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := r.handled(); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("handled %q; want a, b", got)
	}
	waitUntil(t, "the goroutine to go", func() bool { return !l.isRunning() })

	// Full: Queue waits, TryQueue refuses, until the loop takes one.
	r.gate = make(chan struct{})
	for i := range QueueSize + 1 { // the first is taken and held up at once
		l.Queue(ctx, i)
	}
	waitUntil(t, "the first event taken", func() bool { return l.QueueLen() == QueueSize })
	if l.TryQueue("extra") {
		t.Fatal("TryQueue took an event into a full queue")
	}
	queued := make(chan bool)
	go func() { queued <- l.Queue(ctx, "waited") }()
	select {
	case <-queued:
		t.Fatal("Queue did not wait on a full queue")
	case <-time.After(50 * time.Millisecond):
	}
	r.gate <- struct{}{} // event 0 done; event 1 taken: room for one
	if !<-queued {
		t.Fatal("Queue failed once there was room")
	}
	close(r.gate)
	if _, err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	r.gate = nil
	got := r.handled()
	if len(got) != 2+QueueSize+2 || got[len(got)-1] != "waited" {
		t.Fatalf("handled %d events ending %q; want every one, the waiting one last", len(got), got[len(got)-1])
	}

	// Turns: with stanzas and events waiting, neither waits for all of the other.
	r.mu.Lock()
	r.got = nil
	r.gate = make(chan struct{})
	r.mu.Unlock()
	l.Queue(ctx, "hold")
	waitUntil(t, "the loop busy", func() bool { return l.QueueLen() == 0 })
	for i := range 3 {
		l.Queue(ctx, fmt.Sprint("e", i))
		l.QueueXMPP(fmt.Sprint("s", i))
	}
	close(r.gate)
	if _, err := l.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	r.gate = nil
	if got := r.handled(); !slices.Equal(got, []string{"hold", "s0", "e0", "s1", "e1", "s2", "e2"}) {
		t.Errorf("handled %q; want stanzas and events by turns", got)
	}

	// The handler's false ends it; nothing is taken after.
	l.Queue(ctx, "last")
	waitUntil(t, "the loop ended", l.Ended)
	if l.Queue(ctx, "after") || l.TryQueue("after") || l.QueueXMPP("after") {
		t.Error("an ended loop took an event")
	}
	if _, err := l.Flush(ctx); err != nil {
		t.Errorf("Flush of an ended loop: %v", err)
	}
	l.Stop()
}

// TestStopIdleLoop: Stop ends an idle loop at once, and ends a Queue that
// waits on a full one; the loop's context ending ends it too.
func TestStopIdleLoop(t *testing.T) {
	l := New(&recorder{}, zerolog.Nop())
	l.Start(context.Background())
	l.Stop()
	if !l.Ended() {
		t.Fatal("Stop left an idle loop running")
	}

	r := &recorder{gate: make(chan struct{})}
	l = New(r, zerolog.Nop())
	l.Start(context.Background())
	for i := range QueueSize + 1 {
		l.Queue(context.Background(), i)
	}
	queued := make(chan bool)
	go func() { queued <- l.Queue(context.Background(), "waiting") }()
	stopped := make(chan struct{})
	go func() { l.Stop(); close(stopped) }()
	if <-queued {
		t.Error("Queue on a stopping loop reported the event taken")
	}
	close(r.gate) // the event at hand ends; the rest are dropped
	<-stopped
	if n := len(r.handled()); n != 1 {
		t.Errorf("%d events handled; want only the one at hand when Stop came", n)
	}

	ctx, cancel := context.WithCancel(context.Background())
	l = New(&recorder{}, zerolog.Nop())
	l.Start(ctx)
	cancel()
	waitUntil(t, "the loop ended with its context", l.Ended)
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitRoom makes each Matrix event wait once for d (WaitBefore) and lets a
// "resume" stanza end the wait; it notes what it handled.
type waitRoom struct {
	loop *Loop
	d    time.Duration
	recorder
}

func (r *waitRoom) HandleEvent(ctx context.Context, evt any) bool {
	switch e := evt.(type) {
	case *event.Event:
		r.mu.Lock()
		d := r.d
		r.mu.Unlock()
		if r.loop.WaitBefore(d) {
			return r.recorder.HandleEvent(ctx, "wait "+e.ID.String())
		}
		return r.recorder.HandleEvent(ctx, e.ID.String())
	case string:
		if e == "resume" {
			r.loop.Resume()
		}
	}
	return r.recorder.HandleEvent(ctx, evt)
}

// TestWaitBefore: a Matrix event that waits holds the events behind it,
// in order, while stanzas go on; Resume, or the end of the wait, lets it
// come again, and it does not wait a second time.
func TestWaitBefore(t *testing.T) {
	r := &waitRoom{d: time.Minute}
	l := New(r, zerolog.Nop())
	r.loop = l
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l.Start(ctx)
	waitFor := func(n int) []string {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); len(r.handled()) < n; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %d handled; have %q", n, r.handled())
			}
		}
		return r.handled()
	}
	l.Queue(ctx, &event.Event{ID: "$a"})
	l.Queue(ctx, &event.Event{ID: "$b"})
	l.QueueXMPP("s1")
	if got, want := waitFor(2), []string{"wait $a", "s1"}; !slices.Equal(got, want) {
		t.Fatalf("handled %q; want %q", got, want)
	}
	// Nothing more while $a waits; a stanza still goes.
	l.QueueXMPP("s2")
	if got := waitFor(3); got[2] != "s2" {
		t.Fatalf("while $a waits: handled %q", got)
	}
	l.QueueXMPP("resume")
	if got, want := waitFor(6)[3:], []string{"resume", "$a", "wait $b"}; !slices.Equal(got, want) {
		t.Fatalf("after Resume: handled %q; want %q", got, want)
	}
	// $b waits in turn: its wait ends on its own.
	r.mu.Lock()
	r.d = 50 * time.Millisecond
	r.mu.Unlock()
	l.Queue(ctx, &event.Event{ID: "$c"})
	l.QueueXMPP("resume")
	got := waitFor(9)[6:]
	if want := []string{"resume", "$b", "wait $c"}; !slices.Equal(got, want) {
		t.Fatalf("after the second Resume: handled %q; want %q", got, want)
	}
	if got := waitFor(10)[9]; got != "$c" {
		t.Errorf("after a wait of %s: handled %q; want $c", r.d, got)
	}
}
