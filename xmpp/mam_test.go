package xmpp

import (
	"encoding/xml"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"
)

func TestMAMQueryDecode(t *testing.T) {
	raw := `<query xmlns="urn:xmpp:mam:2" queryid="q1">
	<x xmlns="jabber:x:data" type="submit">
		<field var="FORM_TYPE" type="hidden"><value>urn:xmpp:mam:2</value></field>
		<field var="start"><value>2026-01-02T03:04:05Z</value></field>
	</x>
	<set xmlns="http://jabber.org/protocol/rsm"><max>10</max><before/></set>
</query>`
	var q MAMQuery
	if err := xml.Unmarshal([]byte(raw), &q); err != nil {
		t.Fatal(err)
	}
	start, ok := q.Time("start")
	if q.QueryID != "q1" || !ok || !start.Equal(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Errorf("query %q, start %v (%v)", q.QueryID, start, ok)
	}
	if q.Set == nil || q.Set.Max == nil || *q.Set.Max != 10 || q.Set.Before == nil || *q.Set.Before != "" || q.Set.After != nil {
		t.Errorf("RSM = %+v", q.Set)
	}
	if end, ok := q.Time("end"); !ok || !end.IsZero() {
		t.Errorf("absent end = %v, %v", end, ok)
	}
	q.Form.Fields = append(q.Form.Fields, CommandFormField{Var: "end", Values: []string{"yesterday"}})
	if _, ok := q.Time("end"); ok {
		t.Error("a malformed time was accepted")
	}
}

// TestMAMResultNamespaces: the forwarded message is in jabber:client (not
// in the forward namespace it would inherit), and reads back.
func TestMAMResultNamespaces(t *testing.T) {
	stamp := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	m := &Message{To: A(jid.MustParse("alice@xmpp.test/x")), From: A(jid.MustParse("#r#hs.test@matrix.xmpp.test")),
		MAMResult: &MAMResult{QueryID: "q1", ID: "$e1", Forwarded: Forwarded{
			Delay:   &Delay{Stamp: stamp},
			Message: &Message{Type: TypeGroupchat, From: A(jid.MustParse("#r#hs.test@matrix.xmpp.test/Mary")), Body: "hi"},
		}}}
	out, err := xml.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), `<message xmlns="jabber:client" type="groupchat"`) {
		t.Errorf("forwarded message not in jabber:client: %s", out)
	}
	var back Message
	if err = xml.Unmarshal(out, &back); err != nil {
		t.Fatal(err)
	}
	r := back.MAMResult
	if r == nil || r.ID != "$e1" || r.Forwarded.Message == nil || r.Forwarded.Message.Body != "hi" ||
		r.Forwarded.Delay == nil || !r.Forwarded.Delay.Stamp.Equal(stamp) {
		t.Errorf("read back %+v from %s", r, out)
	}
}
