package roomloop

import (
	"context"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/event"

	"github.com/mxpp/mxpp/xmpp"
)

// A homeserver hands events to the bridge in the room's order, with
// exceptions: an event in flight when it stopped may be sent again only
// after later ones (Dendrite redelivers an unacknowledged event after 30 s),
// and a transaction that failed may be retried after later ones went
// through. Such a message goes to XMPP with an XEP-0203 delay stamp of the
// time it was sent, so that clients can place it.
const (
	// LateMargin is how much older than the last message bridged from the
	// room a message must be to count as out of order. None: the
	// homeserver gives the times (origin_server_ts), in the order it takes
	// the events, so anything older than one already bridged came out of
	// order; a stamp on a message a few milliseconds out of order costs
	// nothing, an unstamped message out of order misleads readers. (A
	// margin of 2 s let messages that Dendrite handed over out of order
	// after a bridge restart through unstamped.)
	LateMargin = 0
	// LateAge is how long ago a message must have been sent, by the
	// homeserver's own count (unsigned.age), to count as late even in
	// order: one delivered after an outage.
	LateAge = time.Minute
)

// Lateness tells a room's Matrix messages that reach the bridge out of
// order or late. The loop's goroutine owns it.
type Lateness struct {
	newest time.Time // of the newest Matrix message seen
}

// Stamp returns the delay stamp (from the room's address) for a Matrix
// message that reached the bridge out of its room's order or late, and nil
// for one on time. It records the message's time as the room's newest when
// it is newer.
func (l *Lateness) Stamp(ctx context.Context, evt *event.Event, from string) *xmpp.Delay {
	ts := time.UnixMilli(evt.Timestamp)
	late := evt.Timestamp > 0 && (ts.Add(LateMargin).Before(l.newest) ||
		time.Duration(evt.Unsigned.Age)*time.Millisecond > LateAge)
	if ts.After(l.newest) {
		l.newest = ts
	}
	if !late {
		return nil
	}
	zerolog.Ctx(ctx).Info().Stringer("event_id", evt.ID).Time("sent", ts).Time("newest", l.newest).
		Msg("Matrix message arrived out of order or late; stamping it with its time")
	return &xmpp.Delay{From: from, Stamp: ts.UTC()}
}
