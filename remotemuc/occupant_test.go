package remotemuc

import (
	"strings"
	"testing"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/mxpp/mxpp/xmpp"
)

var (
	room = jid.MustParse("team@conference.xmpp.test")
	me   = jid.MustParse("mary#hs.test@matrix.xmpp.test/bridge")
)

func newTestOccupant() *Occupant {
	return NewOccupant(room, me, []string{"Mary", "Mary (Matrix)", "mary"})
}

// joinPresence returns the join presence of an outcome and its nick.
func joinPresence(t *testing.T, out Outcome) (*xmpp.Presence, string) {
	t.Helper()
	if len(out.Send) != 1 {
		t.Fatalf("outcome sends %d stanzas; want one join presence", len(out.Send))
	}
	p, ok := out.Send[0].(*xmpp.Presence)
	if !ok || p.Type != "" || p.MUC == nil || !p.To.Bare().Equal(room) || !p.From.Equal(me) {
		t.Fatalf("outcome sends %+v; want a join presence from %s to %s", out.Send[0], me, room)
	}
	return p, p.To.Resourcepart()
}

func self(nick string, codes ...int) *xmpp.Presence {
	from, _ := room.WithResource(nick)
	return &xmpp.Presence{From: xmpp.A(from), To: xmpp.A(me),
		MUCUser: &xmpp.MUCUser{Items: []xmpp.MUCItem{{Affiliation: xmpp.AffNone, Role: xmpp.RoleParticipant}},
			Status: xmpp.Statuses(append([]int{xmpp.StatusSelf}, codes...)...)}}
}

func refusal(nick string, cond stanza.Condition) *xmpp.Presence {
	from, _ := room.WithResource(nick)
	return &xmpp.Presence{Type: xmpp.TypeError, From: xmpp.A(from), To: xmpp.A(me), Error: &stanza.Error{Type: stanza.Cancel, Condition: cond}}
}

func msg(body string) *xmpp.Message { return &xmpp.Message{ID: body, Body: body} }

func TestOccupantJoinsAndSendsWhatWaited(t *testing.T) {
	o := newTestOccupant()
	p, nick := joinPresence(t, o.Join("secret"))
	if nick != "Mary" || p.MUC.Password != "secret" || p.MUC.History == nil || p.MUC.History.MaxStanzas == nil || *p.MUC.History.MaxStanzas != 0 {
		t.Errorf("join presence = %+v, %+v; want nick Mary, the password and no history", p, p.MUC)
	}
	for _, b := range []string{"one", "two"} {
		if out := o.Send(msg(b)); len(out.Send) != 0 || out.Notice != "" {
			t.Fatalf("Send while joining = %+v; want it held", out)
		}
	}
	// Presences of others, or from another room, change nothing.
	other := self("Bob")
	other.MUCUser.Status = nil
	if out := o.HandlePresence(other); len(out.Send) != 0 || o.State() != Joining {
		t.Fatalf("another occupant's presence: %+v, state %s", out, o.State())
	}
	out := o.HandlePresence(self("Mary"))
	if o.State() != Joined || o.Nick() != "Mary" || out.Notice != "" || len(out.Send) != 2 {
		t.Fatalf("after the self-presence: state %s, nick %q, outcome %+v; want joined, the two messages", o.State(), o.Nick(), out)
	}
	for i, want := range []string{"one", "two"} {
		m := out.Send[i].(*xmpp.Message)
		if m.Body != want || m.Type != xmpp.TypeGroupchat || !m.To.Equal(room) || !m.From.Equal(me) {
			t.Errorf("message %d = %+v; want %q as groupchat to the room", i, m, want)
		}
	}
	if out := o.Send(msg("three")); len(out.Send) != 1 {
		t.Errorf("Send when joined = %+v; want it sent", out)
	}
	leave := o.Leave()
	if p, ok := leave.Send[0].(*xmpp.Presence); !ok || p.Type != xmpp.TypeUnavailable || p.To.Resourcepart() != "Mary" || o.State() != Out {
		t.Errorf("Leave = %+v, state %s", leave, o.State())
	}
}

func TestOccupantNickRefused(t *testing.T) {
	o := newTestOccupant()
	o.Join("")
	_, nick := joinPresence(t, o.HandlePresence(refusal("Mary", stanza.Conflict)))
	if nick != "Mary (Matrix)" {
		t.Errorf("after a conflict the next nick is %q; want the suffixed one", nick)
	}
	_, nick = joinPresence(t, o.HandlePresence(refusal("Mary (Matrix)", stanza.Conflict)))
	if nick != "mary" {
		t.Errorf("after two conflicts the nick is %q; want the localpart", nick)
	}
	out := o.HandlePresence(refusal("mary", stanza.Conflict))
	if o.State() != Out || len(out.Send) != 0 || !strings.Contains(out.Notice, "taken") {
		t.Errorf("every nick taken: state %s, outcome %+v; want out, with a notice", o.State(), out)
	}

	// A nick the service will not take at all goes straight to the localpart.
	o = newTestOccupant()
	o.Join("")
	if _, nick = joinPresence(t, o.HandlePresence(refusal("Mary", stanza.JIDMalformed))); nick != "mary" {
		t.Errorf("after jid-malformed the nick is %q; want the localpart", nick)
	}
	if out = o.HandlePresence(refusal("mary", stanza.JIDMalformed)); o.State() != Out || !strings.Contains(out.Notice, "refuses the nicks") {
		t.Errorf("localpart refused too: state %s, %+v", o.State(), out)
	}

	// The service renames us (210): that nick is ours, and the user hears of it.
	o = newTestOccupant()
	o.Join("")
	out = o.HandlePresence(self("Mary_2", xmpp.StatusNickAssigned))
	if o.Nick() != "Mary_2" || !strings.Contains(out.Notice, "Mary_2") {
		t.Errorf("service-assigned nick: %q, %+v", o.Nick(), out)
	}
}

func TestOccupantJoinRefused(t *testing.T) {
	for cond, want := range map[stanza.Condition]string{
		stanza.NotAuthorized:        "password",
		stanza.RegistrationRequired: "members-only",
		stanza.Forbidden:            "banned",
		stanza.ServiceUnavailable:   "full",
		stanza.ResourceConstraint:   "how many rooms",
		stanza.ItemNotFound:         "does not exist",
		stanza.PolicyViolation:      "policy-violation",
	} {
		o := newTestOccupant()
		o.Join("")
		o.Send(msg("held"))
		out := o.HandlePresence(refusal("Mary", cond))
		if o.State() != Out || len(out.Send) != 0 || !strings.Contains(out.Notice, want) {
			t.Errorf("%s: state %s, outcome %+v; want out with a notice saying %q", cond, o.State(), out, want)
		}
		if out = o.HandlePresence(self("Mary")); len(out.Send) != 0 {
			t.Errorf("%s: a held message went out after the refusal: %+v", cond, out)
		}
	}
}

// TestOccupantJoinWaits: a join that could not reach the room's server, or
// a rejoin the room asks to wait, loses nothing: the occupant is lost (the
// caller tries again later) and what waits goes out once it is in. A
// first join the room asks to wait (it is full) is refused.
func TestOccupantJoinWaits(t *testing.T) {
	for _, tc := range []struct {
		name   string
		rejoin bool
		err    stanza.Error
		lost   bool
	}{
		{"server unreachable", false, stanza.Error{Type: stanza.Cancel, Condition: stanza.RemoteServerNotFound}, true},
		{"server slow", true, stanza.Error{Type: stanza.Wait, Condition: stanza.RemoteServerTimeout}, true},
		{"service starting again", true, stanza.Error{Type: stanza.Wait, Condition: stanza.ServiceUnavailable}, true},
		// A server whose s2s is still loading refuses a rejoin with
		// not-allowed (Prosody): tried again.
		{"rejoin refused while starting", true, stanza.Error{Type: stanza.Cancel, Condition: stanza.NotAllowed}, true},
		{"rejoin refused for good", true, stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable}, false},
		{"full room", false, stanza.Error{Type: stanza.Wait, Condition: stanza.ServiceUnavailable}, false},
	} {
		o := newTestOccupant()
		o.Join("")
		if tc.rejoin {
			o.HandlePresence(self("Mary"))
			o.Lost()
			o.Rejoin("")
		}
		o.Send(msg("held"))
		refused := refusal("Mary", tc.err.Condition)
		refused.Error = &tc.err
		out := o.HandlePresence(refused)
		if tc.rejoin && !tc.lost {
			// A rejoin's refusal is tried again maxRejoinRefusals times
			// before it counts.
			for range maxRejoinRefusals {
				if o.State() != Lost || out.Notice != "" {
					t.Fatalf("%s: a refusal of a rejoin: state %s, %+v; want lost, to try again", tc.name, o.State(), out)
				}
				o.Rejoin("")
				out = o.HandlePresence(refused)
			}
		}
		if !tc.lost {
			if o.State() != Out || out.Notice == "" {
				t.Errorf("%s: state %s, %+v; want out with a notice", tc.name, o.State(), out)
			}
			continue
		}
		if o.State() != Lost || out.Notice != "" || len(out.Send) != 0 {
			t.Errorf("%s: state %s, %+v; want lost, quietly", tc.name, o.State(), out)
		}
		if _, nick := joinPresence(t, o.Rejoin("")); nick != "Mary" {
			t.Errorf("%s: rejoin as %q", tc.name, nick)
		}
		if out = o.HandlePresence(self("Mary")); len(out.Send) != 1 || out.Send[0].(*xmpp.Message).Body != "held" {
			t.Errorf("%s: once in: %+v; want the held message", tc.name, out)
		}
	}
}

func TestOccupantRemoved(t *testing.T) {
	joined := func() *Occupant {
		o := newTestOccupant()
		o.Join("")
		o.HandlePresence(self("Mary"))
		return o
	}
	gone := func(codes []int, item xmpp.MUCItem) *xmpp.Presence {
		p := self("Mary", codes...)
		p.Type = xmpp.TypeUnavailable
		p.MUCUser.Items = []xmpp.MUCItem{item}
		return p
	}
	// Kicked and banned: out, told who and why, never rejoined on its own.
	for code, want := range map[int]string{xmpp.StatusKicked: "kicked", xmpp.StatusBanned: "banned", 321: "members-only", 322: "members-only"} {
		o := joined()
		out := o.HandlePresence(gone([]int{code}, xmpp.MUCItem{Role: xmpp.RoleNone, Actor: &xmpp.MUCActor{Nick: "Boss"}, Reason: "spam"}))
		if o.State() != Out || !strings.Contains(out.Notice, want) {
			t.Errorf("status %d: state %s, %+v; want out, notice saying %q", code, o.State(), out, want)
		}
		if code == xmpp.StatusKicked && (!strings.Contains(out.Notice, "Boss") || !strings.Contains(out.Notice, "spam")) {
			t.Errorf("kick notice %q does not name the actor and reason", out.Notice)
		}
		if out = o.Send(msg("after")); len(out.Send) != 0 || out.Notice == "" {
			t.Errorf("status %d: Send afterwards = %+v; want a notice, nothing sent", code, out)
		}
	}
	// A nick change keeps us in, under the new nick.
	o := joined()
	o.HandlePresence(gone([]int{xmpp.StatusNewNick}, xmpp.MUCItem{Nick: "Maria"}))
	o.HandlePresence(self("Maria"))
	if o.State() != Joined || o.Nick() != "Maria" {
		t.Errorf("after a nick change: %s, %q", o.State(), o.Nick())
	}
	// The service shut down: lost, messages wait, the rejoin uses our nick.
	o.HandlePresence(gone([]int{xmpp.StatusShutdown}, xmpp.MUCItem{}))
	if o.State() != Lost {
		t.Fatalf("after 332 the state is %s; want lost", o.State())
	}
	o.Send(msg("while away"))
	if _, nick := joinPresence(t, o.Rejoin("")); nick != "Maria" {
		t.Errorf("rejoin with %q; want the nick the room knew", nick)
	}
	if out := o.HandlePresence(self("Maria")); len(out.Send) != 1 || out.Send[0].(*xmpp.Message).Body != "while away" {
		t.Errorf("after the rejoin: %+v; want the held message", out)
	}
}

func TestOccupantNeverCreatesRooms(t *testing.T) {
	o := newTestOccupant()
	o.Join("")
	o.Send(msg("held"))
	out := o.HandlePresence(self("Mary", xmpp.StatusCreated))
	if o.State() != Out || len(out.Send) != 1 || !strings.Contains(out.Notice, "does not exist") {
		t.Fatalf("a join that created the room: state %s, %+v; want it left again, with a notice", o.State(), out)
	}
	if p, ok := out.Send[0].(*xmpp.Presence); !ok || p.Type != xmpp.TypeUnavailable {
		t.Errorf("sent %+v; want the unavailable presence, not the held message", out.Send[0])
	}
}

// TestOccupantRename: a new display name asks for the new nick while in;
// the room's nick change moves the occupant, a refusal keeps the old nick
// with a notice.
func TestOccupantRename(t *testing.T) {
	o := newTestOccupant()
	o.Join("")
	o.HandlePresence(self("Mary"))
	rename := func(out Outcome) string {
		t.Helper()
		p, ok := out.Send[0].(*xmpp.Presence)
		if len(out.Send) != 1 || !ok || p.Type != "" || p.MUC != nil || !p.To.Bare().Equal(room) {
			t.Fatalf("rename sent %+v; want a plain presence to the room", out.Send)
		}
		return p.To.Resourcepart()
	}
	if nick := rename(o.Rename([]string{"Maria", "Maria (Matrix)", "mary"})); nick != "Maria" {
		t.Fatalf("rename asked for %q", nick)
	}
	if !o.Claims("Maria") || !o.Claims("Mary") {
		t.Error("while renaming, both nicks are ours")
	}
	gone := self("Mary", xmpp.StatusNewNick)
	gone.Type = xmpp.TypeUnavailable
	gone.MUCUser.Items[0].Nick = "Maria"
	o.HandlePresence(gone)
	if out := o.HandlePresence(self("Maria")); o.Nick() != "Maria" || out.Notice != "" || o.State() != Joined {
		t.Errorf("after the nick change: %q, %s, %+v", o.Nick(), o.State(), out)
	}
	rename(o.Rename([]string{"Bob"}))
	if out := o.HandlePresence(refusal("Bob", stanza.Conflict)); o.Nick() != "Maria" || o.State() != Joined || !strings.Contains(out.Notice, "taken") {
		t.Errorf("a refused rename: %q, %s, %+v", o.Nick(), o.State(), out)
	}
	if out := o.Rename([]string{"Maria"}); len(out.Send) != 0 {
		t.Errorf("a rename to the nick held sent %+v", out.Send)
	}
}
