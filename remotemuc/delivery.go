package remotemuc

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/mxpp/mxpp/xmpp"
)

// Delivery of a member's messages. A message written to the component's
// stream is not yet in the room: a stream that breaks takes what was on
// its way (ours, or any between here and the room: the room's server may
// have taken it just before it went down), and a room that lost the
// occupant refuses it. The room reflects every message it took (with our
// id), so a message counts as delivered once its reflection came back, or
// the room's archive shows it. Until then it is kept here: refused
// (not-acceptable), it is sent again after the rejoin; sent on a stream
// that broke and never reflected, it is sent again after the rejoin and
// the catch-up, which would have found it. A catch-up that read the
// archive to its end settles every message that went out before it: what
// the archive did not show, the room never took, whichever stream broke.
//
// The bridge cannot tell a room's refusal from our own server's: a server
// that shuts down bounces what it can no longer route (Prosody says
// not-allowed) just before the stream closes. So any refusal gets the
// occupant back in and the message sent again, up to maxBounces times, and
// only then is the user told; a room that could not be reached
// (remote-server-not-found or -timeout) is waited for without a limit.

// maxUnconfirmed bounds the messages a member has waiting for their
// reflection.
const maxUnconfirmed = 64

// maxBounces is how many refusals of one message are taken for a passing
// fault before the user is told.
const maxBounces = 2

// sentMsg is a member's message sent, or held to be sent, to the room.
type sentMsg struct {
	m       *xmpp.Message
	order   int64     // its Matrix timestamp (Occupant.SendOrdered)
	link    uint64    // the component stream it went out on; 0 while held
	at      time.Time // when it went out
	bounces int       // how often it was refused
}

// sentLog holds a member's messages whose reflection has not come back,
// oldest first.
type sentLog struct {
	msgs []sentMsg
}

// note adds a message handed to the occupant.
func (l *sentLog) note(m *xmpp.Message, order int64) {
	l.again(sentMsg{m: m, order: order})
}

// again adds a message that goes out again, held until it does.
func (l *sentLog) again(s sentMsg) {
	if len(l.msgs) >= maxUnconfirmed {
		l.msgs = slices.Delete(l.msgs, 0, 1)
	}
	s.link = 0
	l.msgs = append(l.msgs, s)
}

// wentOut notes on which stream the messages among stanzas went out.
func (l *sentLog) wentOut(stanzas []any, link uint64) {
	for _, st := range stanzas {
		if m, ok := st.(*xmpp.Message); ok {
			for i := range l.msgs {
				if l.msgs[i].m == m {
					l.msgs[i].link, l.msgs[i].at = link, time.Now()
				}
			}
		}
	}
}

// take returns the message with an id and forgets it.
func (l *sentLog) take(msgID string) (sentMsg, bool) {
	for i, s := range l.msgs {
		if s.m.ID == msgID {
			l.msgs = slices.Delete(l.msgs, i, i+1)
			return s, true
		}
	}
	return sentMsg{}, false
}

// has reports whether a message with an id waits for its reflection.
func (l *sentLog) has(msgID string) bool {
	return slices.ContainsFunc(l.msgs, func(s sentMsg) bool { return s.m.ID == msgID })
}

// confirm forgets a message whose reflection came back.
func (l *sentLog) confirm(msgID string) { l.take(msgID) }

// oldestOut returns when the oldest message that went out and has not
// come back went out, or zero.
func (l *sentLog) oldestOut() time.Time {
	var oldest time.Time
	for _, s := range l.msgs {
		if s.link != 0 && (oldest.IsZero() || s.at.Before(oldest)) {
			oldest = s.at
		}
	}
	return oldest
}

// lostWith returns, and forgets, the messages that went out on another
// stream than link and never came back: that stream may have lost them.
// With link 0, every message that went out and never came back.
func (l *sentLog) lostWith(link uint64) []sentMsg {
	var lost, kept []sentMsg
	for _, s := range l.msgs {
		if s.link != 0 && s.link != link {
			lost = append(lost, s)
		} else {
			kept = append(kept, s)
		}
	}
	l.msgs = kept
	return lost
}

// deferMessages keeps the messages among stanzas a member's occupant
// would send while the portal catches up, and returns the rest.
func (p *Portal) deferMessages(m *member, stanzas []any) []any {
	var rest []any
	for _, st := range stanzas {
		msg, ok := st.(*xmpp.Message)
		if !ok || msg.ID == "" {
			rest = append(rest, st)
			continue
		}
		var order int64
		for _, s := range m.sent.msgs {
			if s.m == msg {
				order = s.order
			}
		}
		m.deferred = append(m.deferred, sentMsg{m: msg, order: order})
	}
	return rest
}

// resendLost sends, after a catch-up (or a rejoin that needed none), what
// each member sent on a stream that broke and the room never reflected
// (nor its archive showed), and then what waited for the catch-up: all of
// it in the order the user wrote it. After a catch-up that read the
// archive to its end (archived), every message that went out and that
// neither came back nor was in the archive is lost, on whichever stream.
func (p *Portal) resendLost(ctx context.Context, archived bool) {
	link := p.deps.XMPP.Link()
	if archived {
		link = 0
	}
	for _, m := range p.members {
		lost := m.sent.lostWith(link)
		for _, s := range lost {
			p.log.Info().Stringer("user_id", m.user).Str("id", s.m.ID).Msg("Sending a message again that a broken link may have lost")
			m.sent.again(s)
		}
		for _, s := range inOrder(append(lost, m.deferred...)) {
			if p.took.has(s.m.ID) {
				p.log.Info().Str("id", s.m.ID).Msg("The room's history shows it took this message before a restart; not sending it again")
				continue
			}
			p.apply(ctx, m, p.occSend(ctx, m, s.m, s.order))
		}
		m.deferred = nil
	}
}

// inOrder sorts messages by their order, stably; one without an order (0)
// keeps its place behind the one before it.
func inOrder(msgs []sentMsg) []sentMsg {
	type keyed struct {
		s   sentMsg
		key int64
	}
	ks := make([]keyed, len(msgs))
	var last int64
	for i, s := range msgs {
		if s.order != 0 {
			last = s.order
		}
		ks[i] = keyed{s, last}
	}
	slices.SortStableFunc(ks, func(a, b keyed) int { return cmp.Compare(a.key, b.key) })
	out := make([]sentMsg, len(ks))
	for i, k := range ks {
		out[i] = k.s
	}
	return out
}
