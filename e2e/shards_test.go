//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"mellium.im/xmpp/jid"

	"github.com/mxpp/mxpp/testenv"
	"github.com/mxpp/mxpp/xmpp"
)

// TestE2EShards: two bridges on one homeserver and one XMPP server, each
// with its own component domain, appservice registration (ID, tokens, bot,
// puppet and alias prefix) and database. A room exposed by one is unknown
// to the other; each shard's puppets and bot are its own; messages cross
// only where they belong.
func TestE2EShards(t *testing.T) {
	a := need(t)
	if a.XMPPServerName() != "prosody" {
		t.Skip("the shard test's servers are a Prosody and a Dendrite of its own")
	}
	stack, err := testenv.New(a.Root, "mxpp-e2e-shards-", "")
	if err != nil {
		t.Fatal(err)
	}
	v := &env{Stack: stack}
	v.Users = []string{"alice", "bob"}
	v.Bin = a.Bin
	const comp2, secret2 = "matrix2.xmpp.test", "shard2secret"
	port2 := testenv.FreePort()
	cfg2, reg2 := filepath.Join(v.Dir, "shard2.yaml"), filepath.Join(v.Dir, "shard2-registration.yaml")
	v.beforeServers = func() error {
		cfg, err := os.ReadFile(v.Config)
		if err != nil {
			return err
		}
		for _, e := range [][2]string{
			{`(?m)^  (as|hs)_token: .*\n`, ""},
			{`(?m)^  address: http://127\.0\.0\.1:\d+\n  hostname: 127\.0\.0\.1\n  port: \d+$`, fmt.Sprintf(
				"  address: http://127.0.0.1:%d\n  hostname: 127.0.0.1\n  port: %d\n  id: xmpp2\n  puppet_prefix: _xmpp2_\n  bot:\n    username: xmppbot2", port2, port2)},
			{`(?m)^  server: .*$`, fmt.Sprintf("  server: 127.0.0.1:%d", v.CompPort)},
			{`(?m)^  domain: ` + regexp.QuoteMeta(v.CompDomain) + `$`, "  domain: " + comp2},
			{`(?m)^  secret: .*$`, "  secret: " + secret2},
			{`(?m)^  uri: .*$`, "  uri: file:" + filepath.Join(v.Dir, "shard2.db")},
			{`(?m)^  type: postgres$`, "  type: sqlite"},
			{`(?m)^  audit_file: .*$`, "  audit_file: " + filepath.Join(v.Dir, "shard2-audit.log")},
		} {
			cfg = regexp.MustCompile(e[0]).ReplaceAll(cfg, []byte(e[1]))
		}
		if err = os.WriteFile(cfg2, cfg, 0o600); err != nil {
			return err
		}
		if out, err := exec.Command(v.Bin, "-g", "-c", cfg2, "-r", reg2).CombinedOutput(); err != nil {
			return fmt.Errorf("shard 2's registration: %v\n%s", err, out)
		}
		v.ExtraRegistrations, v.ExtraComponents = []string{reg2}, []string{comp2 + ":" + secret2}
		return nil
	}
	if err = v.start(); err != nil {
		v.close(true)
		t.Fatal(err)
	}
	t.Cleanup(func() { v.close(t.Failed()) })
	logFile, err := os.Create(filepath.Join(v.Dir, "shard2.log"))
	if err != nil {
		t.Fatal(err)
	}
	shard2 := exec.Command(v.Bin, "-c", cfg2)
	shard2.Stdout, shard2.Stderr = logFile, logFile
	if err = shard2.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = shard2.Process.Kill(); _ = shard2.Wait(); logFile.Close() })
	waitFor(t, "shard 2 ready", func() bool { return getReady(port2).OK })

	bot1, bot2 := id.UserID("@xmppbot:"+v.HSDomain), id.UserID("@xmppbot2:"+v.HSDomain)
	mary := v.newMatrixUser(t, "mary", "Mary")
	// Room one through shard 1, room two through shard 2.
	room1, alias1 := mary.createRoom("one", "One", "")
	mary.expose(room1)
	room2, alias2 := mary.createRoom("two", "Two", "")
	if _, err = mary.c.InviteUser(ctx(t), room2, &mautrix.ReqInviteUser{UserID: bot2}); err != nil {
		t.Fatal(err)
	}
	mary.waitEvent("shard 2's bot joining", isMembership(room2, bot2, event.MembershipJoin))
	cmd := mary.say(room2, "!xmpp expose")
	mary.waitEvent("shard 2's answer", func(evt *event.Event) bool {
		return evt.RoomID == room2 && evt.Sender == bot2 && evt.Content.AsMessage().RelatesTo.GetReplyTo() == cmd &&
			strings.Contains(evt.Content.AsMessage().Body, "now reachable")
	})
	muc1 := mucJID(t, alias1)
	muc2 := jid.MustParse(strings.Replace(mucJID(t, alias2).String(), "@"+v.CompDomain, "@"+comp2, 1))

	// Each room is reachable through its shard only.
	alice := v.newXMPPClient(t, "alice", "shards")
	alice.mustJoin(muc2, "Alice")
	other := jid.MustParse(strings.Replace(muc1.String(), "@"+v.CompDomain, "@"+comp2, 1))
	if err := alice.tryJoin(other, "Alice"); err == nil || !strings.Contains(err.Error(), "not open to XMPP") {
		t.Errorf("joining shard 1's room through shard 2: %v; want it refused as not open to XMPP", err)
	}
	bob := v.newXMPPClient(t, "bob", "shards")
	bob.mustJoin(muc1, "Bob")

	// Each shard's puppets are its own.
	alicePuppet := id.NewUserID("_xmpp2_"+id.EncodeUserLocalpart("alice@"+v.XMPPDomain), v.HSDomain)
	bobPuppet := id.NewUserID("_xmpp_"+id.EncodeUserLocalpart("bob@"+v.XMPPDomain), v.HSDomain)
	mary.waitEvent("Alice's shard-2 puppet in room two", isMembership(room2, alicePuppet, event.MembershipJoin))
	mary.waitEvent("Bob's shard-1 puppet in room one", isMembership(room1, bobPuppet, event.MembershipJoin))

	// Messages cross in their room only, each way.
	alice.send(&xmpp.Message{Type: xmpp.TypeGroupchat, To: xmpp.A(muc2), Body: "via shard two"})
	mary.waitEvent("Alice's message", isMessage(room2, alicePuppet, "via shard two"))
	mark1, mark2 := bob.mark(), alice.mark()
	mary.say(room1, "to room one")
	mary.say(room2, "to room two")
	bob.waitFrom(mark1, "Mary in room one", isGroupchat(occ(muc1, "Mary"), "to room one"))
	alice.waitFrom(mark2, "Mary in room two", isGroupchat(occ(muc2, "Mary"), "to room two"))
	for _, c := range []struct {
		who  *xmppClient
		mark int
		not  string
	}{{bob, mark1, "to room two"}, {alice, mark2, "to room one"}} {
		for _, st := range c.who.since(c.mark) {
			if m, ok := st.(*xmpp.Message); ok && m.Body == c.not {
				t.Errorf("%q crossed to the other shard's room", c.not)
			}
		}
	}
	// Each bot is in its rooms only.
	for _, c := range []struct {
		room id.RoomID
		bot  id.UserID
	}{{room1, bot2}, {room2, bot1}} {
		var member event.MemberEventContent
		if err := mary.c.StateEvent(ctx(t), c.room, event.StateMember, c.bot.String(), &member); err == nil && member.Membership == event.MembershipJoin {
			t.Errorf("%s is in %s, a room of the other shard", c.bot, c.room)
		}
	}
	if r := getReady(port2); !r.OK {
		t.Errorf("shard 2 /ready = %+v", r)
	}
}
