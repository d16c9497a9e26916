package remotemuc

import (
	"testing"

	"github.com/mxpp/mxpp/xmpp"
)

// TestSentLog: a message counts as delivered once reflected; one that
// went out on a stream that broke is given back, in order, to be sent
// again; one still held or sent on the current stream is not.
func TestSentLog(t *testing.T) {
	var l sentLog
	msgs := map[string]*xmpp.Message{}
	for i, id := range []string{"a", "b", "c", "d", "e"} {
		msgs[id] = &xmpp.Message{ID: id}
		l.note(msgs[id], int64(i+1))
	}
	l.wentOut([]any{msgs["a"], msgs["b"], msgs["c"]}, 1)
	l.wentOut([]any{msgs["d"]}, 2)
	l.confirm("b")
	if s, ok := l.take("c"); !ok || s.order != 3 {
		t.Fatalf("take(c) = %+v, %v", s, ok)
	}
	lost := l.lostWith(2)
	if len(lost) != 1 || lost[0].m.ID != "a" {
		t.Fatalf("lost with stream 1 = %+v; want a (b reflected, c taken, d on the current stream, e held)", lost)
	}
	if len(l.msgs) != 2 || l.msgs[0].m.ID != "d" || l.msgs[1].m.ID != "e" {
		t.Errorf("left %+v; want d and e", l.msgs)
	}
	for range maxUnconfirmed + 5 {
		l.note(&xmpp.Message{ID: "x"}, 0)
	}
	if len(l.msgs) != maxUnconfirmed {
		t.Errorf("the log grew to %d", len(l.msgs))
	}
}

// TestOccupantHoldsInOrder: held messages go out by their Matrix time, so
// that one the room refused and that is held again keeps its place.
func TestOccupantHoldsInOrder(t *testing.T) {
	o := newTestOccupant()
	o.Join("")
	o.SendOrdered(msg("m-11"), 11)
	o.SendOrdered(msg("m-12"), 12)
	o.Send(msg("typing"))
	o.SendOrdered(msg("m-10"), 10) // refused, held again
	out := o.HandlePresence(self("Mary"))
	var got []string
	for _, st := range out.Send {
		got = append(got, st.(*xmpp.Message).ID)
	}
	if want := "m-10 m-11 m-12 typing"; joinIDs(got) != want {
		t.Errorf("sent %q; want %q", got, want)
	}
}

func joinIDs(ids []string) string {
	s := ""
	for i, id := range ids {
		if i > 0 {
			s += " "
		}
		s += id
	}
	return s
}

// TestInOrder: what a broken link lost and what waited for a catch-up go
// out in the order they were written; a message without an order stays
// behind the one before it.
func TestInOrder(t *testing.T) {
	s := func(id string, order int64) sentMsg { return sentMsg{m: &xmpp.Message{ID: id}, order: order} }
	got := inOrder([]sentMsg{s("lost-3", 3), s("lost-5", 5), s("waited-4", 4), s("caption-4", 0), s("waited-6", 6), s("waited-1", 1)})
	var ids []string
	for _, m := range got {
		ids = append(ids, m.m.ID)
	}
	if want := "waited-1 lost-3 waited-4 caption-4 lost-5 waited-6"; joinIDs(ids) != want {
		t.Errorf("inOrder = %s; want %s", joinIDs(ids), want)
	}
}
