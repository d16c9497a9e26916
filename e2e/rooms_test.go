//go:build e2e

package e2e

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/mxpp/mxpp/xmpp"
)

// TestE2EJoinsAndLeaves: joins and leaves on either side show up on the
// other, as occupant presence and as puppet membership.
func TestE2EJoinsAndLeaves(t *testing.T) {
	v := need(t)
	mary, room, muc := v.newRoom(t, "Mary", "comings", "Comings and goings", "")
	alice := v.newXMPPClient(t, "alice", "a1")
	bob := v.newXMPPClient(t, "bob", "b1")
	alice.mustJoin(muc, "Alice")

	// An XMPP user joins: the occupant sees the presence, Matrix the puppet.
	mark := alice.mark()
	res := bob.join(muc, "Bob")
	if res.err != nil {
		t.Fatal(res.err.Error)
	}
	if !hasOccupant(res.occupants, occ(muc, "Alice")) || !hasOccupant(res.occupants, occ(muc, "Mary")) {
		t.Errorf("bob's join list %v lacks Alice or Mary", res.occupants)
	}
	alice.waitFrom(mark, "bob's presence", isPresence(occ(muc, "Bob"), ""))
	mary.waitEvent("bob's puppet joining", isMembership(room, puppetOf("bob@"+v.XMPPDomain), event.MembershipJoin))

	// A Matrix user joins and leaves.
	mark = alice.mark()
	nina := v.newMatrixUser(t, "nina", "Nina")
	nina.join(room)
	alice.waitFrom(mark, "nina's presence", isPresence(occ(muc, "Nina"), ""))
	mark = alice.mark()
	nina.leave(room)
	alice.waitFrom(mark, "nina's unavailable presence", isPresence(occ(muc, "Nina"), xmpp.TypeUnavailable))

	// Two Matrix members with the same display name get distinct nicks
	// made with their localparts; the first one's nick changes with 303.
	mark = alice.mark()
	sam1 := v.newMatrixUser(t, "sam", "Sam")
	sam1.join(room)
	alice.waitFrom(mark, "sam's presence", isPresence(occ(muc, "Sam"), ""))
	sam2 := v.newMatrixUser(t, "sam", "Sam")
	sam2.join(room)
	first, second := "Sam ("+sam1.id.Localpart()+")", "Sam ("+sam2.id.Localpart()+")"
	st0, _ := alice.waitFrom(mark, "the first Sam renamed", isPresence(occ(muc, "Sam"), xmpp.TypeUnavailable))
	if p := st0.(*xmpp.Presence); !hasStatus(p, xmpp.StatusNewNick) || p.MUCUser.Items[0].Nick != first {
		t.Errorf("first Sam's nick change %+v; want 303 to %q", p.MUCUser, first)
	}
	alice.waitFrom(mark, "first Sam", isPresence(occ(muc, first), ""))
	alice.waitFrom(mark, "second Sam", isPresence(occ(muc, second), ""))

	// A Matrix user renames: the nick changes with status 303 (XEP-0045 §7.6).
	mark = alice.mark()
	if err := mary.c.SetDisplayName(ctx(t), "Mary Q"); err != nil {
		t.Fatal(err)
	}
	st, _ := alice.waitFrom(mark, "mary's nick change", isPresence(occ(muc, "Mary"), xmpp.TypeUnavailable))
	if p := st.(*xmpp.Presence); !hasStatus(p, xmpp.StatusNewNick) || p.MUCUser.Items[0].Nick != "Mary Q" {
		t.Errorf("nick change presence %+v lacks 303 or the new nick", p.MUCUser)
	}
	alice.waitFrom(mark, "mary's new nick", isPresence(occ(muc, "Mary Q"), ""))

	// An XMPP user leaves: the self-presence confirms it, the others see
	// it, and the puppet leaves Matrix.
	mark, bobMark := alice.mark(), bob.mark()
	bob.send(&xmpp.Presence{Type: xmpp.TypeUnavailable, To: xmpp.A(occ(muc, "Bob"))})
	st, _ = bob.waitFrom(bobMark, "bob's own leave", isPresence(occ(muc, "Bob"), xmpp.TypeUnavailable))
	if p := st.(*xmpp.Presence); !hasStatus(p, xmpp.StatusSelf) || p.MUCUser.Items[0].Role != xmpp.RoleNone {
		t.Errorf("leave self-presence %+v lacks 110 or role none", p.MUCUser)
	}
	alice.waitFrom(mark, "bob's leave", isPresence(occ(muc, "Bob"), xmpp.TypeUnavailable))
	mary.waitEvent("bob's puppet leaving", isMembership(room, puppetOf("bob@"+v.XMPPDomain), event.MembershipLeave))

	// A client that disconnects without leaving: its server sends the
	// unavailable presence for it.
	mark = bob.mark()
	alice.close()
	mary.waitEvent("alice's puppet leaving", isMembership(room, puppetOf("alice@"+v.XMPPDomain), event.MembershipLeave))
}

func hasOccupant(ps []*xmpp.Presence, from jid.JID) bool {
	for _, p := range ps {
		if p.From.Equal(from) {
			return true
		}
	}
	return false
}

// TestE2EManyUsersManyRooms: several XMPP users in several rooms at once,
// with bursts from both sides that must arrive complete and in order.
func TestE2EManyUsersManyRooms(t *testing.T) {
	v := need(t)
	const burst = 40
	mary := v.newMatrixUser(t, "mary", "Mary")
	type roomT struct {
		id  id.RoomID
		muc jid.JID
	}
	var rooms []roomT
	for i := range 3 {
		r, alias := mary.createRoom(fmt.Sprintf("many%d", i), fmt.Sprintf("Room %d", i), "")
		mary.expose(r)
		rooms = append(rooms, roomT{r, mucJID(t, alias)})
	}
	users := []string{"carol", "dave", "erin"}
	clients := map[string]*xmppClient{}
	for _, u := range users {
		c := v.newXMPPClient(t, u, "m")
		clients[u] = c
		for _, r := range rooms {
			c.mustJoin(r.muc, strings.ToUpper(u[:1])+u[1:])
		}
	}
	for _, u := range users {
		for _, r := range rooms {
			mary.waitEvent(u+" in "+r.id.String(), isMembership(r.id, puppetOf(u+"@"+v.XMPPDomain), event.MembershipJoin))
		}
	}

	// XMPP -> Matrix: every user sends a burst into every room, all at once.
	marks := map[string]int{}
	for u, c := range clients {
		marks[u] = c.mark()
	}
	var wg sync.WaitGroup
	for u, c := range clients {
		for _, r := range rooms {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range burst {
					c.groupchat(r.muc, fmt.Sprintf("%s %d", u, i))
				}
			}()
		}
	}
	// Matrix -> XMPP at the same time.
	for _, r := range rooms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range burst {
				mary.say(r.id, fmt.Sprintf("mary %d", i))
			}
		}()
	}
	wg.Wait()

	for _, r := range rooms {
		for _, u := range users {
			mary.waitEvent("last message of "+u, isMessage(r.id, puppetOf(u+"@"+v.XMPPDomain), fmt.Sprintf("%s %d", u, burst-1)))
			got := mary.messagesFrom(r.id, puppetOf(u+"@"+v.XMPPDomain))
			checkSequence(t, fmt.Sprintf("Matrix view of %s in %s", u, r.muc), got, u, burst)
		}
	}
	for u, c := range clients {
		for _, r := range rooms {
			c.waitFrom(marks[u], "mary's last message", isGroupchat(occ(r.muc, "Mary"), fmt.Sprintf("mary %d", burst-1)))
			got := c.groupchatBodies(marks[u], occ(r.muc, "Mary"))
			checkSequence(t, fmt.Sprintf("%s's view of Mary in %s", u, r.muc), got, "mary", burst)
		}
	}
	// Every XMPP user also got the others' messages, each exactly once.
	for u, c := range clients {
		for _, other := range users {
			nick := strings.ToUpper(other[:1]) + other[1:]
			for _, r := range rooms {
				c.waitFrom(marks[u], "last of "+other, isGroupchat(occ(r.muc, nick), fmt.Sprintf("%s %d", other, burst-1)))
				got := c.groupchatBodies(marks[u], occ(r.muc, nick))
				checkSequence(t, fmt.Sprintf("%s's view of %s in %s", u, other, r.muc), got, other, burst)
			}
		}
	}
}

// checkSequence checks that got is exactly "<prefix> 0" … "<prefix> n-1".
func checkSequence(t *testing.T, what string, got []string, prefix string, n int) {
	t.Helper()
	if len(got) != n {
		t.Errorf("%s: %d messages; want %d: %q", what, len(got), n, got)
		return
	}
	for i, body := range got {
		if want := fmt.Sprintf("%s %d", prefix, i); body != want {
			t.Errorf("%s: message %d is %q; want %q (out of order)", what, i, body, want)
			return
		}
	}
}

// TestE2EResendIsNotDuplicated: a stanza sent twice (a client resending
// after a reconnect) makes one Matrix event, and only its sender gets the
// reflection again.
func TestE2EResendIsNotDuplicated(t *testing.T) {
	v := need(t)
	mary, room, muc := v.newRoom(t, "Mary", "resend", "Resend", "")
	alice := v.newXMPPClient(t, "alice", "r")
	bob := v.newXMPPClient(t, "bob", "r")
	for _, c := range []*xmppClient{alice, bob} {
		c.mustJoin(muc, c.jid.Localpart())
	}
	bobMark := bob.mark()
	msg := &xmpp.Message{ID: "fixed-id", Type: xmpp.TypeGroupchat, To: xmpp.A(muc), Body: "once", OriginID: &xmpp.OriginID{ID: "fixed-origin"}}
	mark := alice.mark()
	alice.send(msg)
	alice.waitFrom(mark, "first reflection", isGroupchat(occ(muc, "alice"), "once"))
	_, pos := alice.waitFrom(mark, "first reflection", isGroupchat(occ(muc, "alice"), "once"))
	alice.send(msg)
	alice.waitFrom(pos+1, "second reflection", isGroupchat(occ(muc, "alice"), "once"))
	// A marker message after both, so everything before it has arrived.
	alice.groupchat(muc, "marker")
	mary.waitEvent("marker", isMessage(room, puppetOf("alice@"+v.XMPPDomain), "marker"))
	bob.waitFrom(bobMark, "marker", isGroupchat(occ(muc, "alice"), "marker"))
	if n := countBodies(mary.messagesFrom(room, puppetOf("alice@"+v.XMPPDomain)), "once"); n != 1 {
		t.Errorf("Matrix got %d copies of a resent stanza; want 1", n)
	}
	if n := countBodies(bob.groupchatBodies(bobMark, occ(muc, "alice")), "once"); n != 1 {
		t.Errorf("another occupant got %d copies; want 1", n)
	}
}

func countBodies(bodies []string, body string) int {
	n := 0
	for _, b := range bodies {
		if b == body {
			n++
		}
	}
	return n
}

// TestE2EDiscoAndPing: service discovery and pings on the component and a
// room, and XEP-0410 self-ping.
func TestE2EDiscoAndPing(t *testing.T) {
	v := need(t)
	_, _, muc := v.newRoom(t, "Mary", "disco", "Disco Room", "All about disco")
	alice := v.newXMPPClient(t, "alice", "d")
	comp := jid.MustParse(v.CompDomain)

	reply := alice.iq(comp, xmpp.TypeGet, &xmpp.DiscoInfo{})
	info := decodeInfo(t, reply)
	if !hasIdentity(info, "conference", "text") || !hasIdentity(info, "gateway", "matrix") || !hasFeature(info, xmpp.NSMUC) {
		t.Errorf("component disco#info = %+v", info)
	}
	if r := alice.iq(comp, xmpp.TypeGet, &pingPayload{}); r.Type != xmpp.TypeResult {
		t.Errorf("ping to the component: %s %v", r.Type, r.Error)
	}
	if r := alice.iq(comp, xmpp.TypeGet, &unknownPayload{}); r.Type != xmpp.TypeError || r.Error.Condition != stanza.ServiceUnavailable {
		t.Errorf("unknown IQ to the component: %s %v; want service-unavailable", r.Type, r.Error)
	}

	info = decodeInfo(t, alice.iq(muc, xmpp.TypeGet, &xmpp.DiscoInfo{}))
	if !hasIdentity(info, "conference", "text") || !hasFeature(info, xmpp.NSMUC) || !hasFeature(info, "muc_public") ||
		!hasFeature(info, "muc_nonanonymous") {
		t.Errorf("room disco#info = %+v", info)
	}
	if info.Identities[0].Name != "Disco Room" {
		t.Errorf("room name in disco#info = %q", info.Identities[0].Name)
	}
	items := alice.iq(comp, xmpp.TypeGet, &xmpp.DiscoItems{})
	var list xmpp.DiscoItems
	if err := items.Payload.Decode(&list); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, it := range list.Items {
		found = found || it.JID.Equal(muc)
	}
	if !found {
		t.Errorf("disco#items of the component %+v lacks %s", list.Items, muc)
	}

	// XEP-0410: self-ping before and after joining.
	if r := alice.iq(occ(muc, "Alice"), xmpp.TypeGet, &pingPayload{}); r.Type != xmpp.TypeError || r.Error.Condition != stanza.NotAcceptable {
		t.Errorf("self-ping before joining: %s %v; want not-acceptable", r.Type, r.Error)
	}
	alice.mustJoin(muc, "Alice")
	if r := alice.iq(occ(muc, "Alice"), xmpp.TypeGet, &pingPayload{}); r.Type != xmpp.TypeResult {
		t.Errorf("self-ping after joining: %s %v; want a result", r.Type, r.Error)
	}
}

type pingPayload struct {
	XMLName xml.Name `xml:"urn:xmpp:ping ping"`
}

type unknownPayload struct {
	XMLName xml.Name `xml:"urn:example:nothing query"`
}

func decodeInfo(t *testing.T, iq *xmpp.IQ) *xmpp.DiscoInfo {
	t.Helper()
	if iq.Type != xmpp.TypeResult {
		t.Fatalf("disco#info: %s %v", iq.Type, iq.Error)
	}
	var info xmpp.DiscoInfo
	if err := iq.Payload.Decode(&info); err != nil {
		t.Fatal(err)
	}
	return &info
}

func hasIdentity(info *xmpp.DiscoInfo, cat, typ string) bool {
	for _, i := range info.Identities {
		if i.Category == cat && i.Type == typ {
			return true
		}
	}
	return false
}

func hasFeature(info *xmpp.DiscoInfo, v string) bool {
	for _, f := range info.Features {
		if f.Var == v {
			return true
		}
	}
	return false
}

// TestE2EBadInput: stanzas the bridge cannot take get errors, and the
// stream stays up; unauthenticated appservice calls get 401.
func TestE2EBadInput(t *testing.T) {
	v := need(t)
	mary, room, muc := v.newRoom(t, "Mary", "bad", "Bad input", "")
	alice := v.newXMPPClient(t, "alice", "x")
	alice.mustJoin(muc, "Alice")
	expectError := func(to jid.JID, typ string, want stanza.Condition) {
		t.Helper()
		mark := alice.mark()
		id := xmpp.RandomID()
		alice.send(&xmpp.Message{ID: id, Type: typ, To: xmpp.A(to), Body: "x"})
		if got := alice.messageError(mark, id); got != want {
			t.Errorf("message to %s: %s; want %s", to, got, want)
		}
	}
	expectError(jid.MustParse("nobody@"+v.CompDomain), xmpp.TypeChat, stanza.ItemNotFound)
	expectError(jid.MustParse("mary-nobody#hs.test@"+v.CompDomain), xmpp.TypeChat, stanza.ItemNotFound)
	expectError(occ(muc, "Mary"), xmpp.TypeGroupchat, stanza.BadRequest)
	expectError(occ(muc, "Nobody"), xmpp.TypeChat, stanza.ItemNotFound) // a private message to no one
	expectError(mucJID(t, id2alias("elsewhere", "other.example")), xmpp.TypeGroupchat, stanza.NotAcceptable)
	long := strings.Repeat("x", 70<<10)
	mark := alice.mark()
	alice.send(&xmpp.Message{ID: "too-long", Type: xmpp.TypeGroupchat, To: xmpp.A(muc), Body: long})
	if got := alice.messageError(mark, "too-long"); got != stanza.NotAcceptable {
		t.Errorf("huge body: %s; want not-acceptable", got)
	}
	// Joining a room on another homeserver.
	if res := alice.join(mucJID(t, id2alias("x", "other.example")), "Alice"); res.err == nil || res.err.Error.Condition != stanza.ItemNotFound {
		t.Errorf("join of a foreign room: %+v; want item-not-found", res.err)
	}

	// The stream is still up.
	alice.groupchat(muc, "still here")
	mary.waitEvent("message after bad input", isMessage(room, puppetOf("alice@"+v.XMPPDomain), "still here"))

	// The appservice API refuses calls without the hs_token.
	url := fmt.Sprintf("http://127.0.0.1:%d/_matrix/app/v1/transactions/evil", v.ASPort)
	for _, auth := range []string{"", "Bearer wrong"} {
		req, _ := http.NewRequest(http.MethodPut, url, strings.NewReader(`{"events":[]}`))
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("transaction with auth %q: %d; want 401", auth, resp.StatusCode)
		}
	}
}
