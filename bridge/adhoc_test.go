package bridge

import (
	"context"
	"slices"
	"strings"
	"testing"

	"mellium.im/xmpp/stanza"

	"github.com/mxpp/mxpp/xmpp"
	"github.com/mxpp/mxpp/xmpp/xmpptest"
)

// adhocBridge is a route bridge whose component is connected to a fake
// XMPP server, with admin@xmpp.test as its one XMPP admin.
func adhocBridge(t *testing.T) (*routeBridge, *xmpptest.Server) {
	t.Helper()
	srv := xmpptest.NewServer(t, "matrix.xmpp.test", "s")
	rb := newRouteBridge(t, func(c *Config) {
		c.XMPP.Server = srv.Addr()
		c.XMPP.Admins = []string{"admin@xmpp.test"}
	})
	ctx, cancel := context.WithCancel(rb.ctx)
	done := make(chan struct{})
	go func() { _ = rb.XMPP.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	if err := rb.XMPP.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	return rb, srv
}

// runAdhoc runs one stage of an ad-hoc command as from and returns the
// answer, or the error the bridge answered with.
func runAdhoc(t *testing.T, srv *xmpptest.Server, from, body string) (*xmpp.Command, *stanza.Error) {
	t.Helper()
	id := xmpp.RandomID()
	srv.Send(`<iq type='set' id='` + id + `' from='` + from + `' to='matrix.xmpp.test'>` + body + `</iq>`)
	var answer struct {
		ID      string        `xml:"id,attr"`
		Type    string        `xml:"type,attr"`
		To      string        `xml:"to,attr"`
		Command *xmpp.Command `xml:"http://jabber.org/protocol/commands command"`
		Error   *stanza.Error `xml:"error"`
	}
	srv.Next(&answer)
	if answer.ID != id || answer.To != from {
		t.Fatalf("answer %+v is not to %s's iq %s", answer, from, id)
	}
	if answer.Type == "error" {
		if answer.Error == nil {
			t.Fatal("an error answer without an error")
		}
		return nil, answer.Error
	}
	if answer.Command == nil {
		t.Fatalf("answer %+v has no command", answer)
	}
	return answer.Command, nil
}

const nsCommands = `xmlns='http://jabber.org/protocol/commands'`

// TestAdhoc: XMPP admins run the bot's XMPP commands over XEP-0050, one
// that takes a JID asking for it in a form first; anyone else is refused
// and unknown or Matrix-only commands are not found.
func TestAdhoc(t *testing.T) {
	rb, srv := adhocBridge(t)
	admin, eve := "admin@xmpp.test/pc", "eve@xmpp.test/pc"

	for from, want := range map[string]bool{admin: true, eve: false} {
		srv.Send(`<iq type='get' id='items' from='` + from + `' to='matrix.xmpp.test'><query xmlns='http://jabber.org/protocol/disco#items' node='http://jabber.org/protocol/commands'/></iq>`)
		var items struct {
			Items []xmpp.DiscoItem `xml:"http://jabber.org/protocol/disco#items query>item"`
		}
		srv.Next(&items)
		if listed := slices.ContainsFunc(items.Items, func(i xmpp.DiscoItem) bool { return i.Node == "ban" }); listed != want {
			t.Errorf("%s sees the ban command listed: %v; want %v", from, listed, want)
		}
	}

	if _, serr := runAdhoc(t, srv, eve, `<command `+nsCommands+` node='version' action='execute'/>`); serr == nil || serr.Condition != stanza.Forbidden {
		t.Errorf("a non-admin's command: error %+v; want forbidden", serr)
	}
	for _, node := range []string{"nosuch", "expose"} {
		if _, serr := runAdhoc(t, srv, admin, `<command `+nsCommands+` node='`+node+`' action='execute'/>`); serr == nil || serr.Condition != stanza.ItemNotFound {
			t.Errorf("command %q: error %+v; want item-not-found", node, serr)
		}
	}
	c, serr := runAdhoc(t, srv, admin, `<command `+nsCommands+` node='version' action='execute'/>`)
	if serr != nil || c.Status != "completed" || len(c.Notes) != 1 || !strings.HasPrefix(c.Notes[0].Text, "mxpp ") || c.SessionID == "" {
		t.Errorf("version: %+v, %+v; want completed with the version and a session", c, serr)
	}

	// ban asks for the JID, then bans it in the same session.
	c, serr = runAdhoc(t, srv, admin, `<command `+nsCommands+` node='ban' action='execute'/>`)
	if serr != nil || c.Status != "executing" || c.Form == nil || len(c.Form.Fields) != 1 || c.Form.Fields[0].Var != "jid" || c.Form.Fields[0].Type != "jid-single" {
		t.Fatalf("ban without a JID: %+v, %+v; want a form asking for one", c, serr)
	}
	session := c.SessionID
	if rb.isBanned("mallory@xmpp.test") {
		t.Fatal("banned before the form was sent")
	}
	c, serr = runAdhoc(t, srv, admin, `<command `+nsCommands+` node='ban' sessionid='`+session+`' action='complete'><x xmlns='jabber:x:data' type='submit'><field var='jid'><value>mallory@xmpp.test/phone</value></field></x></command>`)
	if serr != nil || c.Status != "completed" || c.SessionID != session || len(c.Notes) != 1 {
		t.Fatalf("ban with a JID: %+v, %+v; want completed in session %s", c, serr, session)
	}
	if !rb.isBanned("mallory@xmpp.test") {
		t.Errorf("the ban command (%q) did not ban mallory@xmpp.test", c.Notes[0].Text)
	}

	c, serr = runAdhoc(t, srv, admin, `<command `+nsCommands+` node='unban' sessionid='s1' action='cancel'/>`)
	if serr != nil || c.Status != "canceled" || c.SessionID != "s1" {
		t.Errorf("cancel: %+v, %+v; want canceled in session s1", c, serr)
	}
	if !rb.isBanned("mallory@xmpp.test") {
		t.Error("a canceled unban unbanned")
	}
}
