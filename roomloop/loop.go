// Package roomloop runs the events of one bridged room one at a time, on a
// goroutine of its own while it has any: everything that concerns the
// room, from either side, goes through its queue, which keeps the room's
// messages in order while rooms run in parallel. An idle room holds no
// goroutine and no queue buffer, so that tens of thousands of them cost
// little. Both kinds of portal run on it: the rooms
// the component hosts as MUCs (package portal) and the MUCs hosted
// elsewhere that Matrix users join (package remotemuc).
//
// A Loop also keeps the books a homeserver transaction needs: which of the
// Matrix events handed to the room did not reach XMPP, so that Flush can
// report them and the homeserver sends them again.
//
// It imports only the leaf packages; they never import it.
package roomloop

import (
	"context"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxpp/mxpp/xmpp"
)

// QueueSize bounds each room's queue of Matrix and control events. A full
// queue blocks the producer, which pushes back on the homeserver.
const QueueSize = 256

// MaxInbox bounds each room's backlog of stanzas from XMPP; beyond it,
// senders get a resource-constraint error (type wait) and resend later.
const MaxInbox = 10000

// MaxInboxBytes bounds the size of a room's backlog (what the stanzas
// took on the wire, every token counted: xmpp.WireSize), and
// MaxSenderBytes one sender's share of it, so that a few large stanzas
// cannot take the room's memory or its backlog from everyone else.
const (
	MaxInboxBytes  = 16 << 20
	MaxSenderBytes = 4 << 20
)

// EventTimeout bounds the handling of one queued event.
const EventTimeout = 2 * time.Minute

// Metrics receives counts from the portals of both kinds. Directions are
// ToXMPP and ToMatrix; kinds and reasons come from fixed sets, never from
// what a sender chose (each value is a time series of its own).
type Metrics interface {
	Bridged(direction, kind string)
	Failed(direction, reason string)
	Handled(kind string, d time.Duration)
}

// Directions of Metrics.
const (
	ToXMPP   = "matrix_to_xmpp"
	ToMatrix = "xmpp_to_matrix"
)

// Handler handles a room's events on its loop's goroutine.
type Handler interface {
	// HandleEvent handles one event: a Matrix event (*event.Event), a
	// stanza from the inbox, or a control event. It returns false when
	// the room is gone and the loop is to end.
	HandleEvent(ctx context.Context, evt any) bool
}

// Loop is one room's queues, and the goroutine that handles them while
// they are not empty.
type Loop struct {
	log     zerolog.Logger
	handler Handler
	// Handled, if set, is told how long each event took, by kind.
	Handled func(evt any, d time.Duration)

	mu sync.Mutex
	// events are the queued Matrix and control events, at most
	// QueueSize; space, when not nil, is closed once a full queue has
	// room again (producers wait on it).
	events fifo
	space  chan struct{}
	// running is set while a goroutine handles the queues; started once
	// Start gave the loop its context; ended once it is to stop.
	running, started, ended bool
	// fromInbox makes the next turn prefer a stanza, so that Matrix events
	// and stanzas take turns.
	fromInbox bool
	// waiting is set while the event at the front of the queue waits
	// (WaitBefore): the queue stands still, the inbox goes on; waitGen
	// tells a wait's timer from a later wait's.
	waiting bool
	waitGen uint64

	// inbox holds the stanzas from XMPP, in order. Queueing them never
	// blocks: the component's read loop serves every room and the IQ
	// answers, so waiting for one busy room there would stall them all
	// (and, with the XMPP server waiting on us in turn, deadlock).
	inbox   inbox
	baseCtx context.Context // the loop's, for work beside it
	done    chan struct{}   // closed once the loop ended and nothing runs

	// Owned by the loop goroutine: the Matrix event being handled, and
	// the ones that did not reach the XMPP server since the last Flush.
	// Once one failed, later Matrix events are not tried until the Flush,
	// so that a retry delivers them in order.
	current     *event.Event
	undelivered []id.EventID
	// waited is the last Matrix event that waited (WaitBefore): it does
	// not wait twice.
	waited id.EventID
	// failures are the events that did not reach XMPP, from when, until
	// the flush of their transaction claims them.
	failures map[id.EventID]time.Time
	// held are, per sender, the stanzas that came while something of that
	// sender's is under way (a shared file: HoldSender); they wait for it,
	// in order, while everyone else's go on.
	held map[string][]any

	// SenderKey names the sender of a stanza for HoldSender; by default
	// its bare From JID. Set it before Start.
	SenderKey func(st any) string
}

// MaxHeldPerSender bounds the stanzas that wait behind one sender's; beyond,
// they are refused (Refuser).
const MaxHeldPerSender = 1000

// Refuser is implemented by handlers that answer a stanza the loop cannot
// take (resource-constraint): one past MaxHeldPerSender.
type Refuser interface {
	Refuse(ctx context.Context, st any)
}

// New returns a loop that hands its events to h; Start runs it.
func New(h Handler, log zerolog.Logger) *Loop {
	return &Loop{log: log, handler: h, baseCtx: context.Background(), done: make(chan struct{})}
}

// Start runs the loop until ctx ends, Stop is called or the handler says
// the room is gone. Events queued before are handled then.
func (l *Loop) Start(ctx context.Context) {
	l.mu.Lock()
	l.baseCtx, l.started = ctx, true
	l.kick()
	l.mu.Unlock()
	context.AfterFunc(ctx, l.end)
}

// Context is the loop's context, for work that runs beside the loop and
// reports back to it with Queue.
func (l *Loop) Context() context.Context { return l.baseCtx }

// Stop ends the loop after the event being handled; queued events are
// dropped. It waits for the loop to finish.
func (l *Loop) Stop() {
	l.end()
	<-l.done
}

// end marks the loop as ending: the goroutine, if one runs, stops after
// its event; otherwise the loop is done at once.
func (l *Loop) end() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ended {
		return
	}
	l.ended = true
	l.events = fifo{}
	if l.space != nil { // producers waiting on a full queue give up
		close(l.space)
		l.space = nil
	}
	if !l.running {
		close(l.done)
	}
}

// Ended reports whether the loop has finished.
func (l *Loop) Ended() bool {
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}

// kick starts a goroutine for the queues if they hold anything and none
// runs. Called with mu held.
func (l *Loop) kick() {
	if l.running || !l.started || l.ended || (l.events.len() == 0 || l.waiting) && l.inbox.len() == 0 {
		return
	}
	l.running = true
	go l.run(l.baseCtx)
}

// Queue hands an event to the loop, waiting while the queue is full. It
// reports false if the loop has stopped.
func (l *Loop) Queue(ctx context.Context, evt any) bool {
	l.mu.Lock()
	var waitingSince time.Time
	for !l.ended && l.events.len() >= QueueSize {
		if waitingSince.IsZero() {
			waitingSince = time.Now()
			l.log.Warn().Int("queue_size", QueueSize).Msg("Portal queue is full, waiting")
		}
		if l.space == nil {
			l.space = make(chan struct{})
		}
		space := l.space
		l.mu.Unlock()
		select {
		case <-space:
		case <-l.done:
			return false
		case <-ctx.Done():
			return false
		}
		l.mu.Lock()
	}
	defer l.mu.Unlock()
	if l.ended {
		return false
	}
	if !waitingSince.IsZero() {
		l.log.Debug().Stringer("waited", time.Since(waitingSince)).Msg("Queued event after waiting")
	}
	l.events.push(evt)
	l.kick()
	return true
}

// TryQueue hands an event to the loop unless the queue is full.
func (l *Loop) TryQueue(evt any) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ended || l.events.len() >= QueueSize {
		return false
	}
	l.events.push(evt)
	l.kick()
	return true
}

// QueueXMPP hands a stanza from XMPP to the loop without waiting. It
// reports false when the room is that far behind (MaxInbox,
// MaxInboxBytes), or the sender has that much waiting (MaxSenderBytes),
// and the sender is to be told to retry later.
func (l *Loop) QueueXMPP(st any) bool {
	if l.Ended() {
		return false
	}
	if !l.inbox.push(st) {
		size, from := xmpp.WireSize(st)
		l.log.Warn().Int("inbox", l.inbox.len()).Int("bytes", size).Str("from", from).
			Msg("Room is too far behind, or the sender has too much waiting; refusing a stanza from XMPP")
		return false
	}
	l.mu.Lock()
	l.kick()
	l.mu.Unlock()
	return true
}

// QueueLen returns how many events wait in the loop's queues.
func (l *Loop) QueueLen() int {
	l.mu.Lock()
	n := l.events.len()
	l.mu.Unlock()
	return n + l.inbox.len()
}

// flushEvent is answered once everything queued before it was handled,
// with the undelivered events among ids (all of them with drain). Its state
// settles who has them: the loop claims them for the waiter (1), or the
// waiter gave up (2) and they stay for a later flush, so that no failure is
// reported to nobody.
type flushEvent struct {
	done  chan []id.EventID
	state *atomic.Int32
	ids   []id.EventID
	drain bool // the XMPP inbox too, and every failure (shutdown)
}

// Failures nobody claimed are kept for a while, for a retry of their
// transaction, and then dropped with a log line: their homeserver gave up
// on them, or they came from nowhere that retries.
const (
	keepFailures = 10 * time.Minute
	maxFailures  = 10000
)

// Flush waits until every event queued before it was handled, and returns
// those of ids that could not be delivered to XMPP (the component link was
// down). Those were not marked as bridged: handed to the loop again, they
// are delivered then. Each caller learns of its own events only: a
// transaction, the sync fallback and a retry of either may wait at once,
// and one's failure must neither fail another nor be lost with it.
//
// A loop that ended (its room closed) has nothing more to deliver: the
// flush returns at once, without error, so that the homeserver does not
// retry the transaction that closed it.
func (l *Loop) Flush(ctx context.Context, ids ...id.EventID) ([]id.EventID, error) {
	return l.flush(ctx, ids, false)
}

// Drain is Flush that also handles what XMPP sent before it, and reports
// every undelivered event: for shutdown. A transaction's Flush waits for
// its Matrix events only, so that a burst from XMPP does not make the
// homeserver's transactions time out.
func (l *Loop) Drain(ctx context.Context) ([]id.EventID, error) {
	return l.flush(ctx, nil, true)
}

func (l *Loop) flush(ctx context.Context, ids []id.EventID, drain bool) ([]id.EventID, error) {
	done := make(chan []id.EventID, 1)
	f := flushEvent{done: done, state: new(atomic.Int32), ids: ids, drain: drain}
	if !l.Queue(ctx, f) {
		// Stopped, or stopping after the event at hand: nothing more is
		// delivered.
		select {
		case <-l.done:
			return nil, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	select {
	case failed := <-done:
		return failed, nil
	case <-l.done:
		return nil, nil
	case <-ctx.Done():
		if f.state.CompareAndSwap(0, 2) {
			return nil, ctx.Err()
		}
		return <-done, nil // claimed just now: the answer is on its way
	}
}

// answerFlush ends the stop on later events that a failure began (the
// waiters retry in order from here), and hands the flush's waiter the
// failures that are its own.
func (l *Loop) answerFlush(f flushEvent) {
	now := time.Now()
	if l.failures == nil {
		l.failures = map[id.EventID]time.Time{}
	}
	for _, evtID := range l.undelivered {
		l.failures[evtID] = now
	}
	l.undelivered = nil
	var mine []id.EventID
	for _, evtID := range f.ids {
		if _, failed := l.failures[evtID]; failed && !slices.Contains(mine, evtID) {
			mine = append(mine, evtID)
		}
	}
	for evtID, at := range l.failures {
		switch {
		case f.drain:
			mine = append(mine, evtID)
		case slices.Contains(mine, evtID):
		case now.Sub(at) > keepFailures || len(l.failures) > maxFailures:
			l.log.Warn().Stringer("event_id", evtID).Msg("Nobody asked again for a Matrix event that did not reach XMPP; dropping it")
			delete(l.failures, evtID)
		}
	}
	if !f.state.CompareAndSwap(0, 1) {
		return // the waiter gave up: the failures stay for its retry
	}
	for _, evtID := range mine {
		delete(l.failures, evtID)
	}
	f.done <- mine
}

// DeliveryFailed notes, from the loop's goroutine, that the Matrix event
// being handled did not reach XMPP.
func (l *Loop) DeliveryFailed() {
	if l.current != nil && !slices.Contains(l.undelivered, l.current.ID) {
		l.undelivered = append(l.undelivered, l.current.ID)
	}
}

// WaitBefore puts the Matrix event being handled back at the front of the
// queue, which then stands still with everything behind it (so that order
// holds) until Resume, or for d at most, while the stanzas from XMPP go
// on: for an event that needs something XMPP is about to send. The handler
// returns without handling the event, which comes again after the wait.
// It reports false, and nothing waits, if that event waited before.
// Called on the loop's goroutine.
func (l *Loop) WaitBefore(d time.Duration) bool {
	if l.current == nil || l.current.ID == l.waited {
		return false
	}
	l.waited = l.current.ID
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events.pushFront(l.current)
	l.waiting = true
	l.waitGen++
	gen := l.waitGen
	time.AfterFunc(d, func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.waiting && l.waitGen == gen {
			l.waiting = false
			l.kick()
		}
	})
	return true
}

// Resume ends a wait that WaitBefore began. Called on the loop's
// goroutine.
func (l *Loop) Resume() {
	l.mu.Lock()
	l.waiting = false
	l.mu.Unlock()
}

// Delivered reports whether the Matrix event being handled has reached
// XMPP so far.
func (l *Loop) Delivered() bool {
	return l.current == nil || !slices.Contains(l.undelivered, l.current.ID)
}

// senderKey names the sender of a stanza for HoldSender.
func (l *Loop) senderKey(st any) string {
	if l.SenderKey != nil {
		return l.SenderKey(st)
	}
	_, from := xmpp.WireSize(st)
	return from
}

// HoldSender makes the later stanzas of a sender (as SenderKey names it)
// wait until ReleaseSender, while the queue's events and everyone else's
// stanzas go on. Called on the loop's goroutine.
func (l *Loop) HoldSender(key string) {
	if l.held == nil {
		l.held = map[string][]any{}
	}
	if _, ok := l.held[key]; !ok {
		l.held[key] = nil
	}
}

// ReleaseSender handles, in order, the stanzas of a sender that waited
// since HoldSender; if one of them holds the sender again, the rest wait
// for that. Called on the loop's goroutine (by the handler).
func (l *Loop) ReleaseSender(key string) {
	waiting, ok := l.held[key]
	if !ok {
		return
	}
	delete(l.held, key)
	for i, st := range waiting {
		if _, again := l.held[key]; again {
			l.held[key] = append(waiting[i:len(waiting):len(waiting)], l.held[key]...)
			return
		}
		l.handle(l.baseCtx, st) // a deadline of its own, like any stanza
	}
}

// holdBehind keeps a stanza whose sender is held, and reports whether it
// did (or refused it, past MaxHeldPerSender).
func (l *Loop) holdBehind(ctx context.Context, st any) bool {
	if len(l.held) == 0 {
		return false
	}
	key := l.senderKey(st)
	waiting, ok := l.held[key]
	if !ok {
		return false
	}
	if len(waiting) >= MaxHeldPerSender {
		l.log.Warn().Str("sender", key).Msg("Too many stanzas wait behind a sender's shared file; refusing one")
		if r, ok := l.handler.(Refuser); ok {
			r.Refuse(ctx, st)
		}
		return true
	}
	l.held[key] = append(waiting, st)
	return true
}

// delivering notes the Matrix event being handled; it reports false if it
// is not to be tried because an earlier one failed.
func (l *Loop) delivering(evt *event.Event) bool {
	if len(l.undelivered) > 0 {
		l.undelivered = append(l.undelivered, evt.ID)
		return false
	}
	l.current = evt
	return true
}

// run handles the queues until they are empty or the loop ends: a queued
// event and a stanza from the inbox take turns.
func (l *Loop) run(ctx context.Context) {
	for {
		evt, ok := l.next()
		if !ok {
			return
		}
		if st, stanza := evt.(inboxed); stanza {
			if l.holdBehind(ctx, st.st) {
				continue
			}
			evt = st.st
		}
		if !l.handle(ctx, evt) {
			l.end()
			l.mu.Lock()
			l.finish()
			l.mu.Unlock()
			return
		}
	}
}

// inboxed marks a stanza taken from the inbox by next.
type inboxed struct{ st any }

// next takes what to handle next, or reports false (and lets the goroutine
// go) when there is nothing, or the loop ended.
func (l *Loop) next() (any, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ended {
		l.finish()
		return nil, false
	}
	hasEvent := l.events.len() > 0 && !l.waiting
	if l.fromInbox || !hasEvent {
		if st, _ := l.inbox.pop(); st != nil {
			l.fromInbox = false
			return inboxed{st}, true
		}
	}
	if !hasEvent {
		l.running = false
		return nil, false
	}
	evt := l.events.pop()
	if l.space != nil {
		close(l.space)
		l.space = nil
	}
	l.fromInbox = true
	return evt, true
}

// finish lets the goroutine go from an ended loop, which is then done.
// Called with mu held.
func (l *Loop) finish() {
	if l.running {
		l.running = false
		close(l.done)
	}
}

// handle runs one event with a deadline, recovering from panics so that one
// bad event cannot take down the room. It returns false when the room is
// gone.
func (l *Loop) handle(loopCtx context.Context, evt any) (alive bool) {
	ctx, cancel := context.WithTimeout(loopCtx, EventTimeout)
	defer cancel()
	if l.Handled != nil {
		start := time.Now()
		defer func() { l.Handled(evt, time.Since(start)) }()
	}
	alive = true
	defer func() {
		if r := recover(); r != nil {
			l.log.Error().Any("panic", r).Bytes("stack", debug.Stack()).Msg("Panic while handling portal event")
		}
	}()
	if f, ok := evt.(flushEvent); ok {
		// At shutdown what XMPP sent before counts too. Each stanza gets
		// its own deadline: under the flush's, a long inbox would run out of
		// time at once and every stanza left in it would fail.
		for n := l.inbox.len(); f.drain && n > 0; n-- {
			if st, _ := l.inbox.pop(); st != nil && !l.holdBehind(loopCtx, st) && !l.handle(loopCtx, st) {
				break
			}
		}
		l.answerFlush(f)
		return true
	}
	if e, ok := evt.(*event.Event); ok && e.ID != "" {
		if !l.delivering(e) {
			return true
		}
		defer func() { l.current = nil }()
	}
	return l.handler.HandleEvent(ctx, evt)
}

// inbox is a FIFO of stanzas, bounded by count (MaxInbox), bytes
// (MaxInboxBytes) and each sender's bytes (MaxSenderBytes).
type inbox struct {
	mu     sync.Mutex
	items  fifo
	bytes  int
	sender map[string]int // bytes waiting per sender (bare JID)
}

func (q *inbox) push(st any) bool {
	size, from := xmpp.WireSize(st)
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.items.len() >= MaxInbox || q.bytes+size > MaxInboxBytes || q.sender[from]+size > MaxSenderBytes {
		return false
	}
	if q.sender == nil {
		q.sender = map[string]int{}
	}
	q.items.push(st)
	q.bytes += size
	q.sender[from] += size
	return true
}

// pop takes the oldest stanza, nil if none, and reports whether more wait.
func (q *inbox) pop() (any, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	st := q.items.pop()
	if st == nil {
		return nil, false
	}
	size, from := xmpp.WireSize(st)
	q.bytes -= size
	if q.sender[from] -= size; q.sender[from] <= 0 {
		delete(q.sender, from)
	}
	return st, q.items.len() > 0
}

func (q *inbox) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.items.len()
}

// fifo is a queue that keeps no large buffer once it is empty: an idle
// room costs a few words.
type fifo struct {
	items []any
	head  int
}

func (f *fifo) push(v any) { f.items = append(f.items, v) }

func (f *fifo) len() int { return len(f.items) - f.head }

// pushFront puts an item before the others.
func (f *fifo) pushFront(v any) {
	if f.head > 0 {
		f.head--
		f.items[f.head] = v
		return
	}
	f.items = append([]any{v}, f.items...)
}

// pop takes the oldest item, nil if none.
func (f *fifo) pop() any {
	if f.head == len(f.items) {
		return nil
	}
	v := f.items[f.head]
	f.items[f.head] = nil
	f.head++
	switch {
	case f.head == len(f.items) && cap(f.items) > 64:
		f.items, f.head = nil, 0 // a burst's buffer is not kept
	case f.head == len(f.items):
		f.items, f.head = f.items[:0], 0
	case f.head > 1024 && f.head*2 > len(f.items):
		f.items, f.head = append([]any(nil), f.items[f.head:]...), 0
	}
	return v
}

// knownEventTypes are the Matrix event types portals handle.
var knownEventTypes = map[string]bool{}

func init() {
	for _, t := range []event.Type{event.EventMessage, event.EventReaction, event.EventRedaction, event.EventEncrypted,
		event.EphemeralEventTyping, event.EphemeralEventReceipt, event.StateMember, event.StateRoomName, event.StateTopic,
		event.StateCanonicalAlias, event.StateJoinRules, event.StatePowerLevels, event.StateRoomAvatar,
		event.StateHistoryVisibility, event.StateEncryption} {
		knownEventTypes[t.Type] = true
	}
}

// Kind names a queued event for metrics, from a fixed set: senders choose
// event types, and each label value is a new time series.
func Kind(evt any) string {
	switch e := evt.(type) {
	case *event.Event:
		if knownEventTypes[e.Type.Type] {
			return "matrix_" + strings.TrimPrefix(e.Type.Type, "m.")
		}
		return "matrix_other"
	case *xmpp.Message:
		return "xmpp_message"
	case *xmpp.Presence:
		return "xmpp_presence"
	case *xmpp.IQ:
		return "xmpp_iq"
	}
	return "control"
}
