//go:build e2e

package e2e

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmlstream"
	mellium "mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/mxpp/mxpp/xmpp"
)

// xmppClient is a logged-in XMPP client that records what it receives and
// answers pings (XEP-0199) like real clients do.
type xmppClient struct {
	t    *testing.T
	s    *mellium.Session
	conn net.Conn
	jid  jid.JID

	// ignorePings makes the client stop answering pings, like a client
	// whose device went away while its server still holds the session.
	ignorePings atomic.Bool

	mu      sync.Mutex
	stanzas []any
	wake    chan struct{}
	done    chan struct{}
}

// newXMPPClient logs in user@xmpp.test with the given resource. The
// connection is plain TCP on loopback, so the session is marked secure to
// let mellium offer SASL; never do this outside tests.
func (v *env) newXMPPClient(t *testing.T, user, resource string) *xmppClient {
	t.Helper()
	return v.newXMPPClientAt(t, user, v.XMPPDomain, resource)
}

// newXMPPClientAt logs in a user of another domain of the XMPP server.
func (v *env) newXMPPClientAt(t *testing.T, user, domain, resource string) *xmppClient {
	t.Helper()
	c, err := v.tryXMPPClient(t, user, domain, resource)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// tryXMPPClient logs in and returns an error instead of failing the test.
func (v *env) tryXMPPClient(t *testing.T, user, domain, resource string) (*xmppClient, error) {
	origin := jid.MustParse(user + "@" + domain + "/" + resource)
	conn, err := net.DialTimeout("tcp", v.C2SAddr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	neg := mellium.NewNegotiator(func(*mellium.Session, *mellium.StreamConfig) mellium.StreamConfig {
		return mellium.StreamConfig{Features: []mellium.StreamFeature{
			mellium.SASL("", user+"pw", sasl.ScramSha1, sasl.Plain), mellium.BindResource()}}
	})
	// Not canceled before the test ends: mellium breaks off the session's
	// writes when the context it was negotiated with is canceled.
	lctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	s, err := mellium.NewSession(lctx, origin.Domain(), origin, conn, mellium.Secure, neg)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("logging in %s: %w", origin, err)
	}
	c := &xmppClient{t: t, s: s, conn: conn, jid: s.LocalAddr(), wake: make(chan struct{}, 1), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		_ = s.Serve(mellium.HandlerFunc(c.handle))
	}()
	t.Cleanup(c.close)
	// Initial presence, as every client sends: without it the server does
	// not deliver messages to the bare JID (invitations) to this session.
	if err = c.encode(&xmpp.Presence{}); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

func (c *xmppClient) close() {
	_ = c.s.Close()
	_ = c.conn.Close()
	<-c.done
}

func (c *xmppClient) handle(t xmlstream.TokenReadEncoder, start *xml.StartElement) error {
	d := xml.NewTokenDecoder(xmlstream.MultiReader(xmlstream.Token(*start), t))
	var v any
	switch start.Name.Local {
	case "message":
		v = &xmpp.Message{}
	case "presence":
		v = &xmpp.Presence{}
	case "iq":
		v = &xmpp.IQ{}
	default:
		return nil
	}
	if err := d.Decode(v); err != nil {
		return nil
	}
	if iq, ok := v.(*xmpp.IQ); ok && iq.Type == xmpp.TypeGet && iq.Payload.XMLName.Space == xmpp.NSPing {
		if c.ignorePings.Load() {
			// mellium answers an unanswered IQ with service-unavailable;
			// hold the handler until the pinger gave up instead (the
			// bridge waits 5 s for an answer with the tests' 1 s interval).
			time.Sleep(6 * time.Second)
			return nil
		}
		return t.Encode(&xmpp.IQ{ID: iq.ID, Type: xmpp.TypeResult, To: iq.From})
	}
	c.mu.Lock()
	c.stanzas = append(c.stanzas, v)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return nil
}

// encode writes a stanza. Its deadline is set on the connection, not
// through a context: the session turns a context's end into a write
// deadline from a goroutine of its own, which can fire after Encode
// returned and break a later write.
func (c *xmppClient) encode(v any) error {
	_ = c.conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
	defer c.conn.SetWriteDeadline(time.Time{})
	return c.s.Encode(context.Background(), v)
}

func (c *xmppClient) send(v any) {
	c.t.Helper()
	if err := c.encode(v); err != nil {
		c.t.Fatalf("%s sending: %v", c.jid, err)
	}
}

// sendRaw writes XML as it is, for payloads the xmpp package does not write.
func (c *xmppClient) sendRaw(raw string) {
	c.t.Helper()
	_ = c.conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
	defer c.conn.SetWriteDeadline(time.Time{})
	if err := c.s.Send(context.Background(), xml.NewDecoder(strings.NewReader(raw))); err != nil {
		c.t.Fatalf("%s sending raw XML: %v", c.jid, err)
	}
}

// mark returns a position in the received stanzas; waits after it only
// look at what came later.
func (c *xmppClient) mark() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.stanzas)
}

// waitFrom waits for a stanza received at or after position from that
// matches, and returns it with its position.
func (c *xmppClient) waitFrom(from int, what string, match func(any) bool) (any, int) {
	c.t.Helper()
	wctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, pos, err := c.poll(wctx, from, match)
	if err != nil {
		c.t.Fatalf("%s: waiting for %s: %v", c.jid, what, err)
	}
	return st, pos
}

// poll waits, without failing the test, for a stanza received at or after
// position from that matches, and returns it with its position.
func (c *xmppClient) poll(ctx context.Context, from int, match func(any) bool) (any, int, error) {
	for seen := from; ; {
		c.mu.Lock()
		for ; seen < len(c.stanzas); seen++ {
			if match(c.stanzas[seen]) {
				st := c.stanzas[seen]
				c.mu.Unlock()
				return st, seen, nil
			}
		}
		c.mu.Unlock()
		select {
		case <-c.wake:
		case <-c.done:
			return nil, 0, errors.New("connection closed")
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		}
	}
}

// since returns the stanzas received at or after position from.
func (c *xmppClient) since(from int) []any {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]any(nil), c.stanzas[from:]...)
}

// iq sends an IQ and waits for the answer.
func (c *xmppClient) iq(to jid.JID, typ string, body any) *xmpp.IQ {
	c.t.Helper()
	mark := c.mark()
	id := xmpp.RandomID()
	c.send(&xmpp.IQ{ID: id, Type: typ, To: xmpp.A(to), Body: body})
	st, _ := c.waitFrom(mark, "IQ reply "+id, func(v any) bool {
		r, ok := v.(*xmpp.IQ)
		return ok && r.ID == id && (r.Type == xmpp.TypeResult || r.Type == xmpp.TypeError)
	})
	return st.(*xmpp.IQ)
}

// joinResult is what a client got for a MUC join.
type joinResult struct {
	occupants []*xmpp.Presence // presence of the others, before self
	self      *xmpp.Presence
	subject   *xmpp.Message
	err       *xmpp.Presence
}

// join joins room/nick and collects the join sequence (XEP-0045 §7.2.3):
// other occupants' presence, the self-presence with status 110, then the
// subject. A presence error ends it early.
func (c *xmppClient) join(room jid.JID, nick string) *joinResult {
	c.t.Helper()
	mark := c.mark()
	to, err := room.WithResource(nick)
	if err != nil {
		c.t.Fatal(err)
	}
	c.send(&xmpp.Presence{To: xmpp.A(to), MUC: &xmpp.MUCJoin{}})
	res := &joinResult{}
	st, pos := c.waitFrom(mark, "join of "+to.String(), func(v any) bool {
		p, ok := v.(*xmpp.Presence)
		return ok && p.From.Bare().Equal(room) && (p.Type == xmpp.TypeError || hasStatus(p, xmpp.StatusSelf))
	})
	p := st.(*xmpp.Presence)
	if p.Type == xmpp.TypeError {
		res.err = p
		return res
	}
	res.self = p
	for _, v := range c.since(mark)[:pos-mark] {
		if op, ok := v.(*xmpp.Presence); ok && op.From.Bare().Equal(room) && op.Type == "" {
			res.occupants = append(res.occupants, op)
		}
	}
	st, _ = c.waitFrom(pos, "subject of "+room.String(), func(v any) bool {
		m, ok := v.(*xmpp.Message)
		// From the room, or from the occupant who set it (XEP-0045 §8.1).
		return ok && m.From.Bare().Equal(room) && m.Subject != nil && m.Body == ""
	})
	res.subject = st.(*xmpp.Message)
	return res
}

// mustJoin joins and fails the test if the room refuses.
func (c *xmppClient) mustJoin(room jid.JID, nick string) *joinResult {
	c.t.Helper()
	res := c.join(room, nick)
	if res.err != nil {
		c.t.Fatalf("%s joining %s as %q: %v", c.jid, room, nick, res.err.Error)
	}
	return res
}

// messageError waits for the error answer to the message with id, sent
// after mark, and returns its condition.
func (c *xmppClient) messageError(mark int, id string) stanza.Condition {
	c.t.Helper()
	st, _ := c.waitFrom(mark, "error for message "+id, func(v any) bool {
		m, ok := v.(*xmpp.Message)
		return ok && m.ID == id && m.Type == xmpp.TypeError
	})
	if e := st.(*xmpp.Message).Error; e != nil {
		return e.Condition
	}
	return ""
}

// groupchatBodies returns the bodies of groupchat messages from one
// occupant JID received after mark, in order.
func (c *xmppClient) groupchatBodies(mark int, from jid.JID) []string {
	var out []string
	for _, st := range c.since(mark) {
		if m, ok := st.(*xmpp.Message); ok && m.Type == xmpp.TypeGroupchat && m.From.Equal(from) && m.Body != "" {
			out = append(out, m.Body)
		}
	}
	return out
}

func hasStatus(p *xmpp.Presence, code int) bool { return p.HasStatus(code) }

// groupchat sends a groupchat message with an origin-id and returns its id.
func (c *xmppClient) groupchat(room jid.JID, body string) string {
	id := xmpp.RandomID()
	c.send(&xmpp.Message{ID: id, Type: xmpp.TypeGroupchat, To: xmpp.A(room), Body: body, OriginID: &xmpp.OriginID{ID: "o-" + id}})
	return id
}

func isGroupchat(from jid.JID, body string) func(any) bool {
	return func(v any) bool {
		m, ok := v.(*xmpp.Message)
		return ok && m.Type == xmpp.TypeGroupchat && m.From.Equal(from) && m.Body == body
	}
}

func isPresence(from jid.JID, typ string) func(any) bool {
	return func(v any) bool {
		p, ok := v.(*xmpp.Presence)
		return ok && p.From.Equal(from) && p.Type == typ
	}
}
