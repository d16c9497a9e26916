package portal

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"mellium.im/xmpp/jid"

	"github.com/mxpp/mxpp/xmpp"
)

// flakyLink records stanzas and fails the first one to failTo.
type flakyLink struct {
	stanzaRecorder
	failTo string
	link   uint64
}

func (f *flakyLink) Send(ctx context.Context, v any) error {
	if m, ok := v.(*xmpp.Message); ok && m.To.String() == f.failTo {
		f.failTo = ""
		return errors.New("write: timeout")
	}
	return f.stanzaRecorder.Send(ctx, v)
}

func (f *flakyLink) Link() uint64         { return f.link }
func (f *flakyLink) LinkUp(l uint64) bool { return l == f.link }

// TestRetrySkipsReachedSessions: a Matrix message that reached some of the
// room's XMPP sessions before a send failed is sent again, on the
// homeserver's retry, only to the others, as long as the stream it went out
// on is up; a copy that went out on a stream that broke since is sent
// again (what a dying stream took is unknown), with the same id.
func TestRetrySkipsReachedSessions(t *testing.T) {
	for _, breaks := range []bool{false, true} {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		db := openTestDB(t)
		out := &flakyLink{failTo: "bob@xmpp.test/pc", link: 1}
		p := testPortal()
		p.deps.DB, p.deps.Matrix, p.deps.XMPP, p.log = db, &authorityHS{}, out, zerolog.Nop()
		p.loaded = true
		if err := db.Portal.Insert(ctx, p.Portal); err != nil {
			t.Fatal(err)
		}
		p.occupants["alice@xmpp.test"].sessions = []session{{jid: jid.MustParse("alice@xmpp.test/phone")}}
		p.occupants["bob@xmpp.test"] = &occupant{bare: jid.MustParse("bob@xmpp.test"), nick: "Bob", puppet: "@_xmpp_bob=40xmpp.test:hs.test",
			sessions: []session{{jid: jid.MustParse("bob@xmpp.test/pc")}}}
		p.Start(ctx)
		evt := &event.Event{ID: "$m", Type: event.EventMessage, Sender: "@mary:hs.test", RoomID: p.RoomID, Timestamp: time.Now().UnixMilli(),
			Content: event.Content{Parsed: &event.MessageEventContent{MsgType: event.MsgText, Body: "hello"}}}
		p.Queue(ctx, evt)
		if failed, err := p.Flush(ctx, evt.ID); err != nil || !slices.Equal(failed, []id.EventID{"$m"}) {
			t.Fatalf("breaks %v: first attempt's Flush = %v, %v; want $m undelivered", breaks, failed, err)
		}
		first := len(out.out)
		if breaks {
			out.link++ // the stream broke before the retry; a new one is up
		}
		p.Queue(ctx, evt) // the homeserver's retry
		if failed, err := p.Flush(ctx, evt.ID); err != nil || len(failed) != 0 {
			t.Fatalf("breaks %v: the retry's Flush = %v, %v; want delivered", breaks, failed, err)
		}
		var to []string
		for _, st := range out.out[first:] {
			m := st.(*xmpp.Message)
			if m.ID != "$m" {
				t.Errorf("breaks %v: the retry sent id %q; want the event's", breaks, m.ID)
			}
			to = append(to, m.To.String())
		}
		slices.Sort(to)
		want := []string{"bob@xmpp.test/pc"}
		if breaks {
			want = []string{"alice@xmpp.test/phone", "bob@xmpp.test/pc"}
		}
		if !slices.Equal(to, want) {
			t.Errorf("breaks %v: the retry went to %v; want %v", breaks, to, want)
		}
		p.Stop()
	}
}

// TestEventSendsAlikeStanzas: one Matrix event may send a session several
// stanzas alike (a rename: the old nick's unavailable presence, then the
// new one's available presence, neither with an id); the delivery notes
// keep them apart, and both go out.
func TestEventSendsAlikeStanzas(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t)
	out := &flakyLink{link: 1}
	p := testPortal()
	p.deps.DB, p.deps.Matrix, p.deps.XMPP, p.log = db, &authorityHS{}, out, zerolog.Nop()
	p.loaded = true
	p.occupants["alice@xmpp.test"].sessions = []session{{jid: jid.MustParse("alice@xmpp.test/phone")}}
	join := func(evtID id.EventID, user id.UserID) {
		p.HandleEvent(ctx, &event.Event{ID: evtID, Type: event.StateMember, Sender: user, StateKey: new(string(user)), RoomID: p.RoomID,
			Content: event.Content{Parsed: &event.MemberEventContent{Membership: event.MembershipJoin, Displayname: "Sam"}}})
	}
	join("$j1", "@sam1:hs.test")
	mark := len(out.out)
	join("$j2", "@sam2:hs.test") // both become "Sam (localpart)"
	var got []string
	for _, st := range out.out[mark:] {
		if pres, ok := st.(*xmpp.Presence); ok {
			got = append(got, pres.Type+" "+pres.From.Resourcepart())
		}
	}
	slices.Sort(got)
	if want := []string{" Sam (sam1)", " Sam (sam2)", "unavailable Sam"}; !slices.Equal(got, want) {
		t.Errorf("the second Sam's join sent %q; want %q", got, want)
	}
}
