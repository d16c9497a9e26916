//go:build e2e

package e2e

import (
	"bytes"
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/format"
	"maunium.net/go/mautrix/id"
	"mellium.im/xmpp/jid"

	"github.com/mxpp/mxpp/testenv"
	"github.com/mxpp/mxpp/xmpp"
)

// Two islands: the main environment is island A (hs.test, xmpp.test,
// matrix.xmpp.test); island B is a second Matrix deployment with its own
// Dendrite (hs-b.test), Prosody (xmpp-b.test) and bridge
// (matrix.xmpp-b.test). The homeservers never talk to each other; the two
// Prosodys federate over s2s on loopback (dialback, static routes, no DNS).
const islandBDomain = "xmpp-b.test"

var islandB struct {
	once sync.Once
	v    *env
	err  error
}

// needIslands returns both islands, starting B the first time.
func needIslands(t *testing.T) (a, b *env) {
	t.Helper()
	a = need(t)
	if a.peerS2S == 0 {
		t.Fatalf("the two-island tests run with Prosody (E2E_XMPP=%s)", a.XMPPServerName())
	}
	islandB.once.Do(func() { islandB.v, islandB.err = newIsland(a) })
	if islandB.err != nil {
		t.Fatalf("starting island B: %v", islandB.err)
	}
	return a, islandB.v
}

func newIsland(a *env) (*env, error) {
	stack, err := testenv.New(a.Root, "mxpp-e2e-b-", "")
	if err != nil {
		return nil, err
	}
	v := &env{Stack: stack}
	v.HSDomain, v.XMPPDomain, v.CompDomain, v.MUCDomain = "hs-b.test", islandBDomain, "matrix."+islandBDomain, "conference."+islandBDomain
	v.Users = []string{"bea", "bert"}
	v.S2SPort = a.peerS2S
	v.S2SRoutes = map[string]string{a.XMPPDomain: fmt.Sprintf("127.0.0.1:%d", a.S2SPort)}
	v.Bin = a.Bin // the same binary, built once
	return v, v.start()
}

// puppetOn is the puppet that stands for an XMPP address on an island.
func (v *env) puppetOn(bare string) id.UserID {
	return id.NewUserID("_xmpp_"+id.EncodeUserLocalpart(bare), v.HSDomain)
}

// filesHold reports the files under dir that contain text.
func filesHold(t *testing.T, dir, text string) []string {
	t.Helper()
	var found []string
	_ = filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return nil
		}
		if data, err := os.ReadFile(path); err == nil && bytes.Contains(data, []byte(text)) {
			found = append(found, path)
		}
		return nil
	})
	return found
}

// TestE2EIslandsSharedRoom: island A exposes a room; a user of island B
// joins it through B's bridge by its xmpp: address. Both islands' users
// talk, each shown on the other island as one puppet under their display
// name; nothing said before B's first user joined reaches B's homeserver;
// neither bridge makes a puppet of its own users.
func TestE2EIslandsSharedRoom(t *testing.T) {
	a, b := needIslands(t)
	anna, room, muc := a.newRoom(t, "Anna", "projekt", "Projekt", "")
	anna.say(room, "secret before B")
	ben := b.newMatrixUser(t, "ben", "Ben")
	dm := ben.directChat()
	ben.ask(dm, "join "+xmpp.URI(muc, "join"), "Invited you")
	alias := ben.remoteAlias(muc)
	resolved, err := ben.c.ResolveAlias(ctx(t), alias)
	if err != nil {
		t.Fatalf("resolving %s on B: %v", alias, err)
	}
	portal := resolved.RoomID
	ben.waitEvent("the invitation", isMembership(portal, ben.id, event.MembershipInvite))
	ben.join(portal)

	// Each island shows the other's user as one puppet, by name.
	benOnA := a.puppetOn(b.contactJID(ben.id).String())
	annaOnB := b.puppetOn(a.contactJID(anna.id).String())
	if m := anna.waitEvent("Ben on A", isMembership(room, benOnA, event.MembershipJoin)); m.Content.AsMember().Displayname != "Ben" {
		t.Errorf("Ben is shown on A as %q", m.Content.AsMember().Displayname)
	}
	if m := ben.waitEvent("Anna on B", isMembership(portal, annaOnB, event.MembershipJoin)); m.Content.AsMember().Displayname != "Anna" {
		t.Errorf("Anna is shown on B as %q", m.Content.AsMember().Displayname)
	}

	// Messages both ways, with formatting.
	content := format.RenderMarkdown("hallo **Ben**", true, false)
	if _, err = anna.c.SendMessageEvent(ctx(t), room, event.EventMessage, &content); err != nil {
		t.Fatal(err)
	}
	hallo := ben.waitEvent("Anna's message on B", isMessage(portal, annaOnB, "hallo *Ben*"))
	if c := hallo.Content.AsMessage(); c.FormattedBody != "hallo <strong>Ben</strong>" {
		t.Errorf("the formatting arrived on B as %q", c.FormattedBody)
	}
	reply := ben.say(portal, "hi Anna")
	anna.waitEvent("Ben's message on A", isMessage(room, benOnA, "hi Anna"))

	// A reply, a reaction and an edit from B reach A as such.
	rc := &event.MessageEventContent{MsgType: event.MsgText, Body: "replying"}
	rc.GetRelatesTo().SetReplyTo(hallo.ID)
	if _, err = ben.c.SendMessageEvent(ctx(t), portal, event.EventMessage, rc); err != nil {
		t.Fatal(err)
	}
	var annaMsg id.EventID
	for _, evt := range anna.eventsIn(room) {
		if evt.Sender == anna.id && evt.Type == event.EventMessage && strings.HasPrefix(evt.Content.AsMessage().Body, "hallo") {
			annaMsg = evt.ID
		}
	}
	got := anna.waitEvent("Ben's reply on A", isMessage(room, benOnA, "replying"))
	if to := got.Content.AsMessage().RelatesTo.GetReplyTo(); to != annaMsg {
		t.Errorf("Ben's reply refers on A to %q; want Anna's %s", to, annaMsg)
	}
	if _, err = ben.c.SendReaction(ctx(t), portal, hallo.ID, "👍"); err != nil {
		t.Fatal(err)
	}
	anna.waitEvent("Ben's reaction on A", func(evt *event.Event) bool {
		r := evt.Content.AsReaction().RelatesTo
		return evt.RoomID == room && evt.Type == event.EventReaction && evt.Sender == benOnA && r.EventID == annaMsg && r.Key == "👍"
	})
	edit := &event.MessageEventContent{MsgType: event.MsgText, Body: "* hi Anna!"}
	edit.SetEdit(reply)
	edit.NewContent = &event.MessageEventContent{MsgType: event.MsgText, Body: "hi Anna!"}
	if _, err = ben.c.SendMessageEvent(ctx(t), portal, event.EventMessage, edit); err != nil {
		t.Fatal(err)
	}
	anna.waitEvent("Ben's edit on A", func(evt *event.Event) bool {
		c := evt.Content.AsMessage()
		return evt.RoomID == room && evt.Sender == benOnA && c.RelatesTo.GetReplaceID() != "" && c.NewContent != nil && c.NewContent.Body == "hi Anna!"
	})

	// No ghosts of ghosts: B's portal room holds Ben, B's bot and Anna's
	// puppet; A's room holds Anna, A's bot and Ben's puppet.
	waitFor(t, "the members to settle", func() bool { return len(ben.members(portal)) == 3 && len(anna.members(room)) == 3 })
	for _, m := range ben.members(portal) {
		if m != ben.id && m != ben.bot() && m != annaOnB {
			t.Errorf("B's portal room has an extra member %s", m)
		}
	}
	for _, m := range anna.members(room) {
		if m != anna.id && m != anna.bot() && m != benOnA {
			t.Errorf("A's room has an extra member %s", m)
		}
	}

	// No history crossed: nothing Anna said before Ben joined is on B.
	if n := ben.count(portal, func(evt *event.Event) bool {
		return evt.Type == event.EventMessage && strings.Contains(evt.Content.AsMessage().Body, "secret before B")
	}); n != 0 {
		t.Errorf("B's timeline has Anna's earlier message %d times", n)
	}
	if found := filesHold(t, b.HSDir, "secret before B"); len(found) > 0 {
		t.Errorf("B's homeserver keeps Anna's earlier message in %v", found)
	}
}

// eventsIn returns what the user received in a room.
func (u *mxUser) eventsIn(room id.RoomID) []*event.Event {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []*event.Event
	for _, evt := range u.events {
		if evt.RoomID == room {
			out = append(out, evt)
		}
	}
	return out
}

// members lists the joined members of a room the user is in.
func (u *mxUser) members(room id.RoomID) []id.UserID {
	u.t.Helper()
	resp, err := u.c.JoinedMembers(ctx(u.t), room)
	if err != nil {
		u.t.Fatalf("members of %s: %v", room, err)
	}
	var out []id.UserID
	for m := range resp.Joined {
		out = append(out, m)
	}
	return out
}

// TestE2EIslandsPlainRoom: a room on island B's own XMPP server, with an
// XMPP user of B, and Matrix users of both islands each joined through
// their own bridge: everyone sees everyone's messages, each bridge sees the
// other's users as ordinary occupants.
func TestE2EIslandsPlainRoom(t *testing.T) {
	a, b := needIslands(t)
	bea := b.newXMPPClient(t, "bea", "lage")
	room := b.remoteRoom(t, bea, "lage", "Bea")
	anna := a.newMatrixUser(t, "anna", "Anna")
	ben := b.newMatrixUser(t, "ben", "Ben")
	mark := bea.mark()
	onA := anna.joinRemote(room)
	bea.waitFrom(mark, "Anna joining from A", isPresence(occ(room, "Anna"), ""))
	onB := ben.joinRemote(room)
	bea.waitFrom(mark, "Ben joining from B", isPresence(occ(room, "Ben"), ""))

	bea.groupchat(room, "hello islands")
	for _, u := range []struct {
		who  *mxUser
		room id.RoomID
	}{{anna, onA}, {ben, onB}} {
		u.who.waitEvent("Bea's message", func(evt *event.Event) bool {
			return evt.RoomID == u.room && evt.Type == event.EventMessage && evt.Content.AsMessage().Body == "hello islands" &&
				evt.Sender != u.who.id
		})
	}
	mark = bea.mark()
	anna.say(onA, "from A")
	ben.waitEvent("Anna's message on B", func(evt *event.Event) bool {
		return evt.RoomID == onB && evt.Type == event.EventMessage && evt.Content.AsMessage().Body == "from A" && evt.Sender != ben.id
	})
	bea.waitFrom(mark, "Anna's message on XMPP", isGroupchat(occ(room, "Anna"), "from A"))
	ben.say(onB, "from B")
	anna.waitEvent("Ben's message on A", func(evt *event.Event) bool {
		return evt.RoomID == onA && evt.Type == event.EventMessage && evt.Content.AsMessage().Body == "from B" && evt.Sender != anna.id
	})
	bea.waitFrom(mark, "Ben's message on XMPP", isGroupchat(occ(room, "Ben"), "from B"))
	// Each message once on each island.
	for _, c := range []struct {
		who  *mxUser
		room id.RoomID
	}{{anna, onA}, {ben, onB}} {
		for _, body := range []string{"hello islands", "from A", "from B"} {
			if n := c.who.count(c.room, func(evt *event.Event) bool {
				return evt.Type == event.EventMessage && evt.Content.AsMessage().Body == body
			}); n != 1 {
				t.Errorf("%q is %d times in %s's portal room", body, n, c.who.id)
			}
		}
	}
}

// TestE2EIslandsDirectChat: a Matrix user of island A opens a direct chat
// with the puppet that stands for a user of island B; it arrives on B as a
// direct chat from A's user's puppet there, and the answer goes back. A's
// chat is encrypted (each bridge then decrypts and encrypts on its island)
// or plain; B's is encrypted, as the test bridges open direct chats.
func TestE2EIslandsDirectChat(t *testing.T) {
	t.Run("encrypted", func(t *testing.T) { islandsDirectChat(t, true) })
	t.Run("plain", func(t *testing.T) { islandsDirectChat(t, false) })
}

func islandsDirectChat(t *testing.T, encrypted bool) {
	a, b := needIslands(t)
	var anna *mxUser
	var state []*event.Event
	if encrypted {
		anna = a.newEncryptedUser(t, "anna", "Anna")
		state = []*event.Event{{Type: event.StateEncryption, Content: event.Content{
			Parsed: &event.EncryptionEventContent{Algorithm: id.AlgorithmMegolmV1}}}}
	} else {
		anna = a.newMatrixUser(t, "anna", "Anna")
	}
	ben := b.newEncryptedUser(t, "ben", "Ben")
	benOnA := a.puppetOn(b.contactJID(ben.id).String())
	annaOnB := b.puppetOn(a.contactJID(anna.id).String())
	resp, err := anna.c.CreateRoom(ctx(t), &mautrix.ReqCreateRoom{Preset: "trusted_private_chat", IsDirect: true, Invite: []id.UserID{benOnA},
		InitialState: state})
	if err != nil {
		t.Fatalf("opening a direct chat with %s: %v", benOnA, err)
	}
	anna.waitEvent("Ben's puppet accepting", isMembership(resp.RoomID, benOnA, event.MembershipJoin))
	if encrypted {
		// The bridge's device must be in the room to get the room's key.
		anna.waitEvent("the bot joining", isMembership(resp.RoomID, anna.bot(), event.MembershipJoin))
	}
	anna.say(resp.RoomID, "hi Ben, from A")
	inv := ben.waitEvent("the direct chat on B", func(evt *event.Event) bool {
		return evt.Type == event.StateMember && evt.StateKey != nil && *evt.StateKey == ben.id.String() && evt.Sender == annaOnB &&
			evt.Content.AsMember().Membership == event.MembershipInvite
	})
	if !inv.Content.AsMember().IsDirect {
		t.Error("the invitation on B is not marked direct")
	}
	ben.join(inv.RoomID)
	ben.waitEvent("Anna's message on B", isMessage(inv.RoomID, annaOnB, "hi Ben, from A"))
	ben.say(inv.RoomID, "hi Anna, from B")
	anna.waitEvent("Ben's answer on A", isMessage(resp.RoomID, benOnA, "hi Anna, from B"))
	// Each island's audit log has its side of the chat.
	if !hasAudit(a.auditEntries(t, "direct_chat"), map[string]any{"user_id": anna.id, "jid": b.contactJID(ben.id).String(), "result": "accepted"}) {
		t.Error("no audit entry on island A for the direct chat Anna opened")
	}
	if !hasAudit(b.auditEntries(t, "direct_chat"), map[string]any{"user_id": ben.id, "jid": a.contactJID(anna.id).String(), "result": "opened"}) {
		t.Error("no audit entry on island B for the direct chat that came from A")
	}
}

// sharedRoom is a room of island A that Anna exposed and Ben of island B
// joined, each seeing the other's puppet.
type sharedRoom struct {
	anna, ben       *mxUser
	muc             jid.JID   // the room's address on A's bridge
	room, portal    id.RoomID // on A, and Ben's portal on B
	benOnA, annaOnB id.UserID
}

func newSharedRoom(t *testing.T, a, b *env, alias, name string) sharedRoom {
	t.Helper()
	var s sharedRoom
	s.anna, s.room, s.muc = a.newRoom(t, "Anna", alias, name, "")
	s.ben = b.newMatrixUser(t, "ben", "Ben")
	s.portal = s.ben.joinRemote(s.muc)
	s.benOnA = a.puppetOn(b.contactJID(s.ben.id).String())
	s.annaOnB = b.puppetOn(a.contactJID(s.anna.id).String())
	s.anna.waitEvent("Ben on A", isMembership(s.room, s.benOnA, event.MembershipJoin))
	s.ben.waitEvent("Anna on B", isMembership(s.portal, s.annaOnB, event.MembershipJoin))
	return s
}

// TestE2EIslandsOutage: a numbered stream both ways through the shared
// room while island A's XMPP server restarts, then island B's: the s2s
// link between them drops each time. Both bridges notice, join again and
// catch up: on each island every message of the other once, in order.
func TestE2EIslandsOutage(t *testing.T) {
	a, b := needIslands(t)
	shared := newSharedRoom(t, a, b, "outage", "Outage")
	anna, room, ben, portal, benOnA, annaOnB := shared.anna, shared.room, shared.ben, shared.portal, shared.benOnA, shared.annaOnB

	const n = 20
	pause := 150 * time.Millisecond
	for i, island := range []*env{a, b} {
		prefix := fmt.Sprintf("restart%d", i+1)
		errs := make(chan error, 2)
		go func() { errs <- anna.sendMatrix(room, prefix+"-anna", n, pause) }()
		go func() { errs <- ben.sendMatrix(portal, prefix+"-ben", n, pause) }()
		time.Sleep(time.Second)
		island.restartXMPP(t)
		if err := island.WaitReady(60 * time.Second); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		deadline := time.Now().Add(90 * time.Second)
		var onB, onA error
		for time.Now().Before(deadline) {
			onB = wantSequence(prefixed(ben.timelineFrom(portal, annaOnB), prefix+"-anna-"), prefix+"-anna", n)
			onA = wantSequence(prefixed(anna.timelineFrom(room, benOnA), prefix+"-ben-"), prefix+"-ben", n)
			if onA == nil && onB == nil {
				break
			}
			time.Sleep(time.Second)
		}
		if onB != nil {
			t.Errorf("%s restarted: A -> B: %v", island.XMPPDomain, onB)
		}
		if onA != nil {
			t.Errorf("%s restarted: B -> A: %v", island.XMPPDomain, onA)
		}
	}
}

// TestE2EIslandsBorder: island A's room admin closes the room to island B
// (deny-domain on the room). Island B's Matrix user who asks to join it is
// refused with the reason in a notice, and nothing of the room's messages
// reaches island B; opened again, the same user gets in.
func TestE2EIslandsBorder(t *testing.T) {
	a, b := needIslands(t)
	anna, room, muc := a.newRoom(t, "Anna", "border", "Border", "")
	anna.command(room, "deny-domain *."+islandBDomain, "*."+islandBDomain)
	anna.say(room, "for island A only")
	ben := b.newMatrixUser(t, "ben", "Ben")
	portal := ben.joinRemote(muc)
	ben.waitEvent("the refusal notice", func(evt *event.Event) bool {
		return evt.RoomID == portal && evt.Sender == ben.bot() && evt.Type == event.EventMessage &&
			strings.Contains(evt.Content.AsMessage().Body, "not allowed in this room")
	})
	annaOnB := b.puppetOn(a.contactJID(anna.id).String())
	if n := ben.count(portal, func(evt *event.Event) bool { return evt.Sender == annaOnB }); n != 0 {
		t.Errorf("%d events of Anna's puppet reached island B through a closed border", n)
	}
	// Island B's audit log has the attempt on another domain's room.
	if !hasAudit(b.auditEntries(t, "join_remote"), map[string]any{"muc": muc.String(), "user_id": ben.id, "result": "refused or removed"}) {
		t.Error("no audit entry on island B for the refused join")
	}

	anna.command(room, "deny-domain -*."+islandBDomain, "no domains of its own refused")
	ben.leave(portal)
	ben.joinRemote(muc)
	anna.waitEvent("Ben on A", isMembership(room, a.puppetOn(b.contactJID(ben.id).String()), event.MembershipJoin))
}

// TestE2EIslandsMessages: every row of the README's Messages table crosses
// from island A to island B and back through A's exposed room: emotes,
// notices, mentions, replies, edits, reactions, deletions, files, typing
// and read receipts.
func TestE2EIslandsMessages(t *testing.T) {
	a, b := needIslands(t)
	shared := newSharedRoom(t, a, b, "tabelle", "Tabelle")
	anna, room, ben, portal, benOnA, annaOnB := shared.anna, shared.room, shared.ben, shared.portal, shared.benOnA, shared.annaOnB

	type side struct {
		name string
		u    *mxUser
		room id.RoomID
		peer id.UserID // the other island's user, as a puppet here
		me   id.UserID // this user, as a puppet on the other island
	}
	sideA := side{"A", anna, room, benOnA, annaOnB}
	sideB := side{"B", ben, portal, annaOnB, benOnA}
	send := func(s side, c *event.MessageEventContent) id.EventID {
		t.Helper()
		resp, err := s.u.c.SendMessageEvent(ctx(t), s.room, event.EventMessage, c)
		if err != nil {
			t.Fatal(err)
		}
		return resp.EventID
	}
	for _, dir := range [][2]side{{sideA, sideB}, {sideB, sideA}} {
		from, to := dir[0], dir[1]
		way := from.name + " -> " + to.name + ": "
		arrived := func(what, body string) *event.Event {
			t.Helper()
			return to.u.waitEvent(way+what, isMessage(to.room, from.me, body))
		}

		// Emote and notice.
		send(from, &event.MessageEventContent{MsgType: event.MsgEmote, Body: "waves from " + from.name})
		if got := arrived("an emote", "waves from "+from.name); got.Content.AsMessage().MsgType != event.MsgEmote {
			t.Errorf("%san emote arrived as %s", way, got.Content.AsMessage().MsgType)
		}
		send(from, &event.MessageEventContent{MsgType: event.MsgNotice, Body: "notice from " + from.name})
		arrived("a notice", "notice from "+from.name)

		// A mention of the other user, by the pill of their puppet.
		name := map[string]string{"A": "Ben", "B": "Anna"}[from.name]
		mention := &event.MessageEventContent{MsgType: event.MsgText, Body: name + ": look",
			Format: event.FormatHTML, FormattedBody: `<a href="https://matrix.to/#/` + from.peer.String() + `">` + name + `</a>: look`,
			Mentions: &event.Mentions{UserIDs: []id.UserID{from.peer}}}
		send(from, mention)
		got := to.u.waitEvent(way+"a mention", func(evt *event.Event) bool {
			return evt.RoomID == to.room && evt.Sender == from.me && evt.Type == event.EventMessage && strings.HasSuffix(evt.Content.AsMessage().Body, "look")
		})
		if m := got.Content.AsMessage().Mentions; m == nil || !slices.Contains(m.UserIDs, to.u.id) {
			t.Errorf("%sthe mention arrived without mentioning %s: %+v", way, to.u.id, got.Content.AsMessage())
		}

		// A message, a reply to it from the other side, an edit, a
		// reaction and a deletion.
		orig := send(from, &event.MessageEventContent{MsgType: event.MsgText, Body: "original from " + from.name})
		there := arrived("the original", "original from "+from.name).ID
		rc := &event.MessageEventContent{MsgType: event.MsgText, Body: "reply from " + from.name}
		rc.GetRelatesTo().SetReplyTo(orig)
		send(from, rc)
		if to := arrived("a reply", "reply from "+from.name).Content.AsMessage().RelatesTo.GetReplyTo(); to != there {
			t.Errorf("%sthe reply refers to %q; want %s", way, to, there)
		}
		edit := &event.MessageEventContent{MsgType: event.MsgText, Body: "* edited from " + from.name}
		edit.SetEdit(orig)
		edit.NewContent = &event.MessageEventContent{MsgType: event.MsgText, Body: "edited from " + from.name}
		send(from, edit)
		to.u.waitEvent(way+"an edit", func(evt *event.Event) bool {
			c := evt.Content.AsMessage()
			return evt.RoomID == to.room && evt.Sender == from.me && c.RelatesTo.GetReplaceID() == there && c.NewContent != nil &&
				c.NewContent.Body == "edited from "+from.name
		})
		if _, err := from.u.c.SendReaction(ctx(t), from.room, orig, "🎉"); err != nil {
			t.Fatal(err)
		}
		to.u.waitEvent(way+"a reaction", func(evt *event.Event) bool {
			r := evt.Content.AsReaction().RelatesTo
			return evt.RoomID == to.room && evt.Type == event.EventReaction && evt.Sender == from.me && r.EventID == there && r.Key == "🎉"
		})
		if _, err := from.u.c.RedactEvent(ctx(t), from.room, orig); err != nil {
			t.Fatal(err)
		}
		to.u.waitEvent(way+"a deletion", isRedactionOf(to.room, from.me, there))

		// A file: fetched from the sender's bridge, uploaded on the other
		// island.
		pic := testPNG(t, color.RGBA{1, 2, byte(len(from.name)), 255})
		up, err := from.u.c.UploadBytes(ctx(t), pic, "image/png")
		if err != nil {
			t.Fatal(err)
		}
		send(from, &event.MessageEventContent{MsgType: event.MsgImage, Body: "pic.png", FileName: "pic.png", URL: up.ContentURI.CUString(),
			Info: &event.FileInfo{MimeType: "image/png", Size: len(pic)}})
		img := to.u.waitEvent(way+"a file", func(evt *event.Event) bool {
			return evt.RoomID == to.room && evt.Sender == from.me && evt.Type == event.EventMessage && evt.Content.AsMessage().URL != ""
		})
		mxc, err := img.Content.AsMessage().URL.Parse()
		if err != nil {
			t.Fatal(err)
		}
		if data, err := to.u.c.DownloadBytes(ctx(t), mxc); err != nil || !bytes.Equal(data, pic) {
			t.Errorf("%sthe file arrived as %d bytes (%v); want the %d sent", way, len(data), err, len(pic))
		}

		// Typing, and a read receipt of the last message.
		if _, err = from.u.c.UserTyping(ctx(t), from.room, true, 20*time.Second); err != nil {
			t.Fatal(err)
		}
		to.u.waitEvent(way+"typing", func(evt *event.Event) bool {
			return evt.RoomID == to.room && evt.Type == event.EphemeralEventTyping && slices.Contains(evt.Content.AsTyping().UserIDs, from.me)
		})
		last := to.u.say(to.room, "read me, "+from.name)
		lastHere := from.u.waitEvent(way+"the message to read", isMessage(from.room, from.peer, "read me, "+from.name)).ID
		if err = from.u.c.MarkRead(ctx(t), from.room, lastHere); err != nil {
			t.Fatal(err)
		}
		to.u.waitEvent(way+"a read receipt", func(evt *event.Event) bool {
			if evt.RoomID != to.room || evt.Type != event.EphemeralEventReceipt {
				return false
			}
			_, ok := (*evt.Content.AsReceipt())[last][event.ReceiptTypeRead][from.me]
			return ok
		})
	}
}

// TestE2EIslandsGatewayOccupants: an XMPP user of island A joins A's
// shared room, where Ben of island B already is. Each island shows her
// once; nobody sees a user come back through the other island (no puppet
// of a puppet on Matrix, no second occupant for anyone in the MUC).
func TestE2EIslandsGatewayOccupants(t *testing.T) {
	a, b := needIslands(t)
	s := newSharedRoom(t, a, b, "gateway", "Gateway")
	alice := a.newXMPPClient(t, "alice", "gateway")
	mark := alice.mark()
	alice.mustJoin(s.muc, "Alice")
	aliceOnA := a.puppetOn("alice@" + a.XMPPDomain)
	s.anna.waitEvent("Alice on A", isMembership(s.room, aliceOnA, event.MembershipJoin))
	aliceOnB := s.ben.puppetNamed(s.portal, "Alice")

	alice.groupchat(s.muc, "from Alice")
	s.anna.waitEvent("Alice's message on A", isMessage(s.room, aliceOnA, "from Alice"))
	s.ben.waitEvent("Alice's message on B", isMessage(s.portal, aliceOnB, "from Alice"))
	s.ben.say(s.portal, "from Ben")
	alice.waitFrom(mark, "Ben's message on XMPP", isGroupchat(occ(s.muc, "Ben"), "from Ben"))
	s.anna.say(s.room, "from Anna")
	s.ben.waitEvent("Anna's message on B", isMessage(s.portal, s.annaOnB, "from Anna"))

	// Four members on each island, and three occupants in the MUC.
	want := map[id.RoomID][]id.UserID{s.room: {s.anna.id, s.anna.bot(), s.benOnA, aliceOnA}, s.portal: {s.ben.id, s.ben.bot(), s.annaOnB, aliceOnB}}
	waitFor(t, "the members to settle", func() bool { return len(s.anna.members(s.room)) == 4 && len(s.ben.members(s.portal)) == 4 })
	for room, u := range map[id.RoomID]*mxUser{s.room: s.anna, s.portal: s.ben} {
		for _, m := range u.members(room) {
			if !slices.Contains(want[room], m) {
				t.Errorf("%s has an extra member %s", room, m)
			}
		}
	}
	nicks := map[string]bool{}
	for _, v := range alice.since(mark) {
		if p, ok := v.(*xmpp.Presence); ok && p.From.Bare().Equal(s.muc) && p.Type != xmpp.TypeUnavailable && p.Type != xmpp.TypeError {
			nicks[p.From.Resourcepart()] = true
		}
	}
	if len(nicks) != 3 || !nicks["Anna"] || !nicks["Ben"] || !nicks["Alice"] {
		t.Errorf("the MUC shows Alice the occupants %v; want Anna, Ben and Alice", nicks)
	}
	for _, c := range []struct {
		u    *mxUser
		room id.RoomID
	}{{s.anna, s.room}, {s.ben, s.portal}} {
		if n := c.u.count(c.room, func(evt *event.Event) bool {
			return evt.Type == event.EventMessage && evt.Content.AsMessage().Body == "from Alice"
		}); n != 1 {
			t.Errorf("Alice's message is %d times in %s", n, c.room)
		}
	}
}
