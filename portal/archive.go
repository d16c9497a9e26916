package portal

import (
	"context"
	"errors"
	"slices"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"mellium.im/xmpp/stanza"

	"github.com/mxpp/mxpp/roomloop"
	"github.com/mxpp/mxpp/xmpp"
)

// Bounds of archive queries (XEP-0313). The archive is the room's Matrix
// timeline, read live as the asking occupant's puppet: the bridge stores
// no messages.
const (
	archiveDefaultPage = 50
	archiveMaxPage     = 100
	// archiveBatch is how many events one homeserver request reads.
	archiveBatch = 100
	// archiveScan bounds how many events one query reads: a query from a
	// point in time is answered by reading back from now to it.
	archiveScan = 2000
)

// archiveQuery is what a MAM query asks for, in Matrix terms.
type archiveQuery struct {
	start, end    time.Time
	after, before *string // RSM ids (event IDs); before "" is the last page
	max           int
}

// handleMAMQuery answers an occupant's archive query with the room's past
// messages, each forwarded in a result message, then the IQ result with
// the page's first and last ids. Only occupants may ask, and only rooms
// whose history members may see (shared, world_readable) have an archive.
// Reading the timeline can take a few homeserver requests, so it runs
// beside the loop; the answer is written in the loop (archiveRead), which
// knows the nicks.
func (p *Portal) handleMAMQuery(ctx context.Context, iq *xmpp.IQ) {
	fail := func(cond stanza.Condition, text string) {
		p.deps.XMPP.Reply(ctx, iq, nil, xmpp.StanzaError(cond, text))
	}
	occ, ok := p.session(iq.From.JID)
	if !ok {
		fail(stanza.Forbidden, "Join the room to read its archive")
		return
	}
	var q xmpp.MAMQuery
	if err := iq.Payload.Decode(&q); err != nil {
		fail(stanza.BadRequest, "Malformed archive query")
		return
	}
	aq, serr := readArchiveQuery(&q)
	if serr != nil {
		fail(serr.Condition, serr.Error())
		return
	}
	read := archiveRead{iq: iq, queryID: q.QueryID, complete: true}
	if !p.historyShared() {
		p.answerArchive(ctx, read)
		return
	}
	puppet := occ.puppet
	go func() {
		rctx, cancel := context.WithTimeout(p.Context(), roomloop.EventTimeout)
		defer cancel()
		read.page, read.complete, read.err = p.archivePage(rctx, puppet, aq)
		if !p.Queue(p.Context(), read) {
			p.deps.XMPP.Reply(p.Context(), iq, nil, xmpp.StanzaError(stanza.ServiceUnavailable, "The room was closed"))
		}
	}()
}

// archiveRead is a page of the archive read for a query, or the error
// that stopped it.
type archiveRead struct {
	iq       *xmpp.IQ
	queryID  string
	page     []*event.Event
	complete bool
	err      error
}

// answerArchive sends the page read for a query and then the IQ result.
func (p *Portal) answerArchive(ctx context.Context, r archiveRead) {
	if r.err != nil {
		p.log.Warn().Err(r.err).Msg("Failed to read the room's archive")
		serr := xmpp.StanzaError(stanza.RemoteServerTimeout, "The Matrix homeserver did not answer")
		if errors.Is(r.err, mautrix.MNotFound) {
			serr = xmpp.StanzaError(stanza.ItemNotFound, "No such message in the archive")
		}
		p.deps.XMPP.Reply(ctx, r.iq, nil, serr)
		return
	}
	fin := &xmpp.MAMFin{Complete: r.complete}
	for _, evt := range r.page {
		m := p.pastMessage(ctx, evt)
		if m == nil {
			continue
		}
		p.send(ctx, &xmpp.Message{ID: xmpp.RandomID(), From: xmpp.A(p.roomJID), To: r.iq.From, MAMResult: &xmpp.MAMResult{
			QueryID: r.queryID, ID: evt.ID.String(),
			Forwarded: xmpp.Forwarded{Delay: &xmpp.Delay{Stamp: time.UnixMilli(evt.Timestamp).UTC()}, Message: m},
		}})
		if fin.Set.First == "" {
			fin.Set.First = evt.ID.String()
		}
		fin.Set.Last = evt.ID.String()
	}
	p.deps.XMPP.Reply(ctx, r.iq, fin, nil)
}

// readArchiveQuery checks a MAM query and turns it into an archiveQuery.
func readArchiveQuery(q *xmpp.MAMQuery) (archiveQuery, *stanza.Error) {
	aq := archiveQuery{max: archiveDefaultPage}
	var ok1, ok2 bool
	aq.start, ok1 = q.Time("start")
	aq.end, ok2 = q.Time("end")
	switch {
	case !ok1 || !ok2:
		return aq, xmpp.StanzaError(stanza.BadRequest, "start and end must be XEP-0082 date-times")
	case q.Form.Value("with") != "":
		return aq, xmpp.StanzaError(stanza.FeatureNotImplemented, "Filtering a room's archive by sender is not supported")
	case q.FlipPage != nil:
		return aq, xmpp.StanzaError(stanza.FeatureNotImplemented, "flip-page is not supported")
	}
	if s := q.Set; s != nil {
		if s.Max != nil {
			aq.max = min(max(*s.Max, 0), archiveMaxPage)
		}
		aq.after, aq.before = s.After, s.Before
	}
	if v := q.Form.Value("after-id"); v != "" && aq.after == nil {
		aq.after = &v
	}
	if v := q.Form.Value("before-id"); v != "" && aq.before == nil {
		aq.before = &v
	}
	if aq.after != nil && *aq.after == "" {
		aq.after = nil
	}
	return aq, nil
}

// shownInArchive reports whether a past message is one the room shows (see
// pastMessage) within the query's time range.
func (p *Portal) shownInArchive(evt *event.Event, q archiveQuery) bool {
	ts := time.UnixMilli(evt.Timestamp)
	if !q.start.IsZero() && ts.Before(q.start) || !q.end.IsZero() && ts.After(q.end) {
		return false
	}
	return p.shownLater(evt)
}

// timelineReader reads a room's timeline in one direction, a batch at a
// time, oldest first within a batch.
type timelineReader struct {
	p        *Portal
	asUser   id.UserID
	backward bool
	token    string
	started  bool
	first    []*event.Event // what the starting point came with
	read     int            // events asked for so far
	// seen are the events returned so far, and the starting event: the
	// tokens of an event's context may overlap with it (Dendrite's do).
	seen map[id.EventID]bool
}

// startReader begins reading the timeline backward from now, or from
// either side of an event.
func (p *Portal) startReader(ctx context.Context, asUser id.UserID, from *string, backward bool) (*timelineReader, error) {
	r := &timelineReader{p: p, asUser: asUser, backward: backward, seen: map[id.EventID]bool{}}
	if from == nil || *from == "" {
		return r, nil
	}
	r.seen[id.EventID(*from)] = true
	before, beforeToken, after, afterToken, err := p.deps.Matrix.EventContext(ctx, p.RoomID, asUser, id.EventID(*from))
	if err != nil {
		return nil, err
	}
	r.started, r.first, r.token = true, after, afterToken
	if backward {
		r.first, r.token = before, beforeToken
	}
	return r, nil
}

// exhausted reports whether the timeline (or the query's range) has no
// more in the reading direction.
func (r *timelineReader) exhausted() bool { return r.first == nil && r.started && r.token == "" }

// more reports whether to read on: not exhausted, and the scan bound not
// reached.
func (r *timelineReader) more() bool { return !r.exhausted() && r.read < archiveScan }

func (r *timelineReader) next(ctx context.Context) ([]*event.Event, error) {
	batch := r.first
	if batch != nil {
		r.first = nil
	} else {
		msgs, next, err := r.p.deps.Matrix.History(ctx, r.p.RoomID, r.asUser, r.token, r.backward, archiveBatch)
		if err != nil {
			return nil, err
		}
		r.token, r.started, r.read, batch = next, true, r.read+archiveBatch, msgs
	}
	fresh := batch[:0:0]
	for _, evt := range batch {
		if !r.seen[evt.ID] {
			r.seen[evt.ID] = true
			fresh = append(fresh, evt)
		}
	}
	return fresh, nil
}

// stop ends reading (the query's range is left behind).
func (r *timelineReader) stop() { r.first, r.started, r.token = nil, true, "" }

// archivePage reads the page of the room's timeline a query asks for,
// oldest first, and whether it reaches the end of the result set in the
// direction of paging.
func (p *Portal) archivePage(ctx context.Context, asUser id.UserID, q archiveQuery) ([]*event.Event, bool, error) {
	if q.after != nil {
		r, err := p.startReader(ctx, asUser, q.after, false)
		if err != nil {
			return nil, false, err
		}
		var out []*event.Event
		for r.more() && len(out) <= q.max {
			msgs, err := r.next(ctx)
			if err != nil {
				return nil, false, err
			}
			for _, evt := range msgs {
				if !q.end.IsZero() && time.UnixMilli(evt.Timestamp).After(q.end) {
					r.stop()
					break
				}
				if p.shownInArchive(evt, q) {
					out = append(out, evt)
				}
			}
		}
		return firstN(out, q.max), len(out) <= q.max && r.exhausted(), nil
	}
	// Backward: from a message, or from now. A backward query reads a page
	// and one more; a forward one from a time (or the beginning) reads
	// every message back to it.
	r, err := p.startReader(ctx, asUser, q.before, true)
	if err != nil {
		return nil, false, err
	}
	var newest []*event.Event // newest first
	wanted := archiveScan
	if q.before != nil {
		wanted = q.max + 1
	}
	for r.more() && len(newest) < wanted {
		msgs, err := r.next(ctx)
		if err != nil {
			return nil, false, err
		}
		for _, evt := range slices.Backward(msgs) {
			if !q.start.IsZero() && time.UnixMilli(evt.Timestamp).Before(q.start) {
				r.stop()
				break
			}
			if p.shownInArchive(evt, q) {
				newest = append(newest, evt)
			}
		}
	}
	slices.Reverse(newest)
	complete := len(newest) <= q.max && r.exhausted()
	if q.before != nil {
		if len(newest) > q.max {
			newest = newest[len(newest)-q.max:]
		}
		return newest, complete, nil
	}
	return firstN(newest, q.max), complete, nil
}

func firstN(evts []*event.Event, n int) []*event.Event {
	if len(evts) > n {
		return evts[:n]
	}
	return evts
}
