package bridge

import (
	"testing"

	"github.com/mxpp/mxpp/database"
	"github.com/mxpp/mxpp/xmpp"
)

// TestSubscriptionModes: bridge.subscriptions decides what an XMPP user's
// subscription request to a Matrix user's JID gets: auto approves it (with
// the user's name), deny refuses it, ask leaves it waiting and notes it;
// the user's own denial or block refuses it in every mode.
func TestSubscriptionModes(t *testing.T) {
	const mary, alice = "mary#hs.test@matrix.xmpp.test", "alice@xmpp.test"
	subscribe := `<presence type='subscribe' from='` + alice + `/pc' to='` + mary + `'/>`
	probe := `<presence type='probe' from='` + alice + `/pc' to='` + mary + `'/>`
	next := func(t *testing.T, srv interface{ Next(any) }) *xmpp.Presence {
		t.Helper()
		var p xmpp.Presence
		srv.Next(&p)
		return &p
	}
	for _, mode := range []string{SubscriptionsAuto, SubscriptionsDeny, SubscriptionsAsk} {
		t.Run(mode, func(t *testing.T) {
			rb, srv := adhocBridge(t)
			rb.Config.Bridge.Subscriptions = mode
			srv.Send(subscribe)
			switch mode {
			case SubscriptionsAuto:
				if p := next(t, srv); p.Type != "subscribed" || p.To.String() != alice {
					t.Fatalf("auto: %+v; want subscribed", p)
				}
				if p := next(t, srv); p.Type != "" || p.Nick != "Mary" {
					t.Errorf("auto: %+v; want Mary available, by name", p)
				}
			case SubscriptionsDeny:
				if p := next(t, srv); p.Type != "unsubscribed" {
					t.Errorf("deny: %+v; want unsubscribed", p)
				}
			case SubscriptionsAsk:
				// Nothing is answered: a probe after it gets the first
				// answer, unavailable, and the request is noted.
				srv.Send(probe)
				if p := next(t, srv); p.Type != xmpp.TypeUnavailable {
					t.Errorf("ask: %+v; want nothing for the request, unavailable for the probe", p)
				}
				if s, err := rb.DB.Contact.State(rb.ctx, "@mary:hs.test", alice); err != nil || s != database.ContactPending {
					t.Errorf("ask: the request is %q, %v; want pending", s, err)
				}
			}
			// The user's own refusal, a denial or a block, holds in every
			// mode.
			for _, state := range []string{database.ContactDenied, database.ContactBlocked} {
				if err := rb.DB.Contact.Set(rb.ctx, "@mary:hs.test", alice, state); err != nil {
					t.Fatal(err)
				}
				srv.Send(subscribe)
				if p := next(t, srv); p.Type != "unsubscribed" {
					t.Errorf("%s, %s: %+v; want unsubscribed", mode, state, p)
				}
			}
		})
	}
}
