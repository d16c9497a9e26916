package bridge

import (
	"context"
	"fmt"
	"testing"

	"github.com/mxpp/mxpp/ratelimit"
	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/id"
	"mellium.im/xmpp/jid"
)

// TestAllowed: who may run which command, for the cases decided by the
// config alone (room admin and membership checks ask the homeserver, and
// are covered end to end).
func TestAllowed(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Bridge.Permissions = map[string]string{"*": LevelNone, "hs.test": LevelUser, "@boss:hs.test": LevelAdmin, "@muted:hs.test": LevelNone}
	b := &Bridge{Config: &cfg}
	b.commands = b.commandList()
	cmd := func(name string) *command {
		c := b.findCommand(name)
		if c == nil {
			t.Fatalf("no command %s", name)
		}
		return c
	}
	for _, tc := range []struct {
		command string
		sender  id.UserID
		room    id.RoomID
		xmpp    bool
		want    bool
	}{
		{"rooms", "@anna:hs.test", "", false, true},
		{"rooms", "@muted:hs.test", "", false, false},
		{"rooms", "@eve:other.test", "", false, false},
		{"status", "@anna:hs.test", "", false, false},
		{"status", "@boss:hs.test", "", false, true},
		{"forget", "@boss:hs.test", "", false, true},
		// Room commands without a room, or by users without permission,
		// are refused before the homeserver is asked.
		{"expose", "@anna:hs.test", "", false, false},
		{"expose", "@muted:hs.test", "!r:hs.test", false, false},
		{"expose", "@boss:hs.test", "!r:hs.test", false, true},
		{"occupants", "@anna:hs.test", "", false, false},
		{"occupants", "@eve:other.test", "!r:hs.test", false, false},
		{"occupants", "@boss:hs.test", "!r:hs.test", false, true},
		// XMPP admins (already checked) get the commands offered to XMPP.
		{"status", "", "", true, true},
		{"expose", "", "", true, false},
	} {
		e := &cmdEnv{b: b, sender: tc.sender, room: tc.room}
		if tc.xmpp {
			e.xmpp = jid.MustParse("admin@xmpp.test")
		}
		if got := b.allowed(context.Background(), cmd(tc.command), e); got != tc.want {
			t.Errorf("%s by %q (room %q, xmpp %v): allowed %v; want %v", tc.command, tc.sender, tc.room, tc.xmpp, got, tc.want)
		}
	}
}

// TestMayInvite: invitations to XMPP only from users with permission, 20
// at once per user, then one a minute.
func TestMayInvite(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Bridge.Permissions = map[string]string{"hs.test": LevelUser, "@muted:hs.test": LevelNone}
	b := &Bridge{Config: &cfg, invitations: ratelimit.New(invitationEvery, invitationBurst), Audit: zerolog.Nop()}
	if b.mayInvite("@muted:hs.test") || b.mayInvite("@eve:other.test") {
		t.Error("a user without permission may invite")
	}
	for i := range invitationBurst {
		if !b.mayInvite("@anna:hs.test") {
			t.Fatalf("invitation %d refused", i+1)
		}
	}
	if b.mayInvite("@anna:hs.test") {
		t.Error("invitation beyond the burst allowed")
	}
	if !b.mayInvite("@ben:hs.test") {
		t.Error("another user's invitation refused")
	}
}

// TestMayRegisterPuppet: lookups create at most 50 new puppets per XMPP
// domain at once and 200 in all, since each is a homeserver account.
func TestMayRegisterPuppet(t *testing.T) {
	b := &Bridge{Audit: zerolog.Nop(), newPuppets: ratelimit.New(newPuppetEvery, newPuppetBurst),
		allPuppets: ratelimit.New(newPuppetsAllEvery, newPuppetsAllBurst)}
	for i := range newPuppetBurst {
		if !b.MayRegisterPuppet(fmt.Sprintf("u%d@one.test", i)) {
			t.Fatalf("puppet %d of one.test refused", i+1)
		}
	}
	if b.MayRegisterPuppet("more@one.test") {
		t.Error("a puppet beyond the burst of one.test allowed")
	}
	allowed := newPuppetBurst
	for d := 0; allowed < newPuppetsAllBurst; d++ {
		for i := range newPuppetBurst {
			if allowed == newPuppetsAllBurst {
				break
			}
			if !b.MayRegisterPuppet(fmt.Sprintf("u%d@d%d.test", i, d)) {
				t.Fatalf("puppet %d in all refused", allowed+1)
			}
			allowed++
		}
	}
	if b.MayRegisterPuppet("first@fresh.test") {
		t.Error("a puppet beyond the burst in all allowed")
	}
	if b.MayRegisterPuppet("not a jid@") {
		t.Error("an invalid JID allowed")
	}
}

// TestArgJID: a command's address may be a JID or an xmpp: URI, in the
// percent-encoded form RFC 5122 writes or raw as people paste it.
func TestArgJID(t *testing.T) {
	for in, want := range map[string]string{
		"alice@xmpp.test":                 "alice@xmpp.test",
		"alice@xmpp.test/phone":           "alice@xmpp.test",
		"xmpp:alice@xmpp.test":            "alice@xmpp.test",
		"XMPP:alice@xmpp.test?message":    "alice@xmpp.test",
		"xmpp:%23r%23hs.test@c.test?join": "#r#hs.test@c.test",
		"xmpp:#r#hs.test@c.test?join":     "#r#hs.test@c.test",
		"xmpp:bob%20smith%40x@xmpp.test":  "",
		"xmpp.test":                       "",
		"xmpp:":                           "",
	} {
		j, err := argJID(&cmdEnv{args: []string{in}})
		if got := j.String(); (err == nil) != (want != "") || got != want && want != "" {
			t.Errorf("argJID(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
