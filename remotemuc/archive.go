package remotemuc

import (
	"context"
	"encoding/xml"
	"time"

	"maunium.net/go/mautrix/id"
	"mellium.im/xmpp/jid"

	"github.com/mxpp/mxpp/msgconv"
	"github.com/mxpp/mxpp/xmpp"
)

// Catching up. While the bridge was away (stopped, its link cut, a server
// restarting), the room went on without our occupants, and it has removed
// them. When the first of them is back in, the portal asks the room's
// archive (XEP-0313) for what was said since a while before the newest
// message it bridged (catchUpOverlap), page by page, and bridges that with
// the messages' own times; live messages that come meanwhile wait, so that
// Matrix gets everything in the room's order. What came both ways is
// bridged once (the room's stanza-id is in the message map, a reflection of
// ours is known as such). A room without an archive cannot be asked: the
// portal says so.
//
// The catch-up starts by time, not after the newest stanza-id, because a
// room's live order need not be its archive's: a room hosted by a Matrix
// bridge archives in its Matrix timeline's order, and sends a Matrix
// user's message live when the homeserver hands it over, which can be
// after the reflection of a message of ours that the timeline has later.
// Following on from that reflection would skip the message before it,
// lost if the link broke just then.

// archivePage bounds one page of the catch-up; archiveMaxPages bounds the
// whole (a week of a busy room is not worth a flood of old messages).
const (
	archivePage     = 50
	archiveMaxPages = 40
	// catchUpOverlap is how long before the newest message bridged the
	// catch-up starts: more than a homeserver takes to hand a message to
	// a bridge that hosts the room, and than servers' clocks differ.
	catchUpOverlap = 2 * time.Minute
	// maxHeld bounds the live messages that wait for a catch-up.
	maxHeld = 2000
	// archiveTimeout bounds one archive query.
	archiveTimeout = 30 * time.Second
)

// catchUp is a catch-up under way.
type catchUp struct {
	queryID string
	from    jid.JID // our occupant that asks (archives answer occupants)
	pages   int
	last    string          // the newest archive id bridged
	held    []*xmpp.Message // live messages waiting for the catch-up
	// complete is set once the archive was read to its end: it then shows
	// every message of ours the room took.
	complete bool
	// history is set for a room without an archive whose occupant asked
	// for the room's history when it joined again: the history shows
	// which of our messages the room took before the link broke, and the
	// subject that follows it ends the check.
	history bool
}

// historyWait bounds the wait for a room's history and subject after a
// rejoin that asked for them.
const historyWait = 10 * time.Second

// historySlack is how much earlier than the oldest message of ours that
// went out unconfirmed the history asked for starts.
const historySlack = 5 * time.Second

// rejoin joins a member's occupant again. In a room without an archive,
// when messages of the member's went out and never came back, the join
// asks for the room's history since then: it shows which the room took.
func (p *Portal) rejoin(m *member) Outcome { return p.rejoinSince(m, time.Time{}) }

// rejoinSince is rejoin that also asks for the history since a time, when
// it asks for any: after a start, what the process before sent last is
// unknown (rejoinAll).
func (p *Portal) rejoinSince(m *member, also time.Time) Outcome {
	m.occ.HistorySince = time.Time{}
	// Only when none of ours is in: the history is then read as such
	// (handleHistory), not taken for live messages.
	if p.muc.Archive || p.joinedMembers() > 0 {
		return m.occ.Rejoin(p.stored.Password)
	}
	since := m.sent.oldestOut()
	if !also.IsZero() && (since.IsZero() || also.Before(since)) {
		since = also
	}
	if !since.IsZero() {
		m.occ.HistorySince = since.Add(-historySlack)
	}
	return m.occ.Rejoin(p.stored.Password)
}

// sinceLastMapped is when the room's newest mapping was stored, the first
// time after the process started; zero after that or without one. A kill
// can come between a message's send and its mapping: the room's history
// since the newest mapping shows whether the room took it.
func (p *Portal) sinceLastMapped(ctx context.Context) time.Time {
	if !p.afterStart {
		return time.Time{}
	}
	p.afterStart = false
	newest, err := p.deps.DB.Message.NewestTime(ctx, p.RoomID)
	if err != nil {
		p.log.Warn().Err(err).Msg("Failed to read the room's newest mapping; not asking for its history")
	}
	return newest
}

// startHistoryCheck waits, after a rejoin that asked for the room's
// history, for that history and the subject behind it, holding live
// messages and the member's new ones meanwhile like a catch-up.
func (p *Portal) startHistoryCheck(m *member) {
	id := xmpp.RandomID()
	p.catching = &catchUp{queryID: id, from: m.occ.From, held: p.gapHeld, history: true}
	p.gapHeld = nil
	m.occ.HistorySince = time.Time{}
	time.AfterFunc(historyWait, func() { p.Queue(p.Context(), historyDone{queryID: id}) })
}

// historyDone ends a history check that got no subject in time.
type historyDone struct{ queryID string }

// handleHistory takes a message of the room's history, or the subject
// that ends it, during a history check, and reports whether it did. Our
// own messages in the history are confirmed (the room took them); others'
// are not bridged (without stanza-ids they cannot be told from what was
// bridged already).
func (p *Portal) handleHistory(ctx context.Context, m *member, msg *xmpp.Message) bool {
	c := p.catching
	if c == nil || !c.history || msg.Type != xmpp.TypeGroupchat || !msg.From.Bare().Equal(p.room) {
		return false
	}
	switch {
	case msg.Subject != nil && msg.Body == "":
		p.handleGroupchat(ctx, m, msg, "")
		p.endCatchUp(ctx)
		return true
	case msg.Delay != nil:
		origin := msgconv.StanzaIDOf(msg)
		taken := false
		for _, x := range p.members {
			if _, ok := x.sent.take(origin); ok {
				taken = true
				p.log.Debug().Str("id", origin).Msg("The room's history shows it took a message of ours")
				p.reflected(id.EventID(origin))
			}
		}
		if !taken {
			// One of ours from before a restart, or anyone's: only ours
			// are noted.
			p.reflection(ctx, msg.From.Resourcepart(), msg, "")
		}
		return true
	}
	return false
}

// archivePageDone is an archive query's answer, back on the loop through
// the XMPP inbox, after the results that came before it.
type archivePageDone struct {
	queryID string
	fin     *xmpp.MAMFin
	err     error
}

// startCatchUp asks the archive for what the room said while the bridge
// was away, from one of our occupants that is in.
func (p *Portal) startCatchUp(ctx context.Context, m *member) {
	if !p.muc.Archive {
		p.notice(ctx, p.room.String()+" keeps no message archive: messages sent there while the bridge was away may be missing here.", "")
		if !m.occ.HistorySince.IsZero() {
			p.startHistoryCheck(m) // the join asked for the room's history instead
			return
		}
		p.releaseHeld(ctx)
		return
	}
	if p.stored.LastTime.IsZero() {
		p.releaseHeld(ctx)
		return // nothing bridged yet: nothing to follow on from
	}
	p.catching = &catchUp{queryID: xmpp.RandomID(), from: m.occ.From, held: p.gapHeld}
	p.gapHeld = nil
	since := p.stored.LastTime.Add(-catchUpOverlap)
	p.log.Info().Str("newest", p.stored.LastStanzaID).Time("since", since).Msg("Catching up from the MUC's archive")
	p.queryArchive("", since)
}

// queryArchive asks for the page after a stanza-id, or from a time when
// after is empty, beside the loop; the answer comes back as
// archivePageDone.
func (p *Portal) queryArchive(after string, since time.Time) {
	c := p.catching
	max := archivePage
	q := &xmpp.MAMQuery{QueryID: c.queryID, Set: &xmpp.RSMSet{Max: &max},
		Form: &xmpp.CommandForm{Type: "submit", Fields: []xmpp.CommandFormField{{Var: "FORM_TYPE", Type: "hidden", Values: []string{xmpp.NSMAM}}}}}
	if after != "" {
		q.Set.After = &after
	} else {
		q.Form.Fields = append(q.Form.Fields, xmpp.CommandFormField{Var: "start", Values: []string{since.UTC().Format(time.RFC3339)}})
	}
	from, room, queryID := c.from, p.room, c.queryID
	go func() {
		ctx, cancel := context.WithTimeout(p.Context(), archiveTimeout)
		defer cancel()
		reply, err := p.deps.XMPP.SendIQ(ctx, &xmpp.IQ{Type: xmpp.TypeSet, From: xmpp.A(from), To: xmpp.A(room), Body: q})
		done := archivePageDone{queryID: queryID, err: err}
		if err == nil {
			var fin xmpp.MAMFin
			if derr := reply.Payload.Decode(&fin); derr == nil && fin.XMLName.Local == "fin" {
				done.fin = &fin
			} else {
				done.fin = &xmpp.MAMFin{Complete: true}
			}
		}
		// Behind the results in the inbox: the room sends them before
		// the answer, and they must be handled first.
		if !p.QueueXMPP(done) {
			p.Queue(p.Context(), done)
		}
	}()
}

// handleArchived bridges one message of the archive's answer.
func (p *Portal) handleArchived(ctx context.Context, m *member, msg *xmpp.Message) {
	c, r := p.catching, msg.MAMResult
	if c == nil || r.QueryID != c.queryID || !msg.From.Bare().Equal(p.room) || r.Forwarded.Message == nil {
		p.log.Debug().Stringer("from", msg.From).Msg("Ignoring an archive result nobody asked for")
		return
	}
	old := r.Forwarded.Message
	if !old.From.Bare().Equal(p.room) || old.Type != xmpp.TypeGroupchat || r.ID == "" {
		return
	}
	if r.Forwarded.Delay != nil && old.Delay == nil {
		old.Delay = r.Forwarded.Delay
	}
	c.last = r.ID
	p.handleGroupchat(ctx, m, old, r.ID)
}

// handleArchivePage goes on with the next page, or ends the catch-up.
func (p *Portal) handleArchivePage(ctx context.Context, d archivePageDone) {
	c := p.catching
	if c == nil || d.queryID != c.queryID {
		return
	}
	c.pages++
	switch {
	case d.err != nil:
		p.log.Warn().Err(d.err).Msg("Catching up from the MUC's archive failed")
		p.notice(ctx, "The bridge could not read "+p.room.String()+"'s archive: messages sent there while the bridge was away may be missing here.", "")
	case !d.fin.Complete && d.fin.Set.Last != "" && c.pages < archiveMaxPages:
		p.queryArchive(d.fin.Set.Last, time.Time{})
		return
	case !d.fin.Complete && d.fin.Set.Last != "":
		p.notice(ctx, "The bridge caught up with the newest messages of "+p.room.String()+" only up to a limit: older ones sent while it was away are missing here.", "")
	default:
		c.complete = true
	}
	p.endCatchUp(ctx)
}

// endCatchUp lets the live messages that waited through, and takes out of
// the Matrix room the puppets of senders who are no longer in the MUC.
func (p *Portal) endCatchUp(ctx context.Context) {
	c := p.catching
	p.catching = nil
	p.log.Info().Int("pages", c.pages).Int("held", len(c.held)).Msg("Caught up from the MUC's archive")
	for _, msg := range c.held {
		p.handleXMPPMessage(ctx, msg)
	}
	p.resendLost(ctx, c.complete)
	for _, x := range p.others.byNick {
		if !x.present {
			p.others.remove(x)
			p.removeOther(ctx, x, &xmpp.Presence{}, xmpp.MUCItem{})
		}
	}
}

// hold keeps a live message until the catch-up is done, or while none of
// ours is in the room, and reports whether it did.
func (p *Portal) hold(msg *xmpp.Message) bool {
	switch c := p.catching; {
	case msg.MAMResult != nil:
		return false
	case c != nil && len(c.held) < maxHeld:
		c.held = append(c.held, msg)
	case c == nil && p.gap && len(p.gapHeld) < maxHeld:
		p.gapHeld = append(p.gapHeld, msg)
	default:
		return false
	}
	return true
}

// releaseHeld bridges what waited for a catch-up that does not happen.
func (p *Portal) releaseHeld(ctx context.Context) {
	held := p.gapHeld
	p.gapHeld = nil
	for _, msg := range held {
		p.handleXMPPMessage(ctx, msg)
	}
}

// pingQuery is an XEP-0199 ping.
type pingQuery struct {
	XMLName xml.Name `xml:"urn:xmpp:ping ping"`
}
