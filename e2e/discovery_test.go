//go:build e2e

package e2e

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/mxpp/mxpp/xmpp"
)

type itemsWithSet struct {
	XMLName struct{}         `xml:"http://jabber.org/protocol/disco#items query"`
	Items   []xmpp.DiscoItem `xml:"item"`
	Set     *struct {
		First string `xml:"first"`
		Last  string `xml:"last"`
		Count int    `xml:"count"`
	} `xml:"http://jabber.org/protocol/rsm set"`
}

type itemsRequest struct {
	XMLName struct{} `xml:"http://jabber.org/protocol/disco#items query"`
	Set     *rsmSet  `xml:"http://jabber.org/protocol/rsm set"`
}

type rsmSet struct {
	Max   int     `xml:"max"`
	After *string `xml:"after"`
}

// TestE2ERoomDiscovery: disco#items lists the exposed rooms with their
// names, in pages; disco#info describes them.
func TestE2ERoomDiscovery(t *testing.T) {
	v := need(t)
	mary := v.newMatrixUser(t, "mary", "Mary")
	var mucs []jid.JID
	for i := range 3 {
		room, alias := mary.createRoom(fmt.Sprintf("listed%d", i), fmt.Sprintf("Listed room %d", i), "About "+fmt.Sprint(i))
		mary.expose(room)
		mucs = append(mucs, mucJID(t, alias))
	}
	alice := v.newXMPPClient(t, "alice", "disco")
	comp := jid.MustParse(v.CompDomain)

	// Page through all rooms, two at a time, until ours are all seen; the
	// directory is cached briefly, so new rooms may take a moment.
	names := map[string]string{}
	deadline := time.Now().Add(20 * time.Second)
	for !allListed(names, mucs) && time.Now().Before(deadline) {
		names = map[string]string{}
		var after *string
		for page := 0; page < 100; page++ {
			r := alice.iq(comp, xmpp.TypeGet, &itemsRequest{Set: &rsmSet{Max: 2, After: after}})
			var res itemsWithSet
			if err := r.Payload.Decode(&res); err != nil || res.Set == nil {
				t.Fatalf("disco#items page: %v, set %v", err, res.Set)
			}
			if len(res.Items) > 2 {
				t.Fatalf("page of %d items; asked for 2", len(res.Items))
			}
			for _, it := range res.Items {
				names[it.JID.String()] = it.Name
			}
			if len(res.Items) < 2 {
				break
			}
			last := res.Set.Last
			after = &last
		}
		if !allListed(names, mucs) {
			time.Sleep(time.Second)
		}
	}
	for i, m := range mucs {
		if names[m.String()] != fmt.Sprintf("Listed room %d", i) {
			t.Errorf("disco#items: %s named %q", m, names[m.String()])
		}
	}

	// disco#info of a listed room, answered from the directory.
	info := decodeInfo(t, alice.iq(mucs[0], xmpp.TypeGet, &xmpp.DiscoInfo{}))
	if info.Identities[0].Name != "Listed room 0" || !hasFeature(info, "muc_public") || !hasFeature(info, "muc_open") {
		t.Errorf("disco#info of a listed room: %+v", info)
	}
	if !slices.ContainsFunc(info.Forms[0].Fields, func(f xmpp.FormField) bool {
		return f.Var == "muc#roominfo_description" && len(f.Values) == 1 && f.Values[0] == "About 0"
	}) {
		t.Errorf("roominfo form %+v lacks the topic", info.Forms)
	}
}

func allListed(names map[string]string, mucs []jid.JID) bool {
	for _, m := range mucs {
		if _, ok := names[m.String()]; !ok {
			return false
		}
	}
	return true
}

func mustRoom(t *testing.T, u *mxUser, muc jid.JID) id.RoomID {
	t.Helper()
	local, server, err := (xmpp.Scheme{Domain: jid.MustParse(e.CompDomain)}).ParseRoomJID(muc)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := u.c.ResolveAlias(ctx(t), id2alias(local, server))
	if err != nil {
		t.Fatal(err)
	}
	return resp.RoomID
}

// TestE2EHistoryOnJoin: a joining XMPP user gets recent messages with delay
// stamps when the room's history is shared, and none when it is visible only
// to members from their join on.
func TestE2EHistoryOnJoin(t *testing.T) {
	v := need(t)
	mary := v.newMatrixUser(t, "mary", "Mary")
	shared, sharedAlias := mary.createRoom("shared", "Shared", "")
	joined, joinedAlias := mary.createRoom("joinedonly", "Joined only", "")
	mary.expose(shared)
	mary.expose(joined)
	if _, err := mary.c.SendStateEvent(ctx(t), joined, event.StateHistoryVisibility, "",
		&event.HistoryVisibilityEventContent{HistoryVisibility: event.HistoryVisibilityJoined}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		mary.say(shared, fmt.Sprintf("earlier %d", i))
		mary.say(joined, fmt.Sprintf("secret %d", i))
	}
	alice := v.newXMPPClient(t, "alice", "hist")
	for _, tc := range []struct {
		alias string
		want  []string
	}{
		{string(sharedAlias), []string{"earlier 0", "earlier 1", "earlier 2"}},
		{string(joinedAlias), nil},
	} {
		muc := mucJID(t, id.RoomAlias(tc.alias))
		mark := alice.mark()
		res := alice.join(muc, "Alice")
		if res.err != nil {
			t.Fatal(res.err.Error)
		}
		var got []string
		for _, st := range alice.since(mark) {
			if m, ok := st.(*xmpp.Message); ok && m.Body != "" && m.From.Bare().Equal(muc) {
				if m.Delay == nil || m.Delay.Stamp.IsZero() || m.StanzaID == nil {
					t.Errorf("history message %q without delay or stanza-id", m.Body)
				}
				got = append(got, m.Body)
			}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("history in %s = %q; want %q", tc.alias, got, tc.want)
		}
	}
	// The client's own limit applies.
	muc := mucJID(t, sharedAlias)
	bob := v.newXMPPClient(t, "bob", "hist")
	mark := bob.mark()
	one := 1
	to, _ := muc.WithResource("Bob")
	bob.send(&xmpp.Presence{To: xmpp.A(to), MUC: &xmpp.MUCJoin{History: &xmpp.MUCHistory{MaxStanzas: &one}}})
	bob.waitFrom(mark, "subject", func(v any) bool { m, ok := v.(*xmpp.Message); return ok && m.Subject != nil })
	var got []string
	for _, st := range bob.since(mark) {
		if m, ok := st.(*xmpp.Message); ok && m.Body != "" {
			got = append(got, m.Body)
		}
	}
	if !slices.Equal(got, []string{"earlier 2"}) {
		t.Errorf("history with maxstanzas=1 = %q", got)
	}
}

// TestE2EUserSearch: with bridge.user_search off (the default) the
// component offers no XEP-0055 search and refuses one; turned on, an XMPP
// client finds a Matrix user by name and gets the JID to chat with.
func TestE2EUserSearch(t *testing.T) {
	v := need(t)
	// A Matrix user the bot shares a room with: the directory shows them.
	finn, _, _ := v.newRoom(t, "Finn Searchable", "findme", "Find me", "")
	alice := v.newXMPPClient(t, "alice", "search")
	component := jid.MustParse(v.CompDomain)
	hasSearch := func() bool {
		var info xmpp.DiscoInfo
		if r := alice.iq(component, xmpp.TypeGet, &xmpp.DiscoInfo{}); r.Payload.Decode(&info) != nil {
			t.Fatal("no disco#info of the component")
		}
		return slices.ContainsFunc(info.Features, func(f xmpp.DiscoFeature) bool { return f.Var == xmpp.NSSearch })
	}
	search := func(term string) *xmpp.IQ {
		return alice.iq(component, xmpp.TypeSet, &xmpp.SearchQuery{Form: &xmpp.SearchForm{Type: "submit", Fields: []xmpp.FormField{
			{Var: "FORM_TYPE", Type: "hidden", Values: []string{xmpp.NSSearch}}, {Var: "search", Values: []string{term}}}}})
	}
	if hasSearch() {
		t.Error("user search advertised while off")
	}
	if r := search("Searchable"); r.Error == nil || r.Error.Condition != stanza.ServiceUnavailable {
		t.Errorf("a search while off: %s %+v; want service-unavailable", r.Type, r.Error)
	}

	v.restartBridgeEditing(t, `(?m)^  exposure: (.*)$`, "  exposure: $1\n  user_search: local")
	t.Cleanup(func() { v.restartBridgeEditing(t, `(?m)^  user_search: local\n`, "") })
	if !hasSearch() {
		t.Error("user search not advertised while on")
	}
	r := search("Searchable")
	var result xmpp.SearchQuery
	if r.Type != xmpp.TypeResult || r.Payload.Decode(&result) != nil || result.Form == nil {
		t.Fatalf("a search: %s %+v", r.Type, r.Error)
	}
	want := v.contactJID(finn.id).String()
	found := false
	for _, item := range result.Form.Items {
		for _, f := range item.Fields {
			found = found || f.Var == "jid" && slices.Contains(f.Values, want)
		}
	}
	if !found {
		t.Errorf("the search for Finn found %+v; want %s", result.Form.Items, want)
	}
}
