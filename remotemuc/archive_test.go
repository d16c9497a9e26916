package remotemuc

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxpp/mxpp/matrix"
	"github.com/mxpp/mxpp/xmpp"
)

// TestPortalGapCatchUp: the room's server goes down while messages are on
// their way both ways, and the room loses our only occupant. What the room
// sends before it notices waits; the catch-up after the rejoin starts where
// the gap began, so that the message the broken link lost comes in its
// place and what waited is not bridged twice. A message of ours that went
// out before the gap and neither came back nor is in the archive is sent
// again; one the archive shows is not.
func TestPortalGapCatchUp(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t)
	p, hs, x := newTestPortal(t, db, xmpp.NSStanzaID, xmpp.NSMAM)
	mary := id.UserID("@mary:hs.test")
	p.HandleEvent(ctx, memberEvent(mary, event.MembershipJoin, "Mary"))
	p.HandleEvent(ctx, fromRoom("Mary", maryJID, "", part, "", xmpp.StatusSelf))

	anna, _ := testRoom.WithResource("Anna")
	annaSays := func(n string) *xmpp.Message {
		return &xmpp.Message{ID: "a-" + n, Type: xmpp.TypeGroupchat, From: xmpp.A(anna), To: xmpp.A(maryJID), Body: "anna-" + n,
			StanzaID: &xmpp.StanzaID{ID: "sid-" + n, By: testRoom.String()}}
	}
	archived := func(queryID string, m *xmpp.Message) *xmpp.Message {
		return &xmpp.Message{From: xmpp.A(testRoom), To: xmpp.A(maryJID),
			MAMResult: &xmpp.MAMResult{QueryID: queryID, ID: m.StanzaID.ID, Forwarded: xmpp.Forwarded{Message: m}}}
	}
	marySays := func(n string) {
		p.HandleEvent(ctx, &event.Event{ID: id.EventID("$m" + n), Type: event.EventMessage, Sender: mary, RoomID: p.RoomID,
			Timestamp: int64(len(n)), Content: event.Content{Parsed: &event.MessageEventContent{MsgType: event.MsgText, Body: "mary-" + n}}})
	}
	reflect := func(n string) *xmpp.Message {
		from, _ := testRoom.WithResource("Mary")
		return &xmpp.Message{ID: "$m" + n, Type: xmpp.TypeGroupchat, From: xmpp.A(from), To: xmpp.A(maryJID), Body: "mary-" + n,
			OriginID: &xmpp.OriginID{ID: "$m" + n}, StanzaID: &xmpp.StanzaID{ID: "sid-m" + n, By: testRoom.String()}}
	}
	sentMary := func(from int) []string {
		var ids []string
		for _, v := range x.sent[from:] {
			if m, ok := v.(*xmpp.Message); ok && m.Type == xmpp.TypeGroupchat {
				ids = append(ids, m.ID)
			}
		}
		return ids
	}

	p.HandleEvent(ctx, annaSays("1"))
	marySays("1")
	p.HandleEvent(ctx, reflect("1"))
	marySays("2") // the room takes it, its reflection is lost
	marySays("3") // lost on the way to the room
	// anna-2 is lost on its way to us. The room's server comes back and,
	// before it noticed that ours left, sends anna-3 and anna-4.
	p.HandleEvent(ctx, fromRoom("Mary", maryJID, xmpp.TypeUnavailable, part, "", xmpp.StatusSelf, 333))
	if st := p.members[mary].occ.State(); st != Lost {
		t.Fatalf("after a 333 the occupant is %s; want lost", st)
	}
	p.HandleEvent(ctx, annaSays("3"))
	p.HandleEvent(ctx, annaSays("4"))
	if len(hs.sends) != 1 {
		t.Fatalf("while none of ours is in, bridged %q; want only anna-1", hs.sends)
	}

	mark := len(x.sent)
	p.HandleEvent(ctx, rejoinDue{user: mary})
	p.HandleEvent(ctx, fromRoom("Mary", maryJID, "", part, "", xmpp.StatusSelf))
	c := p.catching
	if c == nil {
		t.Fatal("no catch-up after the rejoin")
	}
	if len(sentMary(mark)) != 0 {
		t.Fatalf("sent %q during the catch-up; want everything to wait for it", sentMary(mark))
	}
	// The archive after anna-1: anna-2 … anna-4, and mary-2, which the
	// room took.
	p.HandleEvent(ctx, archived(c.queryID, annaSays("2")))
	p.HandleEvent(ctx, archived(c.queryID, reflect("2")))
	p.HandleEvent(ctx, archived(c.queryID, annaSays("3")))
	p.HandleEvent(ctx, archived(c.queryID, annaSays("4")))
	p.HandleEvent(ctx, archivePageDone{queryID: c.queryID, fin: &xmpp.MAMFin{Complete: true}})

	var bodies []string
	for _, s := range hs.sends {
		_, body, _ := strings.Cut(s, ": ")
		bodies = append(bodies, body)
	}
	if want := []string{"anna-1", "anna-2", "anna-3", "anna-4"}; !slices.Equal(bodies, want) {
		t.Errorf("bridged %q; want %q, each once and in the room's order", bodies, want)
	}
	if got, want := sentMary(mark), []string{"$m3"}; !slices.Equal(got, want) {
		t.Errorf("sent again %q; want %q (mary-2 is in the archive)", got, want)
	}
}

// TestPortalHistoryCheck: in a room without an archive, an occupant that
// lost its seat while its messages were on a stream that broke asks the
// room for its history when it joins again. A message of ours the history
// shows is not sent again (the room took it); one it does not show is; and
// the others' messages in the history are not bridged again.
func TestPortalHistoryCheck(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t)
	p, hs, x := newTestPortal(t, db) // no archive, no stanza-ids
	mary := id.UserID("@mary:hs.test")
	p.HandleEvent(ctx, memberEvent(mary, event.MembershipJoin, "Mary"))
	p.HandleEvent(ctx, fromRoom("Mary", maryJID, "", part, "", xmpp.StatusSelf))
	anna, _ := testRoom.WithResource("Anna")
	from, _ := testRoom.WithResource("Mary")
	marySays := func(n string) {
		p.HandleEvent(ctx, &event.Event{ID: id.EventID("$m" + n), Type: event.EventMessage, Sender: mary, RoomID: p.RoomID,
			Timestamp: int64(len(n)), Content: event.Content{Parsed: &event.MessageEventContent{MsgType: event.MsgText, Body: "mary-" + n}}})
	}
	p.HandleEvent(ctx, &xmpp.Message{ID: "a1", Type: xmpp.TypeGroupchat, From: xmpp.A(anna), To: xmpp.A(maryJID), Body: "anna-1"})
	marySays("1") // taken by the room, its reflection lost with the stream
	marySays("2") // lost with the stream
	x.link = 2    // the stream broke and came back
	p.HandleEvent(ctx, fromRoom("Mary", maryJID, xmpp.TypeUnavailable, part, "", xmpp.StatusSelf, 333))
	mark := len(x.sent)
	p.HandleEvent(ctx, rejoinDue{user: mary})
	var join *xmpp.Presence
	for _, v := range x.sent[mark:] {
		if pr, ok := v.(*xmpp.Presence); ok && pr.MUC != nil {
			join = pr
		}
	}
	if join == nil || join.MUC.History == nil || join.MUC.History.Since == nil {
		t.Fatalf("the rejoin asked for no history: %+v", join)
	}
	p.HandleEvent(ctx, fromRoom("Mary", maryJID, "", part, "", xmpp.StatusSelf))
	delay := &xmpp.Delay{Stamp: time.Now()}
	p.HandleEvent(ctx, &xmpp.Message{ID: "a1", Type: xmpp.TypeGroupchat, From: xmpp.A(anna), To: xmpp.A(maryJID), Body: "anna-1", Delay: delay})
	p.HandleEvent(ctx, &xmpp.Message{ID: "$m1", Type: xmpp.TypeGroupchat, From: xmpp.A(from), To: xmpp.A(maryJID), Body: "mary-1",
		OriginID: &xmpp.OriginID{ID: "$m1"}, Delay: delay})
	mark = len(x.sent)
	subject := ""
	p.HandleEvent(ctx, &xmpp.Message{Type: xmpp.TypeGroupchat, From: xmpp.A(testRoom), To: xmpp.A(maryJID), Subject: &subject})
	if again := groupchatIDs(x, mark); !slices.Equal(again, []string{"$m2"}) {
		t.Errorf("sent again %q; want only $m2 (the history shows the room took $m1)", again)
	}
	if len(hs.sends) != 1 {
		t.Errorf("bridged %q; want anna-1 once", hs.sends)
	}
}

// TestPortalCatchUpOverlap: the catch-up asks the archive by time, from a
// while before the newest message bridged, not after its stanza-id: a room
// hosted by a Matrix bridge archives in its timeline's order, which may
// have a message before the reflection of ours that came to us first. What
// the overlap brings again is bridged once.
func TestPortalCatchUpOverlap(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t)
	p, hs, x := newTestPortal(t, db, xmpp.NSStanzaID, xmpp.NSMAM)
	mary := id.UserID("@mary:hs.test")
	p.HandleEvent(ctx, memberEvent(mary, event.MembershipJoin, "Mary"))
	p.HandleEvent(ctx, fromRoom("Mary", maryJID, "", part, "", xmpp.StatusSelf))
	anna, _ := testRoom.WithResource("Anna")
	annaSays := func(n string) *xmpp.Message {
		return &xmpp.Message{ID: "a-" + n, Type: xmpp.TypeGroupchat, From: xmpp.A(anna), To: xmpp.A(maryJID), Body: "anna-" + n,
			StanzaID: &xmpp.StanzaID{ID: "sid-" + n, By: testRoom.String()}}
	}
	maryFrom, _ := testRoom.WithResource("Mary")
	reflection := &xmpp.Message{ID: "$m1", Type: xmpp.TypeGroupchat, From: xmpp.A(maryFrom), To: xmpp.A(maryJID), Body: "mary-1",
		OriginID: &xmpp.OriginID{ID: "$m1"}, StanzaID: &xmpp.StanzaID{ID: "sid-m1", By: testRoom.String()}}

	p.HandleEvent(ctx, annaSays("1"))
	p.HandleEvent(ctx, &event.Event{ID: "$m1", Type: event.EventMessage, Sender: mary, RoomID: p.RoomID,
		Content: event.Content{Parsed: &event.MessageEventContent{MsgType: event.MsgText, Body: "mary-1"}}})
	p.HandleEvent(ctx, reflection)
	// anna-2, before mary-1 in the room's archive, was sent to us after
	// mary-1's reflection, on a link that broke.
	p.HandleEvent(ctx, fromRoom("Mary", maryJID, xmpp.TypeUnavailable, part, "", xmpp.StatusSelf, 333))
	asked := time.Now()
	p.HandleEvent(ctx, rejoinDue{user: mary})
	p.HandleEvent(ctx, fromRoom("Mary", maryJID, "", part, "", xmpp.StatusSelf))
	c := p.catching
	if c == nil {
		t.Fatal("no catch-up after the rejoin")
	}
	var q *xmpp.MAMQuery
	for deadline := time.Now().Add(5 * time.Second); q == nil && time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if qs := x.mamQueries(); len(qs) > 0 {
			q = qs[0]
		}
	}
	if q == nil {
		t.Fatal("the catch-up asked the archive nothing")
	}
	if q.Set != nil && q.Set.After != nil {
		t.Errorf("the catch-up asked for what came after %q; want a start time", *q.Set.After)
	}
	start, err := time.Parse(time.RFC3339, q.Form.Value("start"))
	if err != nil || start.After(asked.Add(-catchUpOverlap+time.Second)) || start.Before(asked.Add(-catchUpOverlap-5*time.Second)) {
		t.Errorf("the catch-up starts at %q (%v); want %v before the newest message", q.Form.Value("start"), err, catchUpOverlap)
	}
	for _, m := range []*xmpp.Message{annaSays("1"), annaSays("2"), reflection, annaSays("3")} {
		p.HandleEvent(ctx, &xmpp.Message{From: xmpp.A(testRoom), To: xmpp.A(maryJID),
			MAMResult: &xmpp.MAMResult{QueryID: c.queryID, ID: m.StanzaID.ID, Forwarded: xmpp.Forwarded{Message: m}}})
	}
	p.HandleEvent(ctx, archivePageDone{queryID: c.queryID, fin: &xmpp.MAMFin{Complete: true}})
	var bodies []string
	for _, s := range hs.sends {
		_, body, _ := strings.Cut(s, ": ")
		bodies = append(bodies, body)
	}
	if want := []string{"anna-1", "anna-2", "anna-3"}; !slices.Equal(bodies, want) {
		t.Errorf("bridged %q; want %q, each once", bodies, want)
	}
}

// TestPortalTookBeforeRestart: a bridge killed between sending a message
// of ours and mapping it starts again; in a room without an archive, its
// first join asks for the history since the newest mapping, which shows
// the message with its id. When the homeserver hands the event again, it
// is mapped, not sent again; one the history does not show is sent.
func TestPortalTookBeforeRestart(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t)
	p, _, _ := newTestPortal(t, db) // no archive, no stanza-ids
	mary := id.UserID("@mary:hs.test")
	p.HandleEvent(ctx, memberEvent(mary, event.MembershipJoin, "Mary"))
	p.HandleEvent(ctx, fromRoom("Mary", maryJID, "", part, "", xmpp.StatusSelf))
	p.HandleEvent(ctx, &event.Event{ID: "$m8", Type: event.EventMessage, Sender: mary, RoomID: p.RoomID,
		Content: event.Content{Parsed: &event.MessageEventContent{MsgType: event.MsgText, Body: "mary-8"}}})
	mapped := time.Now()
	// $m9 went out, and the process died before mapping it. A new one
	// starts.
	defer func(was time.Time) { processStart = was }(processStart)
	processStart = time.Now()
	p2, hs2, x2 := newTestPortal(t, db)
	hs2.info.Members[mary] = matrix.Member{Displayname: "Mary"}
	p2.HandleEvent(ctx, Reconnected{})
	var join *xmpp.Presence
	for _, v := range x2.sent {
		if pr, ok := v.(*xmpp.Presence); ok && pr.MUC != nil {
			join = pr
		}
	}
	if join == nil || join.MUC.History == nil || join.MUC.History.Since == nil || join.MUC.History.Since.After(mapped) {
		t.Fatalf("the first join after the start asked for no history since the newest mapping: %+v", join)
	}
	p2.HandleEvent(ctx, fromRoom("Mary", maryJID, "", part, "", xmpp.StatusSelf))
	from, _ := testRoom.WithResource("Mary")
	p2.HandleEvent(ctx, &xmpp.Message{ID: "$m9", Type: xmpp.TypeGroupchat, From: xmpp.A(from), To: xmpp.A(maryJID), Body: "mary-9",
		OriginID: &xmpp.OriginID{ID: "$m9"}, Delay: &xmpp.Delay{Stamp: time.Now()}})
	subject := ""
	p2.HandleEvent(ctx, &xmpp.Message{Type: xmpp.TypeGroupchat, From: xmpp.A(testRoom), To: xmpp.A(maryJID), Subject: &subject})

	mark := len(x2.sent)
	for _, n := range []string{"9", "10"} {
		p2.HandleEvent(ctx, &event.Event{ID: id.EventID("$m" + n), Type: event.EventMessage, Sender: mary, RoomID: p2.RoomID,
			Content: event.Content{Parsed: &event.MessageEventContent{MsgType: event.MsgText, Body: "mary-" + n}}})
	}
	if sent := groupchatIDs(x2, mark); !slices.Equal(sent, []string{"$m10"}) {
		t.Errorf("sent %q; want only $m10 (the history shows the room took $m9)", sent)
	}
	if row, err := db.Message.GetByEventID(ctx, p2.RoomID, "$m9"); err != nil || row == nil {
		t.Errorf("$m9 is not mapped: %v, %v", row, err)
	}
}

// groupchatIDs returns the ids of the groupchat messages sent since mark.
func groupchatIDs(x *fakeXMPP, mark int) []string {
	var ids []string
	for _, v := range x.sent[mark:] {
		if m, ok := v.(*xmpp.Message); ok && m.Type == xmpp.TypeGroupchat {
			ids = append(ids, m.ID)
		}
	}
	return ids
}
