//go:build e2e

package e2e

import (
	"fmt"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/mxpp/mxpp/xmpp"
)

// mamPage sends an archive query and collects the forwarded messages and
// the fin.
func (c *xmppClient) mamPage(room jid.JID, q *xmpp.MAMQuery) ([]*xmpp.MAMResult, *xmpp.MAMFin, *xmpp.IQ) {
	c.t.Helper()
	mark := c.mark()
	iq := c.iq(room, xmpp.TypeSet, q)
	if iq.Type != xmpp.TypeResult {
		return nil, nil, iq
	}
	var fin xmpp.MAMFin
	if err := iq.Payload.Decode(&fin); err != nil {
		c.t.Fatalf("decoding the fin: %v", err)
	}
	var out []*xmpp.MAMResult
	for _, st := range c.since(mark) {
		if m, ok := st.(*xmpp.Message); ok && m.MAMResult != nil && m.MAMResult.QueryID == q.QueryID {
			out = append(out, m.MAMResult)
		}
	}
	return out, &fin, iq
}

// TestE2EArchive: occupants page through a room's past messages with
// XEP-0313, read live from the homeserver; others are refused.
func TestE2EArchive(t *testing.T) {
	v := need(t)
	mary, room, muc := v.newRoom(t, "Mary", "archive", "Archive", "")
	var sent []string
	for i := range 5 {
		sent = append(sent, mary.say(room, fmt.Sprintf("old %d", i)).String())
	}
	alice := v.newXMPPClient(t, "alice", "mam")
	// Not an occupant yet: refused.
	three, empty := 3, ""
	if _, _, iq := alice.mamPage(muc, &xmpp.MAMQuery{QueryID: "q0", Set: &xmpp.RSMSet{Max: &three, Before: &empty}}); iq.Type != xmpp.TypeError {
		t.Errorf("archive query of a non-occupant: %s; want an error", iq.Type)
	}
	alice.mustJoin(muc, "Alice")
	info := alice.iq(muc, xmpp.TypeGet, &xmpp.DiscoInfo{})
	var di xmpp.DiscoInfo
	if err := info.Payload.Decode(&di); err != nil || !hasFeature(&di, xmpp.NSMAM) {
		t.Errorf("the room does not advertise %s: %v", xmpp.NSMAM, err)
	}

	// The last page, then the one before it.
	res, fin, iq := alice.mamPage(muc, &xmpp.MAMQuery{QueryID: "q1", Set: &xmpp.RSMSet{Max: &three, Before: &empty}})
	if iq.Type != xmpp.TypeResult || len(res) != 3 || fin.Complete {
		t.Fatalf("last page: %s, %d results, complete %v; want 3, not complete", iq.Type, len(res), fin.Complete)
	}
	for i, r := range res {
		m := r.Forwarded.Message
		want := fmt.Sprintf("old %d", i+2)
		if r.ID != sent[i+2] || m == nil || m.Body != want || m.From.Resourcepart() != "Mary" || r.Forwarded.Delay == nil {
			t.Errorf("result %d: id %s, %+v; want %s from Mary with a delay", i, r.ID, m, want)
		}
	}
	if fin.Set.First != sent[2] || fin.Set.Last != sent[4] {
		t.Errorf("fin set %+v; want %s..%s", fin.Set, sent[2], sent[4])
	}
	before := fin.Set.First
	res, fin, _ = alice.mamPage(muc, &xmpp.MAMQuery{QueryID: "q2", Set: &xmpp.RSMSet{Max: &three, Before: &before}})
	if len(res) < 2 || res[len(res)-1].ID != sent[1] || res[len(res)-2].ID != sent[0] || !fin.Complete {
		var bodies []string
		for _, r := range res {
			bodies = append(bodies, r.Forwarded.Message.From.Resourcepart()+": "+r.Forwarded.Message.Body)
		}
		t.Errorf("page before: %q, complete %v; want old 0 and old 1, complete", bodies, fin.Complete)
	}
	// Forward from a message, as a client catching up does.
	after := sent[3]
	res, fin, _ = alice.mamPage(muc, &xmpp.MAMQuery{QueryID: "q3", Set: &xmpp.RSMSet{After: &after}})
	if len(res) != 1 || res[0].ID != sent[4] || !fin.Complete {
		t.Errorf("after %s: %d results, complete %v; want old 4 only, complete", after, len(res), fin.Complete)
	}
	// An id the archive does not have.
	nope := "$nope"
	if _, _, iq := alice.mamPage(muc, &xmpp.MAMQuery{QueryID: "q4", Set: &xmpp.RSMSet{After: &nope}}); iq.Type != xmpp.TypeError ||
		iq.Error == nil || iq.Error.Condition != "item-not-found" {
		t.Errorf("paging after an unknown id: %+v; want item-not-found", iq.Error)
	}
}
