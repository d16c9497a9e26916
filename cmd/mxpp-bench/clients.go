package main

import (
	"context"
	"encoding/xml"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"mellium.im/sasl"
	"mellium.im/xmlstream"
	mellium "mellium.im/xmpp"
	"mellium.im/xmpp/jid"

	"github.com/mxpp/mxpp/xmpp"
)

// arrivals records when each message body first arrived at each receiver.
type arrivals struct {
	mu   sync.Mutex
	at   map[string]map[string]time.Time // body → receiver → time
	seq  map[string][]string             // receiver+room → bodies in arrival order
	wake chan struct{}
}

func newArrivals() *arrivals {
	return &arrivals{at: map[string]map[string]time.Time{}, seq: map[string][]string{}, wake: make(chan struct{}, 1)}
}

func (a *arrivals) add(receiver, room, body string, t time.Time) {
	a.mu.Lock()
	if a.at[body] == nil {
		a.at[body] = map[string]time.Time{}
	}
	if _, dup := a.at[body][receiver]; !dup {
		a.at[body][receiver] = t
	}
	a.seq[receiver+" "+room] = append(a.seq[receiver+" "+room], body)
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// count returns how many (body, receiver) pairs with the prefix arrived.
func (a *arrivals) count(prefix string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for body, rs := range a.at {
		if strings.HasPrefix(body, prefix) {
			n += len(rs)
		}
	}
	return n
}

// first is the earliest arrival of a body with the prefix at a receiver
// whose name contains who.
func (a *arrivals) first(prefix, who string) (time.Time, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var at time.Time
	for body, rs := range a.at {
		if !strings.HasPrefix(body, prefix) {
			continue
		}
		for r, t := range rs {
			if strings.Contains(r, who) && (at.IsZero() || t.Before(at)) {
				at = t
			}
		}
	}
	return at, !at.IsZero()
}

// waitFor waits until want pairs with the prefix arrived, or the timeout.
func (a *arrivals) waitFor(prefix string, want int, timeout time.Duration) error {
	deadline := time.After(timeout)
	for a.count(prefix) < want {
		select {
		case <-a.wake:
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			return fmt.Errorf("%d of %d %s* messages arrived in %s", a.count(prefix), want, prefix, timeout)
		}
	}
	return nil
}

// xmppClient is a c2s client that records groupchat bodies.
type xmppClient struct {
	s    *mellium.Session
	conn net.Conn
	jid  jid.JID
	rec  *arrivals

	mu     sync.Mutex
	joined map[string]bool // rooms whose self-presence arrived
}

// dialXMPP logs in. Plain TCP on loopback, so the session is marked secure
// to let SASL proceed; never do this outside a benchmark.
func dialXMPP(addr, user, domain string, rec *arrivals) (*xmppClient, error) {
	origin := jid.MustParse(user + "@" + domain + "/bench")
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	neg := mellium.NewNegotiator(func(*mellium.Session, *mellium.StreamConfig) mellium.StreamConfig {
		return mellium.StreamConfig{Features: []mellium.StreamFeature{
			mellium.SASL("", user+"pw", sasl.ScramSha1, sasl.Plain), mellium.BindResource()}}
	})
	s, err := mellium.NewSession(context.Background(), origin.Domain(), origin, conn, mellium.Secure, neg)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("logging in %s: %w", origin, err)
	}
	c := &xmppClient{s: s, conn: conn, jid: s.LocalAddr(), rec: rec, joined: map[string]bool{}}
	go func() { _ = s.Serve(mellium.HandlerFunc(c.handle)) }()
	return c, c.send(&xmpp.Presence{})
}

func (c *xmppClient) handle(t xmlstream.TokenReadEncoder, start *xml.StartElement) error {
	now := time.Now()
	if start.Name.Local == "iq" {
		var iq xmpp.IQ
		if err := xml.NewTokenDecoder(xmlstream.MultiReader(xmlstream.Token(*start), t)).Decode(&iq); err == nil &&
			iq.Type == xmpp.TypeGet && iq.Payload.XMLName.Space == xmpp.NSPing {
			return t.Encode(&xmpp.IQ{ID: iq.ID, Type: xmpp.TypeResult, To: iq.From})
		}
		return nil
	}
	if start.Name.Local == "presence" {
		var p xmpp.Presence
		if err := xml.NewTokenDecoder(xmlstream.MultiReader(xmlstream.Token(*start), t)).Decode(&p); err == nil && p.MUCUser != nil {
			for _, st := range p.MUCUser.Status {
				if st.Code == xmpp.StatusSelf {
					c.mu.Lock()
					c.joined[p.From.Bare().String()] = p.Type == ""
					c.mu.Unlock()
				}
			}
		}
		return nil
	}
	if start.Name.Local != "message" {
		return nil
	}
	var m xmpp.Message
	if err := xml.NewTokenDecoder(xmlstream.MultiReader(xmlstream.Token(*start), t)).Decode(&m); err != nil {
		return nil
	}
	if m.Body != "" && m.Type != xmpp.TypeError {
		c.rec.add(c.jid.String(), m.From.Bare().String(), m.Body, now)
	}
	return nil
}

// send writes a stanza. Its deadline is set on the connection, not
// through a context: the session turns a context's end into a write
// deadline from a goroutine of its own, which can fire after Encode
// returned and break a later write.
func (c *xmppClient) send(v any) error {
	_ = c.conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
	defer c.conn.SetWriteDeadline(time.Time{})
	return c.s.Encode(context.Background(), v)
}

// join joins a room and waits for the self-presence.
func (c *xmppClient) join(room jid.JID, nick string) error {
	to, _ := room.WithResource(nick)
	zero := 0
	if err := c.send(&xmpp.Presence{To: xmpp.A(to), MUC: &xmpp.MUCJoin{History: &xmpp.MUCHistory{MaxStanzas: &zero}}}); err != nil {
		return err
	}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		c.mu.Lock()
		ok := c.joined[room.String()]
		c.mu.Unlock()
		if ok {
			return nil
		}
	}
	return fmt.Errorf("%s: no answer to the join of %s", c.jid, room)
}

func (c *xmppClient) close() {
	_ = c.s.Close()
	_ = c.conn.Close()
}

// mxClient is a Matrix user; a syncing one records message bodies.
type mxClient struct {
	c  *mautrix.Client
	id id.UserID
}

func registerMatrix(hsURL, localpart string) (*mxClient, error) {
	c, err := mautrix.NewClient(hsURL, "", "")
	if err != nil {
		return nil, err
	}
	ctx, cancel := waitCtx(30 * time.Second)
	defer cancel()
	resp, err := c.RegisterDummy(ctx, &mautrix.ReqRegister[any]{Username: localpart, Password: "password_" + localpart})
	if err != nil {
		return nil, fmt.Errorf("registering %s: %w", localpart, err)
	}
	c.SetCredentials(resp.UserID, resp.AccessToken)
	return &mxClient{c: c, id: resp.UserID}, nil
}

// syncInto starts a sync loop recording message bodies until ctx ends.
func (m *mxClient) syncInto(ctx context.Context, rec *arrivals) {
	syncer := m.c.Syncer.(*mautrix.DefaultSyncer)
	syncer.OnEventType(event.EventMessage, func(_ context.Context, evt *event.Event) {
		now := time.Now()
		if body := evt.Content.AsMessage().Body; body != "" {
			rec.add(m.id.String(), evt.RoomID.String(), body, now)
		}
	})
	go func() {
		for ctx.Err() == nil {
			if err := m.c.SyncWithContext(ctx); err != nil && ctx.Err() == nil {
				time.Sleep(100 * time.Millisecond)
			}
		}
	}()
}

func (m *mxClient) send(room id.RoomID, body string) error {
	ctx, cancel := waitCtx(60 * time.Second)
	defer cancel()
	_, err := m.c.SendText(ctx, room, body)
	return err
}
