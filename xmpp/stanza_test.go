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

// FuzzDecodeStanza: any bytes decode into a stanza or fail with an error,
// never a panic; what decodes encodes again and decodes to the same
// addresses and body.
func FuzzDecodeStanza(f *testing.F) {
	for _, seed := range []string{
		`<message id="a1" type="groupchat" from="alice@xmpp.test/phone" to="#r#hs.test@matrix.xmpp.test"><body>hi *there*</body><origin-id xmlns="urn:xmpp:sid:0" id="o"/><reply xmlns="urn:xmpp:reply:0" to="x@y/z" id="s"/><fallback xmlns="urn:xmpp:fallback:0" for="urn:xmpp:reply:0"><body start="0" end="3"/></fallback></message>`,
		`<presence from="alice@xmpp.test/phone" to="#r#hs.test@matrix.xmpp.test/A"><x xmlns="http://jabber.org/protocol/muc"><history maxstanzas="5" since="2026-01-02T03:04:05Z"/></x><x xmlns="vcard-temp:x:update"><photo>ab</photo></x></presence>`,
		`<iq type="set" id="i" from="a@b/c" to="matrix.xmpp.test"><command xmlns="http://jabber.org/protocol/commands" node="kick"><x xmlns="jabber:x:data" type="submit"><field var="jid"><value>x@y</value></field></x></command></iq>`,
		`<message from="a@b/c" to="d@e"><reactions xmlns="urn:xmpp:reactions:0" id="m"><reaction>👍</reaction></reactions><html xmlns="http://jabber.org/protocol/xhtml-im"><body xmlns="http://www.w3.org/1999/xhtml"><p>x</p></body></html></message>`,
		`<message from="a@b/c" to="d@e"><delay xmlns="urn:xmpp:delay" stamp="not a time"/></message>`,
		`<message from="@@" to="\u0000"/>`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		for _, v := range []any{&Message{}, &Presence{}, &IQ{}} {
			if xml.Unmarshal([]byte(in), v) != nil {
				continue
			}
			out, err := xml.Marshal(v)
			if err != nil {
				continue // e.g. a payload kept as tokens that cannot be written back
			}
			if m, ok := v.(*Message); ok {
				var again Message
				if err := xml.Unmarshal(out, &again); err != nil {
					t.Fatalf("re-decoding %q: %v", out, err)
				}
				if again.From.String() != m.From.String() || again.To.String() != m.To.String() || again.Body != m.Body {
					t.Fatalf("round trip changed the message: %q → %q", in, out)
				}
			}
		}
	})
}

// TestErrorReply: the error answer goes back from where the stanza went,
// with its id and kind; errors, IQ results and leaves get none; a join's
// answer carries an empty MUC element, never the join's password.
func TestErrorReply(t *testing.T) {
	from, to := A(jid.MustParse("alice@xmpp.test/r")), A(jid.MustParse("#r#hs.test@matrix.xmpp.test/Alice"))
	serr := StanzaError(stanza.Forbidden, "no")
	pw := "secret"
	for _, tc := range []struct {
		name string
		in   any
		want bool
	}{
		{"message", &Message{ID: "m", Type: TypeGroupchat, From: from, To: to}, true},
		{"message error", &Message{ID: "m", Type: TypeError, From: from, To: to}, false},
		{"join", &Presence{ID: "p", From: from, To: to, MUC: &MUCJoin{Password: pw}}, true},
		{"leave", &Presence{ID: "p", Type: TypeUnavailable, From: from, To: to}, false},
		{"presence error", &Presence{ID: "p", Type: TypeError, From: from, To: to}, false},
		{"iq get", &IQ{ID: "i", Type: TypeGet, From: from, To: to}, true},
		{"iq result", &IQ{ID: "i", Type: TypeResult, From: from, To: to}, false},
		{"iq error", &IQ{ID: "i", Type: TypeError, From: from, To: to}, false},
	} {
		reply := ErrorReply(tc.in, serr)
		if (reply != nil) != tc.want {
			t.Errorf("%s: reply %+v; want one: %v", tc.name, reply, tc.want)
			continue
		}
		var id, typ string
		var rfrom, rto Addr
		var e *stanza.Error
		switch r := reply.(type) {
		case nil:
			continue
		case *Message:
			id, typ, rfrom, rto, e = r.ID, r.Type, r.From, r.To, r.Error
		case *Presence:
			id, typ, rfrom, rto, e = r.ID, r.Type, r.From, r.To, r.Error
			if r.MUC == nil || r.MUC.Password != "" {
				t.Errorf("%s: MUC element %+v; want an empty one", tc.name, r.MUC)
			}
		case *IQ:
			id, typ, rfrom, rto, e = r.ID, r.Type, r.From, r.To, r.Error
		}
		if id == "" || typ != TypeError || !rfrom.Equal(to.JID) || !rto.Equal(from.JID) || e != serr {
			t.Errorf("%s: reply %+v", tc.name, reply)
		}
	}
}

// TestReceipts: XEP-0184 requests are read and written with mellium's type,
// receipts with ours; a message without either carries neither.
func TestReceipts(t *testing.T) {
	var m Message
	if err := xml.Unmarshal([]byte(`<message id='m1'><body>hi</body><request xmlns='urn:xmpp:receipts'/></message>`), &m); err != nil || !bool(m.ReceiptRequest) {
		t.Fatalf("a request: %v, %v", m.ReceiptRequest, err)
	}
	for _, tc := range []struct {
		m    Message
		want string
	}{
		{Message{ID: "a", ReceiptRequest: true}, `<request xmlns="urn:xmpp:receipts"></request>`},
		{Message{ID: "b", Received: &Receipt{ID: "m1"}}, `<received xmlns="urn:xmpp:receipts" id="m1"></received>`},
		{Message{ID: "c", Body: "x"}, ``},
	} {
		raw, err := xml.Marshal(&tc.m)
		if err != nil {
			t.Fatal(err)
		}
		if has := strings.Contains(string(raw), "urn:xmpp:receipts"); tc.want == "" && has || tc.want != "" && !strings.Contains(string(raw), tc.want) {
			t.Errorf("%s: %s; want %q", tc.m.ID, raw, tc.want)
		}
		var back Message
		if err = xml.Unmarshal(raw, &back); err != nil || back.ReceiptRequest != tc.m.ReceiptRequest || (back.Received == nil) != (tc.m.Received == nil) {
			t.Errorf("%s: read back %+v, %v", tc.m.ID, back, err)
		}
	}
}
