//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
	"mellium.im/xmpp/uri"
	_ "modernc.org/sqlite"

	"github.com/mxpp/mxpp/xmpp"
)

// directChat opens a direct chat between u and the bot, where commands
// need no prefix.
func (u *mxUser) directChat() id.RoomID {
	u.t.Helper()
	resp, err := u.c.CreateRoom(ctx(u.t), &mautrix.ReqCreateRoom{
		Preset: "trusted_private_chat", IsDirect: true, Invite: []id.UserID{u.bot()},
	})
	if err != nil {
		u.t.Fatalf("creating a direct chat with the bot: %v", err)
	}
	u.waitEvent("the bot joining the direct chat", isMembership(resp.RoomID, u.bot(), event.MembershipJoin))
	return resp.RoomID
}

// bridgeState reads the room's m.bridge state event for a MUC.
func (u *mxUser) bridgeState(room id.RoomID, muc jid.JID) *event.BridgeEventContent {
	u.t.Helper()
	var content event.BridgeEventContent
	key := "xmpp://" + e.CompDomain + "/" + muc.Localpart()
	if err := u.c.StateEvent(ctx(u.t), room, event.StateBridge, key, &content); err != nil {
		u.t.Fatalf("reading m.bridge %s: %v", key, err)
	}
	return &content
}

// auditEntries returns the audit file's entries with an action.
func auditEntries(t *testing.T, action string) []map[string]any {
	t.Helper()
	return e.auditEntries(t, action)
}

// auditEntries returns the entries with an action of the environment's
// audit file.
func (v *env) auditEntries(t *testing.T, action string) []map[string]any {
	t.Helper()
	f, err := os.Open(filepath.Join(v.Dir, "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var entry map[string]any
		if err := json.Unmarshal(sc.Bytes(), &entry); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		if entry["audit"] != true {
			t.Errorf("audit line without audit=true: %q", sc.Text())
		}
		if entry["action"] == action {
			out = append(out, entry)
		}
	}
	return out
}

// hasAudit reports whether an audit entry has every field of want.
func hasAudit(entries []map[string]any, want map[string]any) bool {
next:
	for _, entry := range entries {
		for k, v := range want {
			if fmt.Sprint(entry[k]) != fmt.Sprint(v) {
				continue next
			}
		}
		return true
	}
	return false
}

// dbRows returns every row of every table of the bridge's database, one
// string per row, read while the bridge runs.
func dbRows(t *testing.T) []string {
	t.Helper()
	driver, dsn, list := "sqlite", e.dbURI+"?_pragma=busy_timeout(5000)", `SELECT name FROM sqlite_master WHERE type='table'`
	if e.postgres() {
		driver, dsn, list = "postgres", e.dbURI, `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()`
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tables, err := db.Query(list)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for tables.Next() {
		var name string
		if err = tables.Scan(&name); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	tables.Close()
	var out []string
	for _, name := range names {
		rows, err := db.Query(`SELECT * FROM "` + name + `"`)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err = rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			b.WriteString(name + ":")
			for i, v := range vals {
				if raw, ok := v.([]byte); ok {
					v = string(raw)
				}
				fmt.Fprintf(&b, " %s=%v", cols[i], v)
			}
			out = append(out, b.String())
		}
		rows.Close()
	}
	return out
}

// metric reads one sample of the bridge's /metrics; 0 if it is absent.
func metric(t *testing.T, sample string) float64 {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", e.ASPort))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %s", resp.Status)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if rest, ok := strings.CutPrefix(line, sample+" "); ok {
			var v float64
			if _, err := fmt.Sscan(rest, &v); err != nil {
				t.Fatalf("metric %q: %v", line, err)
			}
			return v
		}
	}
	return 0 // a counter nobody has counted yet
}

// isRemoval matches an occupant's unavailable presence with a status.
func isRemoval(from jid.JID, code int) func(any) bool {
	return func(v any) bool {
		p, ok := v.(*xmpp.Presence)
		return ok && p.From.Equal(from) && p.Type == xmpp.TypeUnavailable && hasStatus(p, code)
	}
}

// mustBeRefused joins and fails the test unless the room refuses with
// the condition.
func (c *xmppClient) mustBeRefused(room jid.JID, nick string, cond stanza.Condition, what string) {
	c.t.Helper()
	if res := c.join(room, nick); res.err == nil || res.err.Error.Condition != cond {
		c.t.Fatalf("%s: %+v; want %s", what, res.err, cond)
	}
}

// TestE2EExposure: with opt-in exposure a room is closed to XMPP until a
// room admin exposes it; a member without power may not; exposing marks
// the room (m.bridge, a notice) and unexposing removes XMPP occupants.
func TestE2EExposure(t *testing.T) {
	v := need(t)
	mary := v.newMatrixUser(t, "mary", "Mary")
	resp, err := mary.c.CreateRoom(ctx(t), &mautrix.ReqCreateRoom{
		Visibility: "public", Preset: "public_chat", RoomAliasName: fmt.Sprintf("exposure%d", userSeq.n), Name: "Exposure",
		// The bot may send state events, so it can set m.bridge.
		PowerLevelOverride: &event.PowerLevelsEventContent{Users: map[id.UserID]int{mary.id: 100, botID(): 50}},
	})
	if err != nil {
		t.Fatal(err)
	}
	room := resp.RoomID
	muc := mucJID(t, id.RoomAlias(fmt.Sprintf("#exposure%d:%s", userSeq.n, v.HSDomain)))
	alice := v.newXMPPClient(t, "alice", "expo")

	// Not exposed: the room exists but is closed.
	alice.mustBeRefused(muc, "Alice", stanza.Forbidden, "join before expose")

	// A member without power may not expose it.
	sam := v.newMatrixUser(t, "sam", "Sam")
	sam.join(room)
	if _, err = mary.c.InviteUser(ctx(t), room, &mautrix.ReqInviteUser{UserID: botID()}); err != nil {
		t.Fatal(err)
	}
	mary.waitEvent("the bot joining", isMembership(room, botID(), event.MembershipJoin))
	sam.command(room, "expose", "You may not run `expose`")
	alice.mustBeRefused(muc, "Alice", stanza.Forbidden, "join after a refused expose")
	if !hasAudit(auditEntries(t, "command"), map[string]any{"command": "expose", "by": sam.id, "result": "denied"}) {
		t.Error("no audit entry for the refused expose")
	}

	// The room admin exposes it: the members are told, m.bridge is set.
	answer := mary.command(room, "expose", "now reachable")
	if strings.Contains(answer, "could not mark") {
		t.Errorf("expose answer: %q; the bot has the power to set m.bridge", answer)
	}
	notice := sam.waitEvent("the exposure notice", func(evt *event.Event) bool {
		msg := evt.Content.AsMessage()
		return evt.RoomID == room && evt.Sender == botID() && msg.MsgType == event.MsgNotice &&
			strings.Contains(msg.Body, "reachable from XMPP")
	})
	if notice.Content.AsMessage().Body != answer {
		t.Errorf("the room was told %q, and the admin %q; want one announcement", notice.Content.AsMessage().Body, answer)
	}
	// The address announced is a URI any client can open (RFC 5122): an
	// XMPP client parses it and joins by what it finds.
	announced := announcedURI(t, notice.Content.AsMessage().Body)
	if !announced.ToAddr.Equal(muc) || announced.Action != "join" {
		t.Fatalf("the notice announces %s (%q); want %s, join", announced.ToAddr, announced.Action, muc)
	}
	state := mary.bridgeState(room, muc)
	if state.Channel.ID != muc.String() || state.BridgeBot != botID() || state.Creator != mary.id || state.Protocol.ID != "xmpp" {
		t.Errorf("m.bridge: %+v", state)
	}
	if !hasAudit(auditEntries(t, "expose"), map[string]any{"room_id": room, "by": mary.id, "result": "ok"}) {
		t.Error("no audit entry for the exposure")
	}
	alice.mustJoin(announced.ToAddr, "Alice")
	mary.waitEvent("Alice's puppet joining", isMembership(room, puppetOf("alice@"+v.XMPPDomain), event.MembershipJoin))

	// Unexposed: Alice is removed, cannot come back, m.bridge is cleared.
	mark := alice.mark()
	mary.command(room, "unexpose", "closed to XMPP")
	alice.waitFrom(mark, "removal on unexpose", isRemoval(occ(muc, "Alice"), xmpp.StatusSelf))
	mary.waitEvent("Alice's puppet leaving", isMembership(room, puppetOf("alice@"+v.XMPPDomain), event.MembershipLeave))
	alice.mustBeRefused(muc, "Alice", stanza.Forbidden, "join after unexpose")
	if state = mary.bridgeState(room, muc); state.Channel.ID != "" {
		t.Errorf("m.bridge after unexpose: %+v; want it cleared", state)
	}

	// A bot without the power to set state says so instead of failing
	// silently.
	other, _ := mary.createRoom("weak", "Weak", "")
	if _, err = mary.c.InviteUser(ctx(t), other, &mautrix.ReqInviteUser{UserID: botID()}); err != nil {
		t.Fatal(err)
	}
	mary.waitEvent("the bot joining", isMembership(other, botID(), event.MembershipJoin))
	mary.command(other, "expose", "could not mark the room as bridged")
}

// TestE2EDomains: a denied XMPP domain gets forbidden for everything that
// would reveal or change a room, and never gets a puppet; a room's own
// domain lists remove and readmit users.
func TestE2EDomains(t *testing.T) {
	v := need(t)
	mary, room, muc := v.newRoom(t, "Mary", "domains", "Domains", "")
	eve := v.newXMPPClientAt(t, "eve", "denied.test", "d")

	eve.mustBeRefused(muc, "Eve", stanza.Forbidden, "join from a denied domain")
	mark := eve.mark()
	msgID := eve.groupchat(muc, "from a denied domain")
	if c := eve.messageError(mark, msgID); c != stanza.Forbidden {
		t.Errorf("message from a denied domain: %s; want forbidden", c)
	}
	if r := eve.iq(muc, xmpp.TypeGet, &xmpp.DiscoInfo{}); r.Type != xmpp.TypeError || r.Error.Condition != stanza.Forbidden {
		t.Errorf("disco#info from a denied domain: %s %v; want forbidden", r.Type, r.Error)
	}
	maryJID, err := jid.New(mary.id.Localpart()+"#"+v.HSDomain, v.CompDomain, "")
	if err != nil {
		t.Fatal(err)
	}
	mark = eve.mark()
	eve.send(&xmpp.Message{ID: "dm1", Type: xmpp.TypeChat, To: xmpp.A(maryJID), Body: "hello"})
	if c := eve.messageError(mark, "dm1"); c != stanza.Forbidden {
		t.Errorf("direct message from a denied domain: %s; want forbidden", c)
	}
	if _, err := mary.c.GetProfile(ctx(t), puppetOf("eve@denied.test")); !errors.Is(err, mautrix.MNotFound) {
		t.Errorf("profile of a denied user's puppet: %v; want M_NOT_FOUND (no puppet)", err)
	}
	if !hasAudit(auditEntries(t, "stanza"), map[string]any{"jid": eve.jid.String(), "result": "refused"}) {
		t.Error("no audit entry for the refused stanzas")
	}

	// The room denies xmpp.test: Alice is removed and refused.
	alice := v.newXMPPClient(t, "alice", "dom")
	alice.mustJoin(muc, "Alice")
	mark = alice.mark()
	mary.command(room, "deny-domain xmpp.test", "Domains refused in this room: xmpp.test")
	alice.waitFrom(mark, "removal of a denied domain", isRemoval(occ(muc, "Alice"), xmpp.StatusKicked))
	alice.mustBeRefused(muc, "Alice", stanza.Forbidden, "join from a domain the room denies")
	mary.command(room, "deny-domain", "Domains refused in this room: xmpp.test")
	mary.command(room, "deny-domain -xmpp.test", "no domains of its own refused")
	alice.mustJoin(muc, "Alice")

	// Only other.test allowed: Alice goes again; lifting it lets her in.
	mark = alice.mark()
	mary.command(room, "allow-domain *.other.test", "Domains allowed in this room: *.other.test")
	alice.waitFrom(mark, "removal of a domain not allowed", isRemoval(occ(muc, "Alice"), xmpp.StatusKicked))
	mary.command(room, "allow-domain -*.other.test", "no domains of its own allowed")
	alice.mustJoin(muc, "Alice")

	// Bad input gets usage or a reason, and changes nothing.
	mary.command(room, "deny-domain two words", "Usage: `deny-domain")
	mary.command(room, "deny-domain bad..domain", "Failed:")
	mary.command(room, "allow-domain", "no domains of its own allowed")
}

// TestE2EAdminCommands: the bot's admin commands from Matrix (a direct
// chat, no prefix) and as XEP-0050 ad-hoc commands, refused to others.
func TestE2EAdminCommands(t *testing.T) {
	v := need(t)
	mary, room, muc := v.newRoom(t, "Mary", "admin", "Admin", "")
	admin := v.matrixUser(t, "opsadmin", "Ops")
	dm := admin.directChat()

	// Who is in a room, with their XMPP addresses, is for its members and
	// the bridge's admins: not for any user of the homeserver.
	name, server, err := (xmpp.Scheme{Domain: jid.MustParse(v.CompDomain)}).ParseRoomJID(muc)
	if err != nil {
		t.Fatal(err)
	}
	alias := "#" + name + ":" + server
	stranger := v.newMatrixUser(t, "stranger", "Stranger")
	stranger.ask(stranger.directChat(), "occupants "+alias, "You may not run `occupants`")
	mary.command(room, "occupants", "No XMPP user is in this room")
	admin.ask(dm, "occupants "+alias, "No XMPP user is in this room")

	admin.ask(dm, "help", "forget <jid>")
	admin.ask(dm, "status", "Direct chats:")
	admin.ask(dm, "rooms", xmpp.URI(muc, "join"))
	admin.ask(dm, "ping", "round trip")
	admin.ask(dm, "frobnicate", "Unknown command")
	admin.ask(dm, "kick", "Usage: `kick <jid>`")
	admin.ask(dm, "kick not a jid", "Usage:")
	admin.ask(dm, "kick @nope", "is not a JID")

	// A user who is not an admin: refused, and audited.
	mary.command(room, "status", "You may not run `status`: it needs admin rights")
	maryDM := mary.directChat()
	mary.ask(maryDM, "ban carol@xmpp.test", "You may not run `ban`")
	if !hasAudit(auditEntries(t, "command"), map[string]any{"command": "ban", "by": mary.id, "result": "denied"}) {
		t.Error("no audit entry for the refused ban")
	}
	help := mary.ask(maryDM, "help", "Commands")
	if strings.Contains(help, "forget") {
		t.Errorf("help for a user lists admin commands: %q", help)
	}

	// Ban: Carol is removed everywhere and kept out until unbanned.
	carol := v.newXMPPClient(t, "carol", "adm")
	carol.mustJoin(muc, "Carol")
	mark := carol.mark()
	admin.ask(dm, "ban carol@xmpp.test", "removed from 1 room(s)")
	carol.waitFrom(mark, "ban presence", isRemoval(occ(muc, "Carol"), xmpp.StatusBanned))
	mary.waitEvent("Carol's puppet leaving", isMembership(room, puppetOf("carol@"+v.XMPPDomain), event.MembershipLeave))
	carol.mustBeRefused(muc, "Carol", stanza.Forbidden, "join of a banned user")
	admin.ask(dm, "unban carol@xmpp.test", "may use the bridge again")
	carol.mustJoin(muc, "Carol")
	if !hasAudit(auditEntries(t, "command"), map[string]any{"command": "ban", "by": admin.id, "result": "ok"}) {
		t.Error("no audit entry for the ban")
	}

	// XEP-0050: Erin is an XMPP admin, Alice is not.
	comp := jid.MustParse(v.CompDomain)
	erin := v.newXMPPClient(t, "erin", "adm")
	alice := v.newXMPPClient(t, "alice", "adm")
	listCommands := func(c *xmppClient) []string {
		r := c.iq(comp, xmpp.TypeGet, &xmpp.DiscoItems{Node: xmpp.NSCommands})
		if r.Type != xmpp.TypeResult {
			t.Fatalf("listing commands: %v", r.Error)
		}
		var items xmpp.DiscoItems
		if err := r.Payload.Decode(&items); err != nil {
			t.Fatal(err)
		}
		var nodes []string
		for _, it := range items.Items {
			nodes = append(nodes, it.Node)
		}
		return nodes
	}
	if nodes := listCommands(erin); !strings.Contains(strings.Join(nodes, " "), "status") {
		t.Errorf("commands offered to an admin: %v", nodes)
	}
	if nodes := listCommands(alice); len(nodes) != 0 {
		t.Errorf("commands offered to a non-admin: %v", nodes)
	}
	run := func(c *xmppClient, cmd *xmpp.Command) *xmpp.IQ {
		return c.iq(comp, xmpp.TypeSet, cmd)
	}
	if r := run(alice, &xmpp.Command{Node: "status", Action: "execute"}); r.Type != xmpp.TypeError || r.Error.Condition != stanza.Forbidden {
		t.Errorf("ad-hoc status by a non-admin: %s %v; want forbidden", r.Type, r.Error)
	}
	decode := func(r *xmpp.IQ) *xmpp.Command {
		t.Helper()
		if r.Type != xmpp.TypeResult {
			t.Fatalf("ad-hoc command: %v", r.Error)
		}
		var cmd xmpp.Command
		if err := r.Payload.Decode(&cmd); err != nil {
			t.Fatal(err)
		}
		return &cmd
	}
	status := decode(run(erin, &xmpp.Command{Node: "status", Action: "execute"}))
	if status.Status != "completed" || len(status.Notes) == 0 || !strings.Contains(status.Notes[0].Text, "Portals:") {
		t.Errorf("ad-hoc status: %+v", status)
	}
	// kick asks for the JID in a form first.
	form := decode(run(erin, &xmpp.Command{Node: "kick", Action: "execute"}))
	if form.Status != "executing" || form.Form == nil || len(form.Form.Fields) != 1 || form.Form.Fields[0].Var != "jid" {
		t.Fatalf("ad-hoc kick, first stage: %+v", form)
	}
	mark = carol.mark()
	done := decode(run(erin, &xmpp.Command{Node: "kick", SessionID: form.SessionID, Action: "complete",
		Form: &xmpp.CommandForm{Type: "submit", Fields: []xmpp.CommandFormField{{Var: "jid", Values: []string{"carol@xmpp.test"}}}}}))
	if done.Status != "completed" || len(done.Notes) == 0 || !strings.Contains(done.Notes[0].Text, "Removed carol@xmpp.test from 1 room(s)") {
		t.Errorf("ad-hoc kick: %+v", done)
	}
	carol.waitFrom(mark, "kick presence", isRemoval(occ(muc, "Carol"), xmpp.StatusKicked))
	if !hasAudit(auditEntries(t, "command"), map[string]any{"command": "kick", "by": "erin@xmpp.test", "result": "ok"}) {
		t.Error("no audit entry for the ad-hoc kick")
	}
}

// TestE2EForgetAndNoBodies: after a conversation, forget erases every
// database row that names the XMPP user; neither the database nor the
// log ever held the messages' text; the metrics counted them.
func TestE2EForgetAndNoBodies(t *testing.T) {
	v := need(t)
	mary, room, muc := v.newRoom(t, "Mary", "privacy", "Privacy", "")
	frank := v.newXMPPClient(t, "frank", "priv")
	frank.mustJoin(muc, "Frank")
	puppet := puppetOf("frank@" + v.XMPPDomain)
	mary.waitEvent("Frank's puppet joining", isMembership(room, puppet, event.MembershipJoin))
	toMatrixBefore := metric(t, `mxpp_bridged_total{direction="xmpp_to_matrix",type="text"}`)

	// Both ways, with a reaction and an edit, so that every mapping exists.
	secretX := "zebra-x-" + xmpp.RandomID()
	secretM := "zebra-m-" + xmpp.RandomID()
	mark := frank.mark()
	sent := frank.groupchat(muc, secretX)
	frank.waitFrom(mark, "reflection", isGroupchat(occ(muc, "Frank"), secretX))
	mary.waitEvent("Frank's message", isMessage(room, puppet, secretX))
	frank.send(&xmpp.Message{Type: xmpp.TypeGroupchat, To: xmpp.A(muc), Body: secretX + " (fixed)", Replace: &xmpp.Replace{ID: sent}})
	mary.waitEvent("Frank's edit", func(evt *event.Event) bool {
		return evt.RoomID == room && evt.Sender == puppet && strings.Contains(evt.Content.AsMessage().Body, "(fixed)")
	})
	target := mary.say(room, secretM)
	frank.waitFrom(mark, "Mary's message", isGroupchat(occ(muc, "Mary"), secretM))
	frank.send(&xmpp.Message{Type: xmpp.TypeGroupchat, To: xmpp.A(muc), Reactions: &xmpp.Reactions{ID: target.String(), Reactions: []string{"👍"}}})
	mary.waitEvent("Frank's reaction", func(evt *event.Event) bool {
		return evt.RoomID == room && evt.Type == event.EventReaction && evt.Sender == puppet
	})
	if got := metric(t, `mxpp_bridged_total{direction="xmpp_to_matrix",type="text"}`); got < toMatrixBefore+1 {
		t.Errorf("xmpp_to_matrix text counter: %v, was %v", got, toMatrixBefore)
	}
	if got := metric(t, `mxpp_bridged_total{direction="matrix_to_xmpp",type="text"}`); got < 1 {
		t.Errorf("matrix_to_xmpp text counter: %v", got)
	}
	if got := metric(t, "mxpp_xmpp_connected"); got != 1 {
		t.Errorf("mxpp_xmpp_connected: %v", got)
	}

	names := []string{"frank@" + v.XMPPDomain, puppet.String()}
	mentions := func() []string {
		var out []string
		for _, row := range dbRows(t) {
			for _, n := range names {
				if strings.Contains(row, n) {
					out = append(out, row)
				}
			}
		}
		return out
	}
	if len(mentions()) == 0 {
		t.Fatal("no database row names Frank before forget; the check below would prove nothing")
	}

	// No text in the database (its rows, and its files on SQLite) or the
	// log, at any level we run.
	for _, row := range dbRows(t) {
		for _, secret := range []string{secretX, secretM} {
			if strings.Contains(row, secret) {
				t.Errorf("a database row holds a message text: %s", row)
			}
		}
	}
	files, _ := filepath.Glob(filepath.Join(v.Dir, "mxpp.db*"))
	files = append(files, filepath.Join(v.Dir, "bridge.log"), filepath.Join(v.Dir, "audit.log"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, secret := range []string{secretX, secretM} {
			if bytes.Contains(data, []byte(secret)) {
				t.Errorf("%s holds a message text", filepath.Base(f))
			}
		}
	}

	admin := v.matrixUser(t, "opsadmin", "Ops")
	dm := admin.directChat()
	mark = frank.mark()
	admin.ask(dm, "forget frank@xmpp.test", "Forgot frank@xmpp.test: removed from 1 room(s)")
	frank.waitFrom(mark, "removal on forget", isRemoval(occ(muc, "Frank"), xmpp.StatusSelf))
	if rows := mentions(); len(rows) != 0 {
		t.Errorf("rows naming Frank after forget:\n%s", strings.Join(rows, "\n"))
	}
	if !hasAudit(auditEntries(t, "forget"), map[string]any{"jid": "frank@xmpp.test", "result": "ok"}) {
		t.Error("no audit entry for forget")
	}
}

// isNotice matches a notice of the bot in a room that contains text.
// announcedURI finds the xmpp: URI in a text and parses it as an XMPP
// client would, with mellium's RFC 5122 parser.
func announcedURI(t *testing.T, text string) *uri.URI {
	t.Helper()
	i := strings.Index(text, "xmpp:")
	if i < 0 {
		t.Fatalf("no xmpp: URI in %q", text)
	}
	end := strings.IndexFunc(text[i:], func(r rune) bool { return r == ' ' || r == ')' || r == '\n' })
	if end < 0 {
		end = len(text) - i
	}
	u, err := uri.Parse(text[i : i+end])
	if err != nil {
		t.Fatalf("the URI in %q does not parse: %v", text, err)
	}
	return u
}

func isNotice(room id.RoomID, text string) func(*event.Event) bool {
	return func(evt *event.Event) bool {
		msg := evt.Content.AsMessage()
		return evt.RoomID == room && evt.Sender == botID() && evt.Type == event.EventMessage &&
			msg.MsgType == event.MsgNotice && strings.Contains(msg.Body, text)
	}
}

// TestE2EPublicAndOffExposure: with exposure public, every public room with
// an alias is reachable without the bot being invited; with off, none is.
func TestE2EPublicAndOffExposure(t *testing.T) {
	v := need(t)
	mary := v.newMatrixUser(t, "mary", "Mary")
	userSeq.n++
	local := fmt.Sprintf("open%d", userSeq.n)
	alias := id2alias(local, v.HSDomain)
	resp, err := mary.c.CreateRoom(ctx(t), &mautrix.ReqCreateRoom{
		Visibility: "public", Preset: "public_chat", RoomAliasName: local, Name: "Open room", Topic: "Anyone may come",
		PowerLevelOverride: &event.PowerLevelsEventContent{Users: map[id.UserID]int{mary.id: 100, botID(): 50}},
	})
	if err != nil {
		t.Fatal(err)
	}
	room, muc := resp.RoomID, mucJID(t, alias)
	alice := v.newXMPPClient(t, "alice", "pub")
	alice.mustBeRefused(muc, "Alice", stanza.Forbidden, "join of a public room under opt-in")

	v.restartBridgeWith(t, "public")
	defer v.restartBridgeWith(t, "opt-in")
	// Described from the room directory, before anyone joins.
	info := decodeInfo(t, alice.iq(muc, xmpp.TypeGet, &xmpp.DiscoInfo{}))
	if info.Identities[0].Name != "Open room" || !hasFeature(info, "muc_public") {
		t.Errorf("disco#info of a public room: %+v", info)
	}
	res := alice.mustJoin(muc, "Alice")
	if res.subject.Subject == nil || *res.subject.Subject != "Anyone may come" {
		t.Errorf("subject %+v", res.subject.Subject)
	}
	mary.waitEvent("Alice's puppet joining", isMembership(room, puppetOf("alice@"+v.XMPPDomain), event.MembershipJoin))
	mary.waitEvent("the bot's announcement", isNotice(room, "now reachable from XMPP as "+muc.String()+" ("+xmpp.URI(muc, "join")+")"))
	alice.groupchat(muc, "hello public room")
	mary.waitEvent("Alice's message", isMessage(room, puppetOf("alice@"+v.XMPPDomain), "hello public room"))
	mary.command(room, "expose", `exposure "public": rooms are not exposed one by one`)
	if state := mary.bridgeState(room, muc); state.Channel.ID != muc.String() {
		t.Errorf("m.bridge of a room opened by exposure public: %+v", state)
	}

	// A room that is not public stays closed.
	_, err = mary.c.CreateRoom(ctx(t), &mautrix.ReqCreateRoom{Preset: "private_chat", RoomAliasName: fmt.Sprintf("closed%d", userSeq.n)})
	if err != nil {
		t.Fatal(err)
	}
	closed := mucJID(t, id.RoomAlias(fmt.Sprintf("#closed%d:%s", userSeq.n, v.HSDomain)))
	alice.mustBeRefused(closed, "Alice", stanza.RegistrationRequired, "join of an invite-only room under public")

	// Switched off: Alice, still in the room, is removed; nothing crosses.
	mark := alice.mark()
	v.restartBridgeWith(t, "off")
	alice.waitFrom(mark, "removal when the bridge is switched off", func(v any) bool {
		p, ok := v.(*xmpp.Presence)
		return ok && p.From.Equal(occ(muc, "Alice")) && p.Type == xmpp.TypeUnavailable &&
			p.MUCUser != nil && p.MUCUser.Destroy != nil
	})
	mary.waitEvent("the bot's farewell", isNotice(room, "no longer reachable from XMPP"))
	unread := mary.say(room, "nobody on XMPP reads this")
	other := v.newXMPPClient(t, "bob", "pub")
	other.mustBeRefused(muc, "Bob", stanza.Forbidden, "join under exposure off")
	if !hasAudit(auditEntries(t, "close"), map[string]any{"room_id": room, "exposure": "off"}) {
		t.Error("no audit entry for closing the room")
	}
	if state := mary.bridgeState(room, muc); state.Channel.ID != "" {
		t.Errorf("m.bridge after switching off: %+v", state)
	}
	v.waitHandled(t, unread)
	alice.barrier()
	if got := alice.groupchatBodies(mark, occ(muc, "Mary")); len(got) != 0 {
		t.Errorf("messages crossed while switched off: %q", got)
	}
}

// TestE2ENoneLevel: a Matrix user at permission level none has nothing of
// theirs cross to XMPP (messages, reactions, deletions, typing, read
// markers), and cannot make the bridge invite anyone on XMPP.
func TestE2ENoneLevel(t *testing.T) {
	v := need(t)
	mary, room, muc := v.newRoom(t, "Mary", "none", "None", "")
	muted := v.matrixUser(t, "muted", "Muted")
	muted.join(room)
	alice := v.newXMPPClient(t, "alice", "none")
	alice.mustJoin(muc, "Alice")
	mary.waitEvent("Alice's puppet joining", isMembership(room, puppetOf("alice@"+v.XMPPDomain), event.MembershipJoin))
	mark := alice.mark()
	target := mary.say(room, "a message to react to")
	alice.waitFrom(mark, "Mary's message", isGroupchat(occ(muc, "Mary"), "a message to react to"))

	bob, erin := v.newXMPPClient(t, "bob", "none"), v.newXMPPClient(t, "erin", "none")
	bobMark, erinMark := bob.mark(), erin.mark()
	own := muted.say(room, "this stays on Matrix")
	if _, err := muted.c.SendReaction(ctx(t), room, target, "👍"); err != nil {
		t.Fatal(err)
	}
	if _, err := muted.c.RedactEvent(ctx(t), room, own); err != nil {
		t.Fatal(err)
	}
	if _, err := muted.c.UserTyping(ctx(t), room, true, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := muted.c.SendReceipt(ctx(t), room, target, event.ReceiptTypeRead, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := muted.c.InviteUser(ctx(t), room, &mautrix.ReqInviteUser{UserID: puppetOf("bob@" + v.XMPPDomain)}); err != nil {
		t.Fatal(err)
	}
	// Mary's typing, marker message and invitation come after all of it:
	// once they arrived, anything of the muted user's would have too.
	if _, err := mary.c.UserTyping(ctx(t), room, true, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	alice.waitFrom(mark, "Mary typing", func(v any) bool {
		m, ok := v.(*xmpp.Message)
		return ok && m.From.Equal(occ(muc, "Mary")) && m.Composing != nil
	})
	if _, err := mary.c.InviteUser(ctx(t), room, &mautrix.ReqInviteUser{UserID: puppetOf("erin@" + v.XMPPDomain)}); err != nil {
		t.Fatal(err)
	}
	mary.say(room, "the marker")
	alice.waitFrom(mark, "the marker", isGroupchat(occ(muc, "Mary"), "the marker"))
	for _, st := range alice.since(mark) {
		if m, ok := st.(*xmpp.Message); ok && m.From.Equal(occ(muc, "Muted")) {
			t.Errorf("something of a user at level none reached XMPP: %+v", m)
		}
		if m, ok := st.(*xmpp.Message); ok && (m.Retract != nil || m.Reactions != nil) {
			t.Errorf("a retraction or reaction reached XMPP: %+v", m)
		}
	}
	// Erin's invitation came after any for Bob would have; a round trip
	// to Bob's server then shows all Bob's stream held before.
	erin.waitFrom(erinMark, "Mary's invitation of Erin", func(v any) bool { m, ok := v.(*xmpp.Message); return ok && m.DirectInvite != nil })
	if r := bob.iq(jid.MustParse(v.XMPPDomain), xmpp.TypeGet, &pingPayload{}); r.Type != xmpp.TypeResult {
		t.Fatalf("ping of Bob's server: %v", r.Error)
	}
	for _, st := range bob.since(bobMark) {
		if m, ok := st.(*xmpp.Message); ok && m.DirectInvite != nil {
			t.Errorf("a user at level none made the bridge invite bob: %+v", m)
		}
	}
}

// TestE2EPrivacyReport: the privacy report, from the binary while the
// bridge runs (Markdown and JSON) and from the bot for its admins, follows
// the database (a room exposed just now) and the config (a domain denied
// in the file shows up at the next report).
func TestE2EPrivacyReport(t *testing.T) {
	v := need(t)
	_, room, muc := v.newRoom(t, "Mary", "privacy", "Privacy", "")
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(v.Bin, append([]string{"privacy-report", "-c", v.Config}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("mxpp privacy-report %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	exposure := v.exposure
	if exposure == "" {
		exposure = "opt-in"
	}
	md := run()
	for _, want := range []string{"# Privacy report: " + v.HSDomain, "Exposure `" + exposure + "`",
		"MUC `" + muc.String() + "`", "denied: `denied.test`", "`erin@xmpp.test`", filepath.Join(v.Dir, "audit.log"), "| `message` |"} {
		if !strings.Contains(md, want) {
			t.Errorf("the report lacks %q:\n%s", want, md)
		}
	}
	var report struct {
		Rooms []struct {
			RoomID    id.RoomID `json:"room_id"`
			Reachable bool      `json:"reachable"`
		} `json:"rooms"`
		XMPPDomains struct {
			Denied []string `json:"denied"`
		} `json:"xmpp_domains"`
	}
	if err := json.Unmarshal([]byte(run("-json")), &report); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range report.Rooms {
		found = found || r.RoomID == room && r.Reachable
	}
	if !found {
		t.Errorf("the JSON report lacks the exposed room %s: %+v", room, report.Rooms)
	}

	// A key changed in the file is in the next report.
	cfg, err := os.ReadFile(v.Config)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.WriteFile(v.Config, cfg, 0o600) })
	changed := strings.Replace(string(cfg), "denied_domains: [denied.test]", "denied_domains: [denied.test, worse.example]", 1)
	if changed == string(cfg) {
		t.Fatal("the config has no denied_domains line to change")
	}
	if err = os.WriteFile(v.Config, []byte(changed), 0o600); err != nil {
		t.Fatal(err)
	}
	if md = run(); !strings.Contains(md, "denied: `denied.test`, `worse.example`") {
		t.Errorf("after the config change the report says:\n%s", md)
	}

	// The bot's admins get it in Matrix; others may not.
	admin := v.matrixUser(t, "opsadmin", "Ops")
	admin.ask(admin.directChat(), "privacy", "MUC `"+muc.String()+"`")
	stranger := v.newMatrixUser(t, "curious", "Curious")
	stranger.ask(stranger.directChat(), "privacy", "You may not run `privacy`")
}
