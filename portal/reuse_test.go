package portal

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/id"

	"github.com/mxpp/mxpp/database"
	"github.com/mxpp/mxpp/msgconv"
	"github.com/mxpp/mxpp/xmpp"
)

// TestReusedPlainID: a plain stanza id marks a resend only for a while, so
// that a client that reuses ids without origin-id does not have new
// messages dropped as resends; an origin-id marks resends for as long as
// the mapping is kept.
func TestReusedPlainID(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t)
	var err error
	p := testPortal()
	p.deps.DB, p.log = db, zerolog.Nop()
	if err = db.Portal.Insert(ctx, p.Portal); err != nil {
		t.Fatal(err)
	}
	occ := p.occupants["alice@xmpp.test"]
	for _, m := range []*database.Message{
		{EventID: "$old", StanzaID: "1", Timestamp: time.Now().Add(-time.Hour)},
		{EventID: "$new", StanzaID: "2", Timestamp: time.Now().Add(-time.Minute)},
		{EventID: "$older", StanzaID: "3", Timestamp: time.Now().Add(-2 * time.Hour)},
		{EventID: "$newer", StanzaID: "3", Timestamp: time.Now().Add(-time.Minute)},
	} {
		m.RoomID, m.SenderJID = p.RoomID, "alice@xmpp.test"
		if err = db.Message.Insert(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	plainTxn := func(id string) string { return msgconv.TxnID(p.RoomID.String(), "alice@xmpp.test", id, id) }
	for _, tc := range []struct {
		name   string
		msg    *xmpp.Message
		resend bool
	}{
		{"plain id of an hour ago", &xmpp.Message{ID: "1"}, false},
		{"plain id of a minute ago", &xmpp.Message{ID: "2"}, true},
		{"origin-id of an hour ago", &xmpp.Message{ID: "x", OriginID: &xmpp.OriginID{ID: "1"}}, true},
		{"plain id used twice, last a minute ago", &xmpp.Message{ID: "3"}, true},
	} {
		sid := msgconv.StanzaIDOf(tc.msg)
		prev, err := db.Message.GetByStanzaID(ctx, p.RoomID, "alice@xmpp.test", sid)
		if err != nil || prev == nil {
			t.Fatalf("%s: no mapping: %v", tc.name, err)
		}
		resend := !reusedID(tc.msg, prev)
		if resend != tc.resend {
			t.Errorf("%s: resend = %v; want %v", tc.name, resend, tc.resend)
		}
		// A new message gets a transaction of its own; a resend the same
		// as the first time.
		var reuses id.EventID
		if !resend {
			reuses = prev.EventID
		}
		if sameTxn := messageTxnID(p.RoomID, occ, tc.msg, sid, reuses) == plainTxn(sid); sameTxn != tc.resend {
			t.Errorf("%s: transaction as for the first message: %v; want %v", tc.name, sameTxn, tc.resend)
		}
	}
	if prev, _ := db.Message.GetByStanzaID(ctx, p.RoomID, "alice@xmpp.test", "3"); prev == nil || prev.EventID != "$newer" {
		t.Errorf("GetByStanzaID of a reused id = %+v; want the newest", prev)
	}
}
