//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"mellium.im/xmpp/jid"

	"github.com/mxpp/mxpp/xmpp"
)

// tcpProxy forwards TCP connections to a target; cut drops the ones open,
// as a failing network or a restarted middlebox would. The bridge reaches
// Prosody's component port through one.
type tcpProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	conns []net.Conn
}

func startProxy(target string) (*tcpProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &tcpProxy{ln: ln, target: target}
	go p.accept()
	return p, nil
}

func (p *tcpProxy) addr() string { return p.ln.Addr().String() }

func (p *tcpProxy) accept() {
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			in.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, in, out)
		p.mu.Unlock()
		go func() { _, _ = io.Copy(out, in); out.Close(); in.Close() }()
		go func() { _, _ = io.Copy(in, out); in.Close(); out.Close() }()
	}
}

// cut closes every connection through the proxy.
func (p *tcpProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		_ = c.(*net.TCPConn).SetLinger(0)
		_ = c.Close()
	}
	p.conns = nil
}

func (p *tcpProxy) close() {
	_ = p.ln.Close()
	p.cut()
}

// tryJoin joins a room, asking for recent history, and waits for the
// self-presence.
func (c *xmppClient) tryJoin(room jid.JID, nick string) error {
	to, err := room.WithResource(nick)
	if err != nil {
		return err
	}
	mark := c.mark()
	max := 100 // the bridge's history_messages in these tests
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err = c.encode(&xmpp.Presence{To: xmpp.A(to), MUC: &xmpp.MUCJoin{History: &xmpp.MUCHistory{MaxStanzas: &max}}}); err != nil {
		return err
	}
	st, _, err := c.poll(ctx, mark, func(v any) bool {
		p, ok := v.(*xmpp.Presence)
		return ok && p.From.Bare().Equal(room) && (p.Type == xmpp.TypeError || hasStatus(p, xmpp.StatusSelf))
	})
	if err != nil {
		return err
	}
	if p := st.(*xmpp.Presence); p.Type == xmpp.TypeError {
		return fmt.Errorf("join refused: %v", p.Error)
	}
	return nil
}

// streamParty is an XMPP user in a room that survives faults: it logs in
// again and re-joins whenever its connection goes.
type streamParty struct {
	v          *env
	t          *testing.T
	user, nick string
	room       jid.JID

	mu      sync.Mutex
	c       *xmppClient
	clients []*xmppClient // every connection, for what they received

	// linkBreaks says the fault breaks the bridge's link to the XMPP
	// server. A stanza written just before that may have gone through or
	// not (XEP-0114 has no acks), so the bridge sends it again with the
	// same stanza-id, which clients drop: a live repeat on one connection
	// is then no duplicate if its first copy came before the repair
	// finished and the repeat after the fault began (window: the
	// connection's stanza counts then).
	linkBreaks bool
	window     map[*xmppClient][2]int
}

// markFault notes each connection's stanza count as the fault begins
// (which = 0) or its repair ends (which = 1).
func (s *streamParty) markFault(which int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.window == nil {
		s.window = map[*xmppClient][2]int{}
	}
	for _, c := range s.clients {
		w := s.window[c]
		w[which] = c.mark()
		s.window[c] = w
	}
}

// client returns a joined client, connecting and joining as needed, until
// the deadline.
func (s *streamParty) client(deadline time.Time) (*xmppClient, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.c != nil {
		select {
		case <-s.c.done:
			s.c = nil
		default:
			return s.c, nil
		}
	}
	for {
		c, err := s.v.tryXMPPClient(s.t, s.user, s.v.XMPPDomain, "stream")
		if err == nil {
			if err = c.tryJoin(s.room, s.nick); err == nil {
				s.c = c
				s.clients = append(s.clients, c)
				return c, nil
			}
			c.close()
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s could not rejoin %s: %v", s.user, s.room, err)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// send sends numbered messages as a client with stream resumption would:
// each one, with the same id and origin-id, until its reflection arrives.
func (s *streamParty) send(prefix string, n int, pause time.Duration) error {
	deadline := time.Now().Add(2 * time.Minute)
	for i := 1; i <= n; i++ {
		body := fmt.Sprintf("%s-%d", prefix, i)
		for {
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: gave up on %s", s.user, body)
			}
			c, err := s.client(deadline)
			if err != nil {
				return err
			}
			mark := c.mark()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err = c.encode(&xmpp.Message{ID: body, Type: xmpp.TypeGroupchat, To: xmpp.A(s.room), Body: body,
				OriginID: &xmpp.OriginID{ID: body}})
			if err == nil {
				var st any
				st, _, err = c.poll(ctx, mark, func(v any) bool {
					m, ok := v.(*xmpp.Message)
					return ok && (m.ID == body && m.Type == xmpp.TypeError ||
						m.Type == xmpp.TypeGroupchat && m.From.Equal(occ(s.room, s.nick)) && m.Body == body)
				})
				if err == nil && st.(*xmpp.Message).Type == xmpp.TypeError {
					err = fmt.Errorf("error %v", st.(*xmpp.Message).Error)
				}
			}
			cancel()
			if err == nil {
				break
			}
			time.Sleep(300 * time.Millisecond)
		}
		time.Sleep(pause)
	}
	return nil
}

// arrival is a message as a client shows it, and whether it carried an
// XEP-0203 delay stamp (history, or a message the bridge knew was late).
type arrival struct {
	body    string
	stamped bool
	key     string // its stanza-id, else its body
}

// received returns the messages with a prefix that from sent to the room,
// as a client shows them: in arrival order, each stanza-id once (XEP-0359:
// a client recognises a message it got live, from history after a rejoin,
// or again after the bridge retried a delivery). A message that arrives
// live twice on one connection is a duplicate, and counted twice, unless
// it was in flight when the bridge's XMPP link broke (see linkBreaks).
func (s *streamParty) received(from jid.JID, prefix string) []arrival {
	s.mu.Lock()
	clients := append([]*xmppClient(nil), s.clients...)
	window := maps.Clone(s.window)
	s.mu.Unlock()
	var out []arrival
	seen := map[string]bool{}
	for _, c := range clients {
		live := map[string]int{} // key → 1 + index of its first live copy
		w, inWindow := window[c]
		for i, st := range c.since(0) {
			m, ok := st.(*xmpp.Message)
			if !ok || m.Type != xmpp.TypeGroupchat || !m.From.Equal(from) || !strings.HasPrefix(m.Body, prefix+"-") {
				continue
			}
			key := m.Body
			if m.StanzaID != nil {
				key = m.StanzaID.ID
			}
			dup := seen[key]
			if m.Delay == nil {
				first := live[key]
				resent := first > 0 && s.linkBreaks && inWindow && m.StanzaID != nil && first-1 < w[1] && i >= w[0]
				dup = dup && (first == 0 || resent)
				if first == 0 {
					live[key] = i + 1
				}
			}
			if dup {
				continue
			}
			seen[key] = true
			out = append(out, arrival{body: m.Body, stamped: m.Delay != nil, key: key})
		}
	}
	return out
}

// withArchive adds to what the party received of from the messages that
// the room's archive (XEP-0313) holds and the party did not get, as a
// client with an archive catches up after it reconnects: an XMPP server
// that goes down can lose a message on its way to one session after it
// took and archived it (seen with Prosody restarting: the room reflected a
// Matrix user's message to the bridge and archived it, and the reader's
// live copy never left). What the room took counts; archived copies count
// as stamped (they carry their time). Each archive entry has its own
// stanza-id, so a message the bridge sent twice still counts twice.
func (s *streamParty) withArchive(got []arrival, from jid.JID, prefix string) []arrival {
	c, err := s.client(time.Now().Add(20 * time.Second))
	if err != nil {
		s.t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, a := range got {
		seen[a.key] = true
	}
	out := slices.Clone(got)
	page := 100
	var after *string
	for q := 0; ; q++ {
		res, fin, iq := c.mamPage(s.room, &xmpp.MAMQuery{QueryID: fmt.Sprintf("catchup%d", q), Set: &xmpp.RSMSet{Max: &page, After: after}})
		if iq.Type != xmpp.TypeResult {
			s.t.Fatalf("reading %s's archive: %+v", s.room, iq.Error)
		}
		for _, r := range res {
			m := r.Forwarded.Message
			if m == nil || !m.From.Equal(from) || !strings.HasPrefix(m.Body, prefix+"-") || seen[r.ID] {
				continue
			}
			seen[r.ID] = true
			out = append(out, arrival{body: m.Body, stamped: true, key: r.ID})
		}
		if fin.Complete || len(res) == 0 {
			return out
		}
		last := res[len(res)-1].ID
		after = &last
	}
}

// sendMatrix sends numbered messages as a Matrix client does: each with
// its own transaction ID, retried until the homeserver takes it.
func (u *mxUser) sendMatrix(room id.RoomID, prefix string, n int, pause time.Duration) error {
	deadline := time.Now().Add(2 * time.Minute)
	for i := 1; i <= n; i++ {
		body := fmt.Sprintf("%s-%d", prefix, i)
		txn := fmt.Sprintf("%s-%d-%d", prefix, time.Now().UnixNano(), i)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err := u.c.SendMessageEvent(ctx, room, event.EventMessage,
				&event.MessageEventContent{MsgType: event.MsgText, Body: body}, mautrix.ReqSendEvent{TransactionID: txn})
			cancel()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("giving up on %s: %v", body, err)
			}
			time.Sleep(300 * time.Millisecond)
		}
		time.Sleep(pause)
	}
	return nil
}

// wantSequence checks that got is prefix-1 … prefix-n, each once, in order.
func wantSequence(got []string, prefix string, n int) error {
	var problems []string
	count := map[string]int{}
	for _, b := range got {
		count[b]++
	}
	for i := 1; i <= n; i++ {
		b := fmt.Sprintf("%s-%d", prefix, i)
		switch count[b] {
		case 0:
			problems = append(problems, b+" lost")
		case 1:
		default:
			problems = append(problems, fmt.Sprintf("%s %d times", b, count[b]))
		}
	}
	last := 0
	for _, b := range got {
		n, err := strconv.Atoi(strings.TrimPrefix(b, prefix+"-"))
		if err == nil && n < last {
			problems = append(problems, fmt.Sprintf("%s after %s-%d", b, prefix, last))
		}
		last = max(last, n)
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// sendThroughFault has talker (from XMPP, "x-1"…) and mary (from Matrix,
// "m-1"…) each send n numbered messages to a room, a tenth of a second
// apart, while fault breaks something after a second and recover repairs
// it; it returns once both have sent all. Until the test ends the reader
// keeps looking at its connection: it notices a lost one only when it
// looks.
func sendThroughFault(t *testing.T, talker, reader *streamParty, mary *mxUser, room id.RoomID, n int, fault, recover func()) {
	t.Helper()
	pause := 100 * time.Millisecond
	errs := make(chan error, 2)
	go func() { errs <- talker.send("x", n, pause) }()
	go func() { errs <- mary.sendMatrix(room, "m", n, pause) }()
	time.Sleep(time.Second)
	reader.markFault(0)
	fault()
	recover()
	reader.markFault(1)
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	go func() {
		for {
			if _, err := reader.client(time.Now().Add(time.Minute)); err != nil {
				return
			}
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// faultStream runs a steady numbered stream both ways through a room while
// fault breaks something and recover repairs it, then checks that every
// message arrived once and in order on the other side.
func faultStream(t *testing.T, name string, linkBreaks bool, fault, recover func()) {
	v := need(t)
	mary, room, muc := v.newRoom(t, "Mary", name, name, "")
	talker := &streamParty{v: v, t: t, user: "bob", nick: "Bob", room: muc}
	reader := &streamParty{v: v, t: t, user: "alice", nick: "Alice", room: muc, linkBreaks: linkBreaks}
	for _, p := range []*streamParty{talker, reader} {
		if _, err := p.client(time.Now().Add(20 * time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	puppet := puppetOf("bob@" + v.XMPPDomain)
	mary.waitEvent("Bob's puppet", isMembership(room, puppet, event.MembershipJoin))

	const n = 40
	sendThroughFault(t, talker, reader, mary, room, n, fault, recover)

	// Matrix → XMPP is checked against the room's timeline: Dendrite forgets
	// transaction IDs when it restarts, so a send whose answer the restart
	// cut off and that Mary's client then retried may be in the room twice;
	// the bridge must then deliver it twice, no more and no less.
	fromMary := prefixed(mary.timelineFrom(room, mary.id), "m-")
	if err := wantOnce(fromMary, "m", n); err != nil {
		t.Logf("Mary's messages in the room's timeline: %v", err)
	}

	// What the Matrix client's sync shows, and every few seconds the room's
	// timeline: sync may miss an event around a homeserver restart, the
	// timeline is the truth.
	deadline := time.Now().Add(90 * time.Second)
	var toMatrix, toXMPP error
	for round := 1; time.Now().Before(deadline); round++ {
		toMatrix = wantSequence(mary.messagesFrom(room, puppet), "x", n)
		if toMatrix != nil && round%10 == 0 {
			if wantSequence(mary.timelineFrom(room, puppet), "x", n) == nil {
				t.Logf("XMPP → Matrix: complete in the timeline, though the client's sync said: %v", toMatrix)
				toMatrix = nil
			}
		}
		toXMPP = inOrderOrStamped(reader.received(occ(muc, "Mary"), "m"), fromMary)
		if toMatrix == nil && toXMPP == nil {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if toMatrix != nil {
		t.Errorf("XMPP → Matrix: %v", toMatrix)
	}
	if toXMPP != nil {
		t.Errorf("Matrix → XMPP: %v", toXMPP)
	}
	// Nothing more arrives late: no duplicate after the check, up to a
	// marker each way sent after it.
	if err := talker.send("end", 1, 0); err != nil {
		t.Fatal(err)
	}
	mary.waitEvent("the XMPP marker", isMessage(room, puppet, "end-1"))
	if err := mary.sendMatrix(room, "end", 1, 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the Matrix marker on XMPP", func() bool { return len(reader.received(occ(muc, "Mary"), "end")) > 0 })
	if err := wantSequence(mary.timelineFrom(room, puppet), "x", n); err != nil {
		t.Errorf("XMPP → Matrix, later: %v", err)
	}
	if err := inOrderOrStamped(reader.received(occ(muc, "Mary"), "m"), fromMary); err != nil {
		t.Errorf("Matrix → XMPP, later: %v", err)
	}
}

// prefixed returns the bodies that start with prefix.
func prefixed(bodies []string, prefix string) []string {
	var out []string
	for _, b := range bodies {
		if strings.HasPrefix(b, prefix) {
			out = append(out, b)
		}
	}
	return out
}

// wantOnce checks that got holds prefix-1 … prefix-n, each at least once,
// in order.
func wantOnce(got []string, prefix string, n int) error {
	return wantSequence(slices.Compact(slices.Clone(got)), prefix, n)
}

// inOrderOrStamped checks what the bridge promises of Matrix → XMPP: every
// message of want arrives once, and in want's order, except those a
// homeserver handed over late (Dendrite redelivers an event in flight at a
// restart only after its ack_wait), which must carry a delay stamp so that
// clients can place them.
func inOrderOrStamped(got []arrival, want []string) error {
	var bodies, unstamped []string
	for _, a := range got {
		bodies = append(bodies, a.body)
		if !a.stamped {
			unstamped = append(unstamped, a.body)
		}
	}
	sorted := func(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }
	if !slices.Equal(sorted(bodies), sorted(want)) {
		return fmt.Errorf("got %d messages %v; want the %d of the origin %v", len(got), bodies, len(want), want)
	}
	// The unstamped ones are a subsequence of want.
	i := 0
	for _, b := range unstamped {
		for i < len(want) && want[i] != b {
			i++
		}
		if i == len(want) {
			return fmt.Errorf("%s arrived out of order without a delay stamp: got %v (unstamped %v); want the order %v", b, bodies, unstamped, want)
		}
		i++
	}
	return nil
}

func TestE2EFaultBridgeKilled(t *testing.T) {
	v := need(t)
	faultStream(t, "killed", true, func() { v.StopBridge(true); time.Sleep(2 * time.Second) }, func() {
		if err := v.startBridge(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestE2EFaultComponentLinkCut(t *testing.T) {
	v := need(t)
	faultStream(t, "linkcut", true, func() { v.compProxy.cut() }, func() {
		if err := v.WaitReady(30 * time.Second); err != nil {
			t.Fatal(err)
		}
	})
}

func TestE2EFaultXMPPRestart(t *testing.T) {
	v := need(t)
	faultStream(t, "xmpprestart", true, func() { v.restartXMPP(t) }, func() {
		if err := v.WaitReady(60 * time.Second); err != nil {
			t.Fatal(err)
		}
	})
}

func TestE2EFaultHomeserverRestart(t *testing.T) {
	v := need(t)
	faultStream(t, "hsrestart", false, func() { v.restartHomeserver(t) }, func() {
		if err := v.WaitReady(60 * time.Second); err != nil {
			t.Fatal(err)
		}
	})
	// Sends that failed while the homeserver was away were logged with
	// their request: never with the message in it.
	log, err := os.ReadFile(v.LogPath())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(log, []byte("Request failed")) && !bytes.Contains(log, []byte("Request canceled")) {
		t.Log("no request failed during the restart; the log check below proves little this time")
	}
	if i := bytes.Index(log, []byte(`"body":"x-`)); i >= 0 {
		t.Errorf("the bridge log holds a message text: %s", log[max(0, i-200):min(len(log), i+100)])
	}
}

// burstClients XMPP users send burstMessages each, all at once, spread
// over burstRooms rooms.
const (
	burstClients  = 50
	burstMessages = 100
	burstRooms    = 5
)

// TestE2EBurst: 50 XMPP clients send 100 messages each at once, without
// waiting for anything; every message reaches Matrix once, and each
// sender's messages stay in order.
func TestE2EBurst(t *testing.T) {
	v := need(t)
	mary := v.newMatrixUser(t, "mary", "Mary")
	var rooms []id.RoomID
	var mucs []jid.JID
	for i := range burstRooms {
		room, alias := mary.createRoom(fmt.Sprintf("burst%d", i), fmt.Sprintf("Burst %d", i), "")
		mary.expose(room)
		rooms = append(rooms, room)
		mucs = append(mucs, mucJID(t, alias))
	}
	clients := make([]*xmppClient, burstClients)
	for i := range clients {
		clients[i] = v.newXMPPClient(t, fmt.Sprintf("load%d", i), "burst")
		clients[i].mustJoin(mucs[i%burstRooms], fmt.Sprintf("Load %d", i))
	}
	for i := range clients {
		mary.waitEvent("puppet joining", isMembership(rooms[i%burstRooms], puppetOf(fmt.Sprintf("load%d@%s", i, v.XMPPDomain)), event.MembershipJoin))
	}

	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, burstClients)
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 1; n <= burstMessages; n++ {
				body := fmt.Sprintf("b%d-%d", i, n)
				err := c.encode(&xmpp.Message{ID: body, Type: xmpp.TypeGroupchat, To: xmpp.A(mucs[i%burstRooms]),
					Body: body, OriginID: &xmpp.OriginID{ID: body}})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	check := func() []string {
		var problems []string
		for i := range clients {
			got := mary.messagesFrom(rooms[i%burstRooms], puppetOf(fmt.Sprintf("load%d@%s", i, v.XMPPDomain)))
			if err := wantSequence(got, fmt.Sprintf("b%d", i), burstMessages); err != nil {
				problems = append(problems, fmt.Sprintf("load%d: %v", i, err))
			}
		}
		return problems
	}
	deadline := time.Now().Add(5 * time.Minute)
	problems := check()
	for len(problems) > 0 && time.Now().Before(deadline) {
		time.Sleep(time.Second)
		problems = check()
	}
	if len(problems) > 0 {
		t.Fatalf("%d of %d senders incomplete, e.g. %s", len(problems), burstClients, problems[0])
	}
	t.Logf("%d messages from %d clients reached Matrix in %s", burstClients*burstMessages, burstClients, time.Since(start).Round(time.Millisecond))
	// Every sender also gets the reflection of each of its messages (the
	// XMPP server may still be fanning them out).
	reflections := func(i int) int {
		return len(clients[i].groupchatBodies(0, occ(mucs[i%burstRooms], fmt.Sprintf("Load %d", i))))
	}
	deadline = time.Now().Add(time.Minute)
	for i := range clients {
		for reflections(i) < burstMessages && time.Now().Before(deadline) {
			time.Sleep(200 * time.Millisecond)
		}
		if n := reflections(i); n != burstMessages {
			t.Errorf("load%d got %d reflections; want %d", i, n, burstMessages)
		}
	}
}
