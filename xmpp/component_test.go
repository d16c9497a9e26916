package xmpp

import (
	"context"
	"encoding/xml"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"mellium.im/xmpp/stanza"

	"github.com/mxpp/mxpp/xmpp/xmpptest"
)

// fakeServer speaks the server side of XEP-0114 well enough to test the
// component: handshake, then raw stanzas both ways.
type fakeServer struct {
	t     *testing.T
	ln    net.Listener
	conns chan *serverConn
	// probes routes the probes the component sends after the handshake;
	// nil sends each back, as a server does for its only connection.
	probes func(c net.Conn, probes []*Message)

	// open holds every accepted connection until the test ends: a test
	// done with its end of a connection must not have the garbage
	// collector close it under the component.
	mu   sync.Mutex
	open []net.Conn
}

type serverConn struct {
	net.Conn
	dec *xml.Decoder
}

func newFakeServer(t *testing.T) *fakeServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeServer{t: t, ln: ln, conns: make(chan *serverConn, 4)}
	go s.accept()
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, c := range s.open {
			c.Close()
		}
	})
	return s
}

func (s *fakeServer) accept() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.open = append(s.open, c)
		s.mu.Unlock()
		go s.handshake(c)
	}
}

func (s *fakeServer) handshake(c net.Conn) {
	dec, err := xmpptest.Handshake(c, "matrix.xmpp.test", "secret")
	if err != nil {
		c.Close()
		return
	}
	var probes []*Message
	for len(probes) < probeCount {
		m := &Message{}
		if err := dec.Decode(m); err != nil || m.Probe == nil {
			s.t.Errorf("the component sent %+v (%v) where its probes should be", m, err)
			c.Close()
			return
		}
		probes = append(probes, m)
	}
	route := s.probes
	if route == nil {
		route = echoProbes
	}
	route(c, probes)
	s.conns <- &serverConn{Conn: c, dec: dec}
}

// echoProbes sends the probes back to the connection they came on.
func echoProbes(c net.Conn, probes []*Message) {
	for _, m := range probes {
		raw, _ := xml.Marshal(m)
		c.Write(raw)
	}
}

func (s *fakeServer) next() *serverConn {
	select {
	case c := <-s.conns:
		return c
	case <-time.After(10 * time.Second):
		s.t.Fatal("the component did not connect")
		return nil
	}
}

// read decodes the next stanza the component sent into v.
func (c *serverConn) read(t *testing.T, v any) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		tok, err := c.dec.Token()
		if err != nil {
			t.Fatalf("reading from the component: %v", err)
		}
		if start, ok := tok.(xml.StartElement); ok {
			if err = c.dec.DecodeElement(v, &start); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
}

type recorder struct {
	mu        sync.Mutex
	messages  []*Message
	iqs       []*IQ
	connected int
	wake      chan struct{}
}

func (r *recorder) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}
func (r *recorder) HandleMessage(_ context.Context, m *Message) {
	r.mu.Lock()
	r.messages = append(r.messages, m)
	r.mu.Unlock()
	r.poke()
}
func (r *recorder) HandlePresence(context.Context, *Presence) {}

func (r *recorder) snapshot() []*Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*Message(nil), r.messages...)
}
func (r *recorder) HandleIQ(_ context.Context, iq *IQ) {
	r.mu.Lock()
	r.iqs = append(r.iqs, iq)
	r.mu.Unlock()
	r.poke()
}
func (r *recorder) HandleConnected(context.Context) {
	r.mu.Lock()
	r.connected++
	r.mu.Unlock()
	r.poke()
}

func (r *recorder) wait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		r.mu.Lock()
		ok := cond()
		r.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-r.wake:
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func startComponent(t *testing.T) (*Component, *fakeServer, *recorder) {
	return startComponentWith(t, func(*Component) {})
}

// startComponentWith runs a component that configure set up first.
func startComponentWith(t *testing.T, configure func(*Component)) (*Component, *fakeServer, *recorder) {
	srv := newFakeServer(t)
	rec := &recorder{wake: make(chan struct{}, 1)}
	c, err := NewComponent(Config{Server: srv.ln.Addr().String(), Domain: "matrix.xmpp.test", Secret: "secret"}, rec, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	configure(c)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return c, srv, rec
}

func TestComponentBadStanzas(t *testing.T) {
	c, srv, rec := startComponent(t)
	conn := srv.next()
	if err := c.WaitConnected(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		in   string
		want stanza.Condition
	}{
		{`<message from='alice@xmpp.test/r' to='a@b@matrix.xmpp.test' id='m1'><body>x</body></message>`, stanza.JIDMalformed},
		{`<message from='alice@xmpp.test/r' to='#r#hs@matrix.xmpp.test' id='m2'><delay xmlns='urn:xmpp:delay' stamp='yesterday'/></message>`, stanza.BadRequest},
		{`<iq type='get' from='alice@xmpp.test/r' to='x@@matrix.xmpp.test' id='q1'><query xmlns='urn:x'/></iq>`, stanza.JIDMalformed},
		{`<iq type='bogus' from='alice@xmpp.test/r' to='matrix.xmpp.test' id='q2'/>`, stanza.BadRequest},
	} {
		io.WriteString(conn, tc.in)
		var reply struct {
			XMLName xml.Name
			ID      string        `xml:"id,attr"`
			Type    string        `xml:"type,attr"`
			From    string        `xml:"from,attr"`
			To      string        `xml:"to,attr"`
			Error   *stanza.Error `xml:"error"`
		}
		conn.read(t, &reply)
		if reply.Type != "error" || reply.Error == nil || reply.Error.Condition != tc.want || reply.To != "alice@xmpp.test/r" || reply.From == "" {
			t.Errorf("reply to %s = %+v; want a %s error to the sender", tc.in, reply, tc.want)
		}
	}
	// Errors and stanzas without a usable sender get no reply; the stream
	// goes on, and the next good stanza arrives.
	io.WriteString(conn, `<message type='error' from='alice@xmpp.test/r' to='q@@x' id='e'/>`)
	io.WriteString(conn, `<message from='not a jid' to='matrix.xmpp.test' id='n'/>`)
	io.WriteString(conn, `<unknown-element/>`)
	io.WriteString(conn, `<message from='alice@xmpp.test/r' to='#büro#hs.test@matrix.xmpp.test' id='ok'><body>fine</body></message>`)
	rec.wait(t, "the good message", func() bool { return len(rec.messages) > 0 })
	if m := rec.messages[0]; m.ID != "ok" || m.Body != "fine" || m.To.Localpart() != "#büro#hs.test" {
		t.Errorf("handler got %+v; want only the good message", m)
	}
}

func TestComponentIQs(t *testing.T) {
	c, srv, rec := startComponent(t)
	conn := srv.next()
	if err := c.WaitConnected(context.Background()); err != nil {
		t.Fatal(err)
	}
	// A ping to the component itself is answered by the component.
	io.WriteString(conn, `<iq type='get' from='alice@xmpp.test/r' to='matrix.xmpp.test' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>`)
	var reply IQ
	conn.read(t, &reply)
	if reply.ID != "p1" || reply.Type != TypeResult || reply.To.String() != "alice@xmpp.test/r" || reply.From.String() != "matrix.xmpp.test" {
		t.Errorf("ping reply = %+v", reply)
	}
	// Other IQs go to the handler.
	io.WriteString(conn, `<iq type='get' from='alice@xmpp.test/r' to='matrix.xmpp.test' id='d1'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
	rec.wait(t, "disco IQ", func() bool { return len(rec.iqs) == 1 })
	if rec.iqs[0].Payload.XMLName.Space != NSDiscoInfo {
		t.Errorf("handler got payload %v", rec.iqs[0].Payload.XMLName)
	}
	// SendIQ gets its result matched by id; an error comes back as an error.
	for _, answer := range []string{"result", "error"} {
		type outcome struct {
			iq  *IQ
			err error
		}
		done := make(chan outcome, 1)
		go func() {
			iq, err := c.SendIQ(context.Background(), &IQ{Type: TypeGet, From: A(c.Domain()), To: mustJID("alice@xmpp.test/r"), Body: pingQuery{}})
			done <- outcome{iq, err}
		}()
		var sent IQ
		conn.read(t, &sent)
		body := ""
		if answer == "error" {
			body = `<error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>`
		}
		io.WriteString(conn, `<iq type='`+answer+`' from='alice@xmpp.test/r' to='matrix.xmpp.test' id='`+sent.ID+`'>`+body+`</iq>`)
		got := <-done
		if answer == "result" && (got.err != nil || got.iq.ID != sent.ID) {
			t.Errorf("SendIQ = %+v, %v", got.iq, got.err)
		}
		if serr, ok := got.err.(stanza.Error); answer == "error" && (!ok || serr.Condition != stanza.ServiceUnavailable) {
			t.Errorf("SendIQ with an error reply = %v", got.err)
		}
	}
}

func TestComponentReconnects(t *testing.T) {
	c, srv, rec := startComponent(t)
	first := srv.next()
	rec.wait(t, "first connection", func() bool { return rec.connected == 1 })
	// The server ends the stream with a stream error and closes.
	io.WriteString(first, `<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>`)
	first.Close()
	second := srv.next()
	rec.wait(t, "second connection", func() bool { return rec.connected == 2 })
	if !c.Connected() {
		t.Error("not connected after reconnecting")
	}
	io.WriteString(second, `<message from='alice@xmpp.test/r' to='matrix.xmpp.test' id='after'><body>again</body></message>`)
	rec.wait(t, "message on the new connection", func() bool { return len(rec.messages) == 1 })
	// With the server gone for good, sends fail at once instead of hanging.
	srv.ln.Close()
	second.Close()
	deadline := time.Now().Add(5 * time.Second)
	for c.Connected() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if err := c.Send(context.Background(), &Message{From: A(c.Domain()), To: A(c.Domain())}); err != ErrNotConnected {
		t.Errorf("Send while disconnected = %v; want ErrNotConnected", err)
	}
}

func TestComponentWrongSecret(t *testing.T) {
	srv := newFakeServer(t)
	c, err := NewComponent(Config{Server: srv.ln.Addr().String(), Domain: "matrix.xmpp.test", Secret: "wrong"}, &recorder{wake: make(chan struct{}, 1)}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	err = c.connectAndServe(context.Background())
	if err == nil || !strings.Contains(err.Error(), "handshake") {
		t.Errorf("connecting with a wrong secret: %v; want a handshake error", err)
	}
}

func mustJID(s string) Addr {
	j, err := ParseJID(s)
	if err != nil {
		panic(err)
	}
	return A(j)
}

func TestLogRedaction(t *testing.T) {
	var buf strings.Builder
	lc := &logConn{log: zerolog.New(&buf).Level(zerolog.TraceLevel), redact: true}
	// Whatever element holds the text, and wherever reads cut the
	// stream (inside text, a tag or an attribute value), none is left.
	r := &textRedactor{}
	for _, chunk := range []string{
		`<message to='a>b'><body xml:lang="en">sec`, `ret &lt;text&gt;</body><subject>topic</sub`,
		`ject><html xmlns='http://jabber.org/protocol/xhtml-im'><body><p>more <b>hidden</b></p></body></html>`,
		`<body xml:lang='x">y'>last words</body></message>`,
	} {
		lc.trace("XMPP in", r, []byte(chunk))
	}
	for _, text := range []string{"sec", "ret", "text", "topic", "more", "hidden", "last words"} {
		if strings.Contains(buf.String(), text) {
			t.Errorf("%q in the redacted log: %s", text, buf.String())
		}
	}
	for _, markup := range []string{"<subject>", "xhtml-im", "<b>", `xml:lang='x\">y'`, "</message>"} {
		if !strings.Contains(buf.String(), markup) {
			t.Errorf("%q missing from the redacted log: %s", markup, buf.String())
		}
	}
	buf.Reset()
	lc.redact = false
	lc.trace("XMPP in", &textRedactor{}, []byte(`<body>visible</body>`))
	if !strings.Contains(buf.String(), "visible") {
		t.Errorf("unredacted log: %s", buf.String())
	}
	// A MUC join's password never shows, even unredacted, however the
	// stream is cut.
	buf.Reset()
	r = &textRedactor{}
	for _, chunk := range []string{`<presence><x xmlns='http://jabber.org/protocol/muc'><passw`, `ord>s3c`,
		`ret</password><history maxstanzas='0'/></x><status>here</status><password/><x:password>x2</x:password></presence>`} {
		lc.trace("XMPP out", r, []byte(chunk))
	}
	if out := buf.String(); strings.Contains(out, "s3c") || strings.Contains(out, "ret") || strings.Contains(out, "x2") || !strings.Contains(out, "here") {
		t.Errorf("the log of a join with a password: %s", out)
	}
}

// TestComponentHostileInput: what a broken or hostile peer can send gets a
// clear outcome, and the component keeps working: an error reply, a
// dropped stanza, or for a broken stream a new connection.
func TestComponentHostileInput(t *testing.T) {
	c, srv, rec := startComponent(t)
	conn := srv.next()
	if err := c.WaitConnected(context.Background()); err != nil {
		t.Fatal(err)
	}
	good := func(conn *serverConn, id string) {
		t.Helper()
		n := len(rec.snapshot())
		io.WriteString(conn, `<message from='alice@xmpp.test/r' to='#r#hs.test@matrix.xmpp.test' id='`+id+`'><body>ok</body></message>`)
		rec.wait(t, "message "+id, func() bool { return len(rec.messages) > n })
		if m := rec.snapshot()[n]; m.ID != id {
			t.Fatalf("handler got %q after hostile input; want %q", m.ID, id)
		}
	}

	// Stanza-level: an error reply, nothing for the handler.
	huge := strings.Repeat("A", MaxStanzaSize+1)
	for _, tc := range []struct {
		name, in string
		want     stanza.Condition
	}{
		{"oversized stanza", `<message from='alice@xmpp.test/r' to='#r#hs.test@matrix.xmpp.test' id='big'><body>` + huge + `</body></message>`, stanza.PolicyViolation},
		{"oversized attribute", `<message from='alice@xmpp.test/r' to='#r#hs.test@matrix.xmpp.test' id='attr' x='` + huge + `'/>`, stanza.PolicyViolation},
		// No text at all, but names and elements enough to take memory.
		{"many empty elements", `<message from='alice@xmpp.test/r' to='#r#hs.test@matrix.xmpp.test' id='empty'>` +
			strings.Repeat("<x/>", MaxStanzaSize/tokenOverhead/2) + `</message>`, stanza.PolicyViolation},
		{"long names", `<message from='alice@xmpp.test/r' to='#r#hs.test@matrix.xmpp.test' id='names'><` + huge + `/></message>`, stanza.PolicyViolation},
		{"JID with a space", `<message from='alice@xmpp.test/r' to='a b@matrix.xmpp.test' id='sp'><body>x</body></message>`, stanza.JIDMalformed},
	} {
		io.WriteString(conn, tc.in)
		var reply struct {
			Type  string        `xml:"type,attr"`
			To    string        `xml:"to,attr"`
			Error *stanza.Error `xml:"error"`
		}
		conn.read(t, &reply)
		if reply.Type != "error" || reply.Error == nil || reply.Error.Condition != tc.want || reply.To != "alice@xmpp.test/r" {
			t.Errorf("%s: reply %+v; want %s to the sender", tc.name, reply, tc.want)
		}
	}
	good(conn, "after-stanza-errors")

	// Forged senders on the component's own domain: dropped, no reply
	// (it would go to ourselves), nothing for the handler.
	for _, in := range []string{
		`<message from='mary#hs.test@matrix.xmpp.test' to='#r#hs.test@matrix.xmpp.test' id='spoof1'><body>x</body></message>`,
		`<presence from='#r#hs.test@matrix.xmpp.test/Mary' to='#r#hs.test@matrix.xmpp.test/Eve' id='spoof2'/>`,
		`<iq type='get' from='matrix.xmpp.test' to='#r#hs.test@matrix.xmpp.test' id='spoof3'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`,
		`<message from='MATRIX.XMPP.TEST' to='matrix.xmpp.test' id='spoof4'><body>x</body></message>`,
	} {
		io.WriteString(conn, in)
	}
	good(conn, "after-spoofing")
	for _, m := range rec.snapshot() {
		if strings.HasPrefix(m.ID, "spoof") {
			t.Errorf("a forged stanza reached the handler: %s", m.ID)
		}
	}
	rec.mu.Lock()
	for _, iq := range rec.iqs {
		if iq.ID == "spoof3" {
			t.Error("a forged IQ reached the handler")
		}
	}
	rec.mu.Unlock()

	// Stream-level: invalid UTF-8, and an entity the stream never declared
	// (XML entity tricks: nothing is expanded), break the stream; the
	// component reconnects and goes on.
	for _, in := range []string{
		"<message from='alice@xmpp.test/r' to='matrix.xmpp.test' id='u'><body>\xff\xfe</body></message>",
		`<message from='alice@xmpp.test/r' to='matrix.xmpp.test' id='e'><body>&lol9;</body></message>`,
	} {
		io.WriteString(conn, in)
		conn = srv.next()
		good(conn, "after-broken-stream")
	}
}

// TestComponentSlowServer: while the server reads nothing, a sender whose
// context ends waiting gets an error at once, and a write already under
// way is finished rather than cut off: every stanza the server gets is
// whole, in order, and the stream goes on afterwards.
func TestComponentSlowServer(t *testing.T) {
	c, srv, _ := startComponent(t)
	conn := srv.next()
	if err := c.WaitConnected(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The writer sends until it is stuck: up to 256 MiB, far beyond what
	// socket buffers hold, so the blockage always happens.
	body := strings.Repeat("x", 128<<10)
	const most = 2048
	var sent atomic.Int64
	var stop atomic.Bool
	errs := make(chan error, 1)
	go func() {
		for i := 0; i < most && !stop.Load(); i++ {
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			err := c.Send(ctx, &Message{ID: strconv.Itoa(i), From: A(c.Domain()), To: mustJID("alice@xmpp.test/r"), Body: body})
			cancel()
			if err != nil {
				errs <- err
				return
			}
			sent.Add(1)
		}
		errs <- nil
	}()
	// Wait until the socket is full and the writer stuck.
	for last := int64(-1); sent.Load() != last; {
		last = sent.Load()
		time.Sleep(500 * time.Millisecond)
	}
	if sent.Load() == most {
		t.Fatalf("the socket never filled up after %d stanzas of %d bytes", most, len(body))
	}
	stop.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	start := time.Now()
	err := c.Send(ctx, &Message{ID: "impatient", From: A(c.Domain()), To: mustJID("alice@xmpp.test/r"), Body: "x"})
	cancel()
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Send while the stream is blocked = %v; want a deadline error", err)
	}
	if waited := time.Since(start); waited > 5*time.Second {
		t.Errorf("Send with a 200ms context returned after %s", waited)
	}

	// The server reads again: every stanza sent arrives whole and in order.
	var writerErr error
	writerDone := false
	for i := 0; !writerDone || int64(i) < sent.Load(); i++ {
		var m Message
		conn.read(t, &m)
		if m.ID != strconv.Itoa(i) || m.Body != body {
			t.Fatalf("stanza %d arrived as id %q with a %d-byte body", i, m.ID, len(m.Body))
		}
		if !writerDone {
			select {
			case writerErr = <-errs:
				writerDone = true
			default:
			}
		}
	}
	if writerErr != nil {
		t.Errorf("a write under way failed: %v", writerErr)
	}
	if err := c.Send(context.Background(), &Message{ID: "after", From: A(c.Domain()), To: mustJID("alice@xmpp.test/r"), Body: "after"}); err != nil {
		t.Fatal(err)
	}
	var m Message
	conn.read(t, &m)
	if m.ID != "after" {
		t.Errorf("next stanza = %q; want the one sent after the blockage", m.ID)
	}
}

// TestComponentEndedContexts: a sender's context that ends right after its
// Send returned must not disturb the writes that follow.
func TestComponentEndedContexts(t *testing.T) {
	c, srv, _ := startComponent(t)
	conn := srv.next()
	if err := c.WaitConnected(context.Background()); err != nil {
		t.Fatal(err)
	}
	const n = 3000
	read := make(chan error, 1)
	go func() {
		for got := 0; got < n; {
			tok, err := conn.dec.Token()
			if err != nil {
				read <- err
				return
			}
			if start, ok := tok.(xml.StartElement); ok && start.Name.Local == "message" {
				got++
			}
		}
		read <- nil
	}()
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err := c.Send(ctx, &Message{ID: strconv.Itoa(i), From: A(c.Domain()), To: mustJID("alice@xmpp.test/r"), Body: "x"})
		cancel()
		if err != nil {
			t.Fatalf("Send %d after %d contexts ended: %v", i, i, err)
		}
	}
	if err := <-read; err != nil {
		t.Errorf("the server read a broken stream: %v", err)
	}
}

// TestComponentRefusesSharedDomain: when the server routes some of the
// component's probes to another connection (ejabberd load-balances a
// domain over every connection for it), the first connection refuses to
// run: Run ends with ErrDomainShared and the handler never hears of a
// connection.
func TestComponentRefusesSharedDomain(t *testing.T) {
	srv := newFakeServer(t)
	srv.probes = func(c net.Conn, probes []*Message) {
		echoProbes(c, probes[:len(probes)/2]) // the other half went elsewhere
	}
	rec := &recorder{wake: make(chan struct{}, 1)}
	c, err := NewComponent(Config{Server: srv.ln.Addr().String(), Domain: "matrix.xmpp.test", Secret: "secret"}, rec, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	c.ProbeTimeout = 200 * time.Millisecond
	done := make(chan error, 1)
	go func() { done <- c.Run(context.Background()) }()
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not end on a shared domain")
	}
	if !errors.Is(err, ErrDomainShared) || !strings.Contains(err.Error(), "12 of 24 probes") {
		t.Errorf("Run = %v; want ErrDomainShared saying 12 of 24 probes were lost", err)
	}
	if rec.connected != 0 || c.Connected() {
		t.Errorf("HandleConnected called %d times, Connected %v; want neither", rec.connected, c.Connected())
	}
}

// TestComponentNoticesAnotherInstance: a running component that receives
// another instance's probe says so in Shared, checks again, and clears it
// once its own probes all come back; it stays connected throughout.
func TestComponentNoticesAnotherInstance(t *testing.T) {
	c, srv, rec := startComponentWith(t, func(c *Component) {
		c.ProbeTimeout = 100 * time.Millisecond // the recheck waits this + 1 s
	})
	conn := srv.next()
	rec.wait(t, "the connection", func() bool { return rec.connected == 1 })
	if s := c.Shared(); s != "" {
		t.Fatalf("Shared = %q on a connection of its own", s)
	}
	io.WriteString(conn, `<message type='headline' from='matrix.xmpp.test' to='matrix.xmpp.test' id='probe-other-1-0'><probe xmlns='`+NSProbe+`' instance='other' seq='0'/></message>`)
	// The foreign probe starts a check: its probes come here, and while
	// they are on their way the domain counts as shared.
	var round []*Message
	for len(round) < probeCount {
		m := &Message{}
		conn.read(t, m)
		if m.Probe == nil {
			t.Fatalf("got %+v; want the probes of a new check", m)
		}
		round = append(round, m)
	}
	if s := c.Shared(); !strings.Contains(s, "another bridge instance") {
		t.Errorf("Shared = %q after another instance's probe; want it named", s)
	}
	echoProbes(conn, round)
	deadline := time.Now().Add(10 * time.Second)
	for c.Shared() != "" && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if s := c.Shared(); s != "" || !c.Connected() || rec.connected != 1 {
		t.Errorf("after the check: Shared %q, Connected %v, HandleConnected %d times; want alone, connected, once", s, c.Connected(), rec.connected)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.messages) != 0 {
		t.Errorf("the handler got probe messages: %+v", rec.messages)
	}
}
