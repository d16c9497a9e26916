package xmpp

import (
	"encoding/xml"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
)

func TestMarshalStanzas(t *testing.T) {
	room := jid.MustParse("#lobby#hs.test@matrix.xmpp.test/Bob")
	alice := jid.MustParse("alice@xmpp.test/phone")
	subject := ""
	for i, tc := range []struct {
		v    any
		want string
	}{
		0: {&Message{ID: "m1", Type: TypeGroupchat, From: A(room), To: A(alice), Body: "hi <b>&",
			StanzaID: &StanzaID{ID: "$ev", By: "#lobby#hs.test@matrix.xmpp.test"}, OriginID: &OriginID{ID: "o1"}},
			`<message id="m1" type="groupchat" from="#lobby#hs.test@matrix.xmpp.test/Bob" to="alice@xmpp.test/phone"><body>hi &lt;b&gt;&amp;</body>` +
				`<stanza-id xmlns="urn:xmpp:sid:0" id="$ev" by="#lobby#hs.test@matrix.xmpp.test"></stanza-id><origin-id xmlns="urn:xmpp:sid:0" id="o1"></origin-id></message>`},
		1: {&Message{Type: TypeGroupchat, From: A(room.Bare()), To: A(alice), Subject: &subject},
			`<message type="groupchat" from="#lobby#hs.test@matrix.xmpp.test" to="alice@xmpp.test/phone"><subject></subject></message>`},
		2: {&Presence{From: A(room), To: A(alice), MUCUser: &MUCUser{
			Items:  []MUCItem{{Affiliation: AffNone, Role: RoleNone, JID: A(alice)}},
			Status: Statuses(StatusSelf)}},
			`<presence from="#lobby#hs.test@matrix.xmpp.test/Bob" to="alice@xmpp.test/phone"><x xmlns="http://jabber.org/protocol/muc#user">` +
				`<item affiliation="none" role="none" jid="alice@xmpp.test/phone"></item><status code="110"></status></x></presence>`},
		3: {&Presence{Type: TypeError, From: A(room), To: A(alice), Error: StanzaError(stanza.Conflict, "")},
			`<presence type="error" from="#lobby#hs.test@matrix.xmpp.test/Bob" to="alice@xmpp.test/phone"><error type="modify"><conflict xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"></conflict></error></presence>`},
		4: {&IQ{ID: "q", Type: TypeResult, From: A(room.Bare()), To: A(alice)},
			`<iq id="q" type="result" from="#lobby#hs.test@matrix.xmpp.test" to="alice@xmpp.test/phone"></iq>`},
	} {
		out, err := xml.Marshal(tc.v)
		if err != nil {
			t.Errorf("%d: %v", i, err)
			continue
		}
		if string(out) != tc.want {
			t.Errorf("%d:\n got %s\nwant %s", i, out, tc.want)
		}
	}
}

func TestDecodeStanzas(t *testing.T) {
	var m Message
	in := `<message xmlns="jabber:component:accept" id="a1" type="groupchat" from="alice@xmpp.test/phone" to="#büro#hs.test@matrix.xmpp.test">` +
		`<body>hello</body><origin-id xmlns="urn:xmpp:sid:0" id="o-1"/><unknown xmlns="urn:x"><body>not this</body></unknown></message>`
	if err := xml.Unmarshal([]byte(in), &m); err != nil {
		t.Fatal(err)
	}
	if m.Body != "hello" || m.OriginID == nil || m.OriginID.ID != "o-1" || m.To.String() != "#büro#hs.test@matrix.xmpp.test" || m.From.Resourcepart() != "phone" {
		t.Errorf("decoded %+v", m)
	}

	var p Presence
	in = `<presence from="alice@xmpp.test/phone" to="#lobby#hs.test@matrix.xmpp.test/Alice"><x xmlns="http://jabber.org/protocol/muc"><history maxstanzas="5"/></x></presence>`
	if err := xml.Unmarshal([]byte(in), &p); err != nil {
		t.Fatal(err)
	}
	if p.MUC == nil || p.MUC.History == nil || *p.MUC.History.MaxStanzas != 5 || p.To.Resourcepart() != "Alice" {
		t.Errorf("decoded %+v", p)
	}

	var iq IQ
	in = `<iq type="get" id="d1" from="alice@xmpp.test/phone" to="matrix.xmpp.test"><query xmlns="http://jabber.org/protocol/disco#info" node="n"><x/></query></iq>`
	if err := xml.Unmarshal([]byte(in), &iq); err != nil {
		t.Fatal(err)
	}
	if iq.Payload.XMLName != (xml.Name{Space: NSDiscoInfo, Local: "query"}) {
		t.Fatalf("payload name %v", iq.Payload.XMLName)
	}
	var q struct {
		XMLName xml.Name `xml:"http://jabber.org/protocol/disco#info query"`
		Node    string   `xml:"node,attr"`
	}
	if err := iq.Payload.Decode(&q); err != nil || q.Node != "n" {
		t.Errorf("Payload.Decode = %+v, %v", q, err)
	}

	in = `<message from="not a jid@@/" to="x"/>`
	err := xml.Unmarshal([]byte(in), &m)
	if err == nil || !strings.Contains(err.Error(), "invalid JID") {
		t.Errorf("a message with an invalid from decoded with error %v", err)
	}
}

func TestStripFallback(t *testing.T) {
	n := func(i int) *int { return &i }
	fb := []Fallback{{For: NSReply, Bodies: []FallbackBody{{Start: n(0), End: n(8)}}}}
	for _, tc := range []struct {
		body string
		fbs  []Fallback
		want string
	}{
		{"> Ä: hi\nanswer", fb, "answer"},
		{"> x\nanswer", []Fallback{{For: "urn:other", Bodies: fb[0].Bodies}}, "> x\nanswer"},
		{"short", fb, "short"}, // out of range: kept
		{"whole", []Fallback{{For: NSReply, Bodies: []FallbackBody{{}}}}, ""},
		{"no body element: all of it", []Fallback{{For: NSReply}}, ""},
	} {
		if got := StripFallback(tc.body, tc.fbs, NSReply); got != tc.want {
			t.Errorf("StripFallback(%q) = %q; want %q", tc.body, got, tc.want)
		}
	}
}
