package xmpp

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	mellium "mellium.im/xmpp"
	"mellium.im/xmpp/component"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
	"mellium.im/xmpp/stream"
)

// Errors returned by Component.
var (
	// ErrNotConnected is returned by Send and SendIQ while the link to the
	// XMPP server is down; callers retry once HandleConnected was called.
	ErrNotConnected = errors.New("component is not connected to the XMPP server")
	// ErrNoReply is returned by SendIQ when the IQ was sent but its context
	// ended before the answer came.
	ErrNoReply = errors.New("no answer to the IQ in time")
)

// writeTimeout is how long writing one stanza may take before the link
// counts as dead and is dropped.
const writeTimeout = 30 * time.Second

// Handler receives what arrives on the component's stream. Its methods run on
// the goroutine that reads the stream, one at a time and in stream order, so
// they must hand slow work to other goroutines.
type Handler interface {
	HandleMessage(ctx context.Context, m *Message)
	HandlePresence(ctx context.Context, p *Presence)
	// HandleIQ receives IQs of type get or set, except pings to the
	// component's own domain. Every one must be answered with Reply.
	HandleIQ(ctx context.Context, iq *IQ)
	// HandleConnected is called after each successful (re)connection,
	// once the component checked whether it is alone (see Shared).
	HandleConnected(ctx context.Context)
}

// Component is an XEP-0114 external component connection that keeps itself
// connected: it redials with backoff after the stream ends, and pings itself
// through the server to notice a dead link.
type Component struct {
	cfg     Config
	domain  jid.JID
	handler Handler
	log     zerolog.Logger

	session atomic.Pointer[link] // the stream, for writing; set before the probes
	// links counts the streams the component had: what the XMPP server
	// knew of the component's addresses (MUC occupancy) may be gone with
	// the stream before.
	links     atomic.Uint64
	up        atomic.Bool   // the stream is up and checked
	writing   chan struct{} // holds a token while a stanza is written
	connected chan struct{} // closed while up; replaced on disconnect
	connMu    sync.Mutex
	kick      chan struct{}
	probe     *prober
	alone     atomic.Bool // a connection of this process was once alone: later ones do not refuse
	lastErr   atomic.Pointer[string]

	pendingMu sync.Mutex
	pending   map[string]chan *IQ

	// RedactBodies keeps message bodies out of the trace log of the raw XML.
	RedactBodies bool

	// KeepaliveInterval is how long the stream may be idle before the
	// component pings itself; a ping unanswered for KeepaliveTimeout drops
	// the connection.
	KeepaliveInterval time.Duration
	KeepaliveTimeout  time.Duration
	// ProbeTimeout is how long a check waits for its probes to come back;
	// ProbeInterval how often it checks again while the domain is shared.
	ProbeTimeout  time.Duration
	ProbeInterval time.Duration
}

// NewComponent returns a component for the configured domain. It does not
// connect until Run.
func NewComponent(cfg Config, handler Handler, log zerolog.Logger) (*Component, error) {
	domain, err := jid.Parse(cfg.Domain)
	if err != nil {
		return nil, fmt.Errorf("invalid component domain: %w", err)
	}
	return &Component{
		cfg:               cfg,
		domain:            domain.Domain(),
		handler:           handler,
		log:               log,
		connected:         make(chan struct{}),
		kick:              make(chan struct{}, 1),
		writing:           make(chan struct{}, 1),
		pending:           make(map[string]chan *IQ),
		probe:             newProber(),
		KeepaliveInterval: 30 * time.Second,
		KeepaliveTimeout:  15 * time.Second,
		ProbeTimeout:      5 * time.Second,
		ProbeInterval:     10 * time.Second,
	}, nil
}

// Domain returns the component's JID.
func (c *Component) Domain() jid.JID { return c.domain }

// Link returns the number of the stream the component has or had last;
// it changes with every new connection. Anything the server knew only
// while a stream lasted (a MUC that removes occupants whose stanzas
// bounce) may be lost when the number changes.
func (c *Component) Link() uint64 { return c.links.Load() }

// LinkUp reports whether stream number link (Link) is the one up now: what
// was written to it then reaches the server as surely as what is written
// next, while a stream that broke may have lost what it was sent last.
func (c *Component) LinkUp(link uint64) bool {
	c.connMu.Lock()
	defer c.connMu.Unlock()
	return c.up.Load() && c.links.Load() == link
}

// Connected reports whether the stream is up and the component checked
// whether it is alone on it.
func (c *Component) Connected() bool { return c.up.Load() }

// LastError says why the last connection attempt failed or the last
// connection ended, "" while connected.
func (c *Component) LastError() string {
	if p := c.lastErr.Load(); p != nil {
		return *p
	}
	return ""
}

// WaitConnected blocks until the stream is up or ctx ends.
func (c *Component) WaitConnected(ctx context.Context) error {
	c.connMu.Lock()
	ch := c.connected
	c.connMu.Unlock()
	if c.Connected() {
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Reconnect drops the current connection; Run dials again at once.
func (c *Component) Reconnect() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// Run keeps the component connected until ctx ends, and then returns nil.
// It returns ErrDomainShared when its first connection finds another one
// open for the domain: this instance refuses to run as a second one.
func (c *Component) Run(ctx context.Context) error {
	const firstBackoff = 500 * time.Millisecond
	backoff := firstBackoff
	for ctx.Err() == nil {
		start := time.Now()
		err := c.connectAndServe(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, ErrDomainShared) {
			return err
		}
		msg := err.Error()
		c.lastErr.Store(&msg)
		if time.Since(start) > time.Minute {
			backoff = firstBackoff
		}
		var se stream.Error
		if errors.As(err, &se) && se.Err == "conflict" {
			// Prosody's answer to a second connection for the domain.
			c.log.Error().Err(err).Stringer("domain", c.domain).Stringer("retry_in", backoff).
				Msg("The XMPP server refused the component: another connection for its domain is open (another bridge instance?)")
		} else {
			c.log.Warn().Err(err).Stringer("retry_in", backoff).Msg("XMPP component connection lost")
		}
		select {
		case <-time.After(backoff):
		case <-c.kick:
		case <-ctx.Done():
			return nil
		}
		backoff = min(backoff*2, 20*time.Second)
	}
	return nil
}

func (c *Component) connectAndServe(ctx context.Context) error {
	dialCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := (&net.Dialer{KeepAlive: 30 * time.Second}).DialContext(dialCtx, "tcp", c.cfg.Server)
	if err != nil {
		return fmt.Errorf("failed to dial %s: %w", c.cfg.Server, err)
	}
	defer conn.Close()
	s, err := component.NewSession(dialCtx, c.domain, []byte(c.cfg.Secret), &logConn{Conn: conn, log: c.log, redact: c.RedactBodies})
	if err != nil {
		return fmt.Errorf("component handshake failed: %w", err)
	}
	c.log.Info().Str("server", c.cfg.Server).Stringer("domain", c.domain).Msg("XMPP component connected")

	connCtx, stop := context.WithCancel(ctx)
	defer stop()
	lastRead := &atomic.Int64{}
	lastRead.Store(time.Now().UnixNano())
	go func() {
		select {
		case <-c.kick:
			c.log.Info().Msg("Reconnecting XMPP component on request")
		case <-connCtx.Done():
		}
		_ = conn.Close()
	}()
	go c.keepalive(connCtx, conn, lastRead)

	c.links.Add(1)
	c.session.Store(&link{s: s, conn: conn})
	defer c.setUp(false)
	refused := make(chan struct{})
	go func() {
		shared := c.checkAlone(connCtx)
		if connCtx.Err() != nil {
			return
		}
		if shared != "" && !c.alone.Load() {
			c.log.Error().Str("reason", shared).Msg("Refusing to run as a second instance beside another connection for this component's domain; stop the other one first")
			close(refused)
			_ = conn.Close()
			return
		}
		if shared != "" {
			c.log.Error().Str("reason", shared).Msg("The XMPP server splits this component's stanzas with another connection")
		}
		c.alone.Store(true)
		c.lastErr.Store(nil)
		c.setUp(true)
		go c.watchShared(connCtx)
		c.handler.HandleConnected(connCtx)
	}()
	err = c.serve(connCtx, s, lastRead)
	_ = s.Close()
	select {
	case <-refused:
		return fmt.Errorf("%w: %s", ErrDomainShared, c.Shared())
	default:
	}
	return err
}

// link is one connection to the server.
type link struct {
	s    *mellium.Session
	conn net.Conn
}

// setUp marks the stream as up and checked, or as gone.
func (c *Component) setUp(up bool) {
	c.connMu.Lock()
	defer c.connMu.Unlock()
	if up {
		c.up.Store(true)
		close(c.connected)
		return
	}
	c.session.Store(nil)
	if c.up.Swap(false) {
		c.connected = make(chan struct{})
	}
	c.failPending()
}

// keepalive pings the component's own domain through the server whenever
// the stream was quiet for KeepaliveInterval, and closes the connection when
// the ping is not answered: TCP alone takes many minutes to notice a dead peer.
func (c *Component) keepalive(ctx context.Context, conn net.Conn, lastRead *atomic.Int64) {
	t := time.NewTicker(c.KeepaliveInterval / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if time.Since(time.Unix(0, lastRead.Load())) < c.KeepaliveInterval {
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, c.KeepaliveTimeout)
		_, err := c.Ping(pctx)
		cancel()
		if err != nil && ctx.Err() == nil {
			c.log.Warn().Err(err).Msg("XMPP server did not answer keepalive ping, reconnecting")
			_ = conn.Close()
			return
		}
	}
}

// Ping sends an XEP-0199 ping from the component to itself through the
// server and returns the round-trip time.
func (c *Component) Ping(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	_, err := c.SendIQ(ctx, &IQ{Type: TypeGet, From: A(c.domain), To: A(c.domain), Body: pingQuery{}})
	return time.Since(start), err
}

type pingQuery struct {
	XMLName xml.Name `xml:"urn:xmpp:ping ping"`
}

// serve reads stanzas until the stream ends. It does not use Session.Serve:
// that answers every IQ not answered inside the handler with an error, which
// rules out answering after a homeserver round trip, and it ends the stream
// on any handler error.
func (c *Component) serve(ctx context.Context, s *mellium.Session, lastRead *atomic.Int64) error {
	r := s.TokenReader()
	defer r.Close()
	for {
		tok, err := r.Token()
		if err != nil {
			return err
		}
		lastRead.Store(time.Now().UnixNano())
		start, ok := tok.(xml.StartElement)
		if !ok {
			if _, end := tok.(xml.EndElement); end {
				return io.EOF // </stream:stream>
			}
			continue // whitespace keepalive
		}
		if start.Name.Space == stream.NS {
			var se stream.Error
			if err = xml.NewTokenDecoder(elementReader(start, r)).Decode(&se); err != nil {
				return fmt.Errorf("unreadable stream-level element %s: %w", start.Name.Local, err)
			}
			return se
		}
		if err = c.dispatch(ctx, start, elementReader(start, r)); err != nil {
			return err
		}
	}
}

// elementReader returns the tokens of the element whose start was just read
// from r, start and end included, so it can be decoded on its own.
func elementReader(start xml.StartElement, r xml.TokenReader) *elemReader {
	return &elemReader{r: r, pending: start, depth: 0}
}

// MaxStanzaSize bounds the size of one stanza the component decodes, as
// tokenSize counts it. XMPP servers limit stanzas from clients and other
// servers to less (Prosody: 256 KiB and 512 KiB); a bigger one is refused
// with policy-violation and skipped.
const MaxStanzaSize = 1 << 20

// tokenOverhead is what each token counts beyond its names and text: an
// element with nothing in it still costs memory once decoded.
const tokenOverhead = 16

// tokenSize is what a token counts towards MaxStanzaSize: every name,
// namespace, attribute and text, and an overhead per token and attribute.
func tokenSize(tok xml.Token) int {
	switch t := tok.(type) {
	case xml.StartElement:
		n := tokenOverhead + len(t.Name.Space) + len(t.Name.Local)
		for _, a := range t.Attr {
			n += tokenOverhead + len(a.Name.Space) + len(a.Name.Local) + len(a.Value)
		}
		return n
	case xml.EndElement:
		return tokenOverhead
	case xml.CharData:
		return tokenOverhead + len(t)
	case xml.Comment:
		return tokenOverhead + len(t)
	case xml.ProcInst:
		return tokenOverhead + len(t.Target) + len(t.Inst)
	case xml.Directive:
		return tokenOverhead + len(t)
	}
	return tokenOverhead
}

// errTooBig is returned while reading a stanza over MaxStanzaSize.
var errTooBig = errors.New("stanza too large")

type elemReader struct {
	r       xml.TokenReader
	pending xml.Token
	depth   int
	done    bool
	size    int
}

func (e *elemReader) Token() (xml.Token, error) {
	if e.done {
		return nil, io.EOF
	}
	var tok xml.Token
	if e.pending != nil {
		tok, e.pending = e.pending, nil
	} else {
		var err error
		if tok, err = e.r.Token(); err != nil {
			return nil, err
		}
	}
	e.size += tokenSize(tok)
	switch tok.(type) {
	case xml.StartElement:
		e.depth++
	case xml.EndElement:
		e.depth--
		if e.depth == 0 {
			e.done = true
		}
	}
	if e.size > MaxStanzaSize && !e.done {
		return nil, errTooBig
	}
	return tok, nil
}

// drain consumes what is left of the element.
func (e *elemReader) drain() error {
	for !e.done {
		if _, err := e.Token(); err != nil && !errors.Is(err, errTooBig) {
			return err
		}
	}
	return nil
}

// dispatch decodes one stanza and hands it to the handler. Only errors of
// the stream itself are returned; a stanza that does not decode gets an
// error reply, or is dropped if it has no usable sender.
func (c *Component) dispatch(ctx context.Context, start xml.StartElement, r *elemReader) error {
	var (
		v   any
		err error
	)
	d := xml.NewTokenDecoder(r)
	switch start.Name.Local {
	case "message":
		m := &Message{}
		err, v = d.Decode(m), m
	case "presence":
		p := &Presence{}
		err, v = d.Decode(p), p
	case "iq":
		iq := &IQ{}
		err, v = d.Decode(iq), iq
	default:
		c.log.Debug().Str("element", start.Name.Local).Msg("Ignoring unknown top-level element")
		return r.drain()
	}
	if derr := r.drain(); derr != nil {
		return derr
	}
	if err != nil {
		var syntax *xml.SyntaxError
		if errors.As(err, &syntax) {
			return err // the stream itself is broken
		}
		c.rejectUndecodable(ctx, start, err)
		return nil
	}
	switch st := v.(type) {
	case *Message:
		st.Size = r.size
		if st.Probe != nil && st.From.Equal(c.domain) {
			c.handleProbe(st)
			return nil
		}
		if !c.fromOwnDomain(st.From.JID, start.Name.Local) {
			c.handler.HandleMessage(ctx, st)
		}
	case *Presence:
		st.Size = r.size
		if !c.fromOwnDomain(st.From.JID, start.Name.Local) {
			c.handler.HandlePresence(ctx, st)
		}
	case *IQ:
		st.Size = r.size
		c.handleIQ(ctx, st)
	}
	return nil
}

// fromOwnDomain drops, with a log line, a stanza that claims to come from
// the component's own domain: only the component sends from there, so it
// is forged or looped back, and handling it could make the bridge talk to
// itself (a puppet of its own users). No error is sent: it would go to
// the component itself.
func (c *Component) fromOwnDomain(from jid.JID, element string) bool {
	if !strings.EqualFold(from.Domainpart(), c.domain.Domainpart()) {
		return false
	}
	c.log.Warn().Stringer("from", from).Str("element", element).Msg("Dropping a stanza that claims to come from the component's own domain")
	return true
}

func (c *Component) handleIQ(ctx context.Context, iq *IQ) {
	switch iq.Type {
	case TypeResult, TypeError:
		c.pendingMu.Lock()
		ch, ok := c.pending[iq.ID]
		delete(c.pending, iq.ID)
		c.pendingMu.Unlock()
		if ok {
			ch <- iq
		} else {
			c.log.Debug().Str("stanza_id", iq.ID).Msg("Ignoring IQ reply nobody waits for")
		}
	case TypeGet, TypeSet:
		if iq.To.Equal(c.domain) && iq.Payload.XMLName == (xml.Name{Space: NSPing, Local: "ping"}) {
			c.Reply(ctx, iq, nil, nil) // our own keepalive, or a server's ping
			return
		}
		if c.fromOwnDomain(iq.From.JID, "iq") {
			return
		}
		c.handler.HandleIQ(ctx, iq)
	default:
		c.Reply(ctx, iq, nil, StanzaError(stanza.BadRequest, "unknown IQ type"))
	}
}

// rejectUndecodable answers a stanza that did not decode with bad-request or
// jid-malformed, if it has a sender to answer and is not an error itself.
func (c *Component) rejectUndecodable(ctx context.Context, start xml.StartElement, err error) {
	attrs := map[string]string{}
	for _, a := range start.Attr {
		attrs[a.Name.Local] = a.Value
	}
	log := c.log.With().Err(err).Str("element", start.Name.Local).Str("from", attrs["from"]).Logger()
	from, ferr := ParseJID(attrs["from"])
	if ferr != nil || attrs["type"] == TypeError || attrs["type"] == TypeResult {
		log.Warn().Msg("Dropping undecodable stanza")
		return
	}
	to, _ := ParseJID(attrs["to"])
	cond := stanza.BadRequest
	var ae *AddrError
	if errors.As(err, &ae) {
		cond = stanza.JIDMalformed
	}
	if errors.Is(err, errTooBig) {
		cond = stanza.PolicyViolation
	}
	log.Warn().Msg("Rejecting undecodable stanza")
	serr := StanzaError(cond, err.Error())
	var reply any
	switch start.Name.Local {
	case "message":
		reply = &Message{ID: attrs["id"], Type: TypeError, From: A(to), To: A(from), Error: serr}
	case "presence":
		reply = &Presence{ID: attrs["id"], Type: TypeError, From: A(to), To: A(from), Error: serr}
	default:
		reply = &IQ{ID: attrs["id"], Type: TypeError, From: A(to), To: A(from), Error: serr}
	}
	if to.Equal(jid.JID{}) {
		switch r := reply.(type) {
		case *Message:
			r.From = A(c.domain)
		case *Presence:
			r.From = A(c.domain)
		case *IQ:
			r.From = A(c.domain)
		}
	}
	if err := c.Send(ctx, reply); err != nil {
		log.Debug().Err(err).Msg("Failed to send error reply")
	}
}

// Send writes one stanza. From must be set: the server refuses component
// stanzas without it.
//
// ctx bounds only the wait for the stream: a write cut off halfway would
// leave half a stanza on the stream and break every later one. A write that
// makes no progress for writeTimeout drops the link, which then reconnects.
func (c *Component) Send(ctx context.Context, v any) error {
	select {
	case c.writing <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("failed to send stanza: %w", ctx.Err())
	}
	defer func() { <-c.writing }()
	l := c.session.Load()
	if l == nil {
		return ErrNotConnected
	}
	// The deadline is set here, not through a context: the session turns a
	// context's end into a write deadline from a goroutine of its own,
	// which can fire after Encode returned and fail the next write.
	_ = l.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	err := l.s.Encode(context.Background(), v)
	_ = l.conn.SetWriteDeadline(time.Time{})
	if err != nil {
		c.log.Warn().Err(err).Msg("Writing to the XMPP server failed, dropping the connection")
		_ = l.conn.Close()
		return fmt.Errorf("failed to send stanza: %w", err)
	}
	return nil
}

// Reply answers an IQ get or set: with body as the result's child, or with
// serr as an error.
func (c *Component) Reply(ctx context.Context, iq *IQ, body any, serr *stanza.Error) {
	var reply any = &IQ{ID: iq.ID, Type: TypeResult, From: iq.To, To: iq.From, Body: body}
	if serr != nil {
		if reply = ErrorReply(iq, serr); reply == nil {
			return
		}
	}
	if err := c.Send(ctx, reply); err != nil {
		c.log.Warn().Err(err).Str("stanza_id", iq.ID).Stringer("to", iq.From).Msg("Failed to answer IQ")
	}
}

// SendIQ sends an IQ get or set and waits for its result. An error reply is
// returned as a stanza.Error.
func (c *Component) SendIQ(ctx context.Context, iq *IQ) (*IQ, error) {
	if iq.ID == "" {
		iq.ID = RandomID()
	}
	ch := make(chan *IQ, 1)
	c.pendingMu.Lock()
	c.pending[iq.ID] = ch
	c.pendingMu.Unlock()
	defer func() {
		c.pendingMu.Lock()
		delete(c.pending, iq.ID)
		c.pendingMu.Unlock()
	}()
	if err := c.Send(ctx, iq); err != nil {
		return nil, err
	}
	select {
	case reply := <-ch:
		if reply == nil {
			return nil, ErrNotConnected
		}
		if reply.Type == TypeError {
			if reply.Error != nil {
				return reply, *reply.Error
			}
			return reply, stanza.Error{Condition: stanza.UndefinedCondition}
		}
		return reply, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %w", ErrNoReply, ctx.Err())
	}
}

// failPending wakes everyone waiting for an IQ reply after a disconnect.
func (c *Component) failPending() {
	c.pendingMu.Lock()
	defer c.pendingMu.Unlock()
	for id, ch := range c.pending {
		ch <- nil
		delete(c.pending, id)
	}
}

// RandomID returns a random stanza id.
func RandomID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// logConn logs the raw XML of the stream at trace level. It stays a
// net.Conn so that deadlines keep working.
type logConn struct {
	net.Conn
	log    zerolog.Logger
	redact bool
	// The redactors of each direction: a read or write may end anywhere
	// in a stanza, so where it stopped carries over to the next.
	in, out textRedactor
}

func (lc *logConn) trace(msg string, r *textRedactor, p []byte) {
	if lc.log.GetLevel() > zerolog.TraceLevel {
		return
	}
	// Passwords (a MUC join's) never reach the log; with redact, no text
	// does.
	lc.log.Trace().Bytes("xml", r.redact(p, lc.redact)).Msg(msg)
}

func (lc *logConn) Read(p []byte) (int, error) {
	n, err := lc.Conn.Read(p)
	if n > 0 {
		lc.trace("XMPP in", &lc.in, p[:n])
	}
	return n, err
}

func (lc *logConn) Write(p []byte) (int, error) {
	lc.trace("XMPP out", &lc.out, p)
	return lc.Conn.Write(p)
}

// textRedactor replaces the character data of an XML stream with "…",
// keeping the markup: whatever element text sits in (a body, XHTML-IM, a
// subject), and wherever the stream was cut into reads, no text is left.
// Told not to redact everything, it still hides what is in <password>
// elements.
type textRedactor struct {
	inTag  bool
	quote  byte   // the quote of the attribute value being read, or 0
	name   []byte // the name of the tag being read, until it ends
	naming bool
	secret bool // within a <password> element
}

func (r *textRedactor) redact(p []byte, all bool) []byte {
	out := make([]byte, 0, len(p))
	elided := false
	for _, c := range p {
		switch {
		case r.inTag && r.quote != 0:
			if c == r.quote {
				r.quote = 0
			}
		case r.inTag:
			if r.naming && (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '>' || c == '/' && len(r.name) > 0) {
				r.naming = false
			} else if r.naming {
				r.name = append(r.name, c)
			}
			switch c {
			case '\'', '"':
				r.quote = c
			case '>':
				r.inTag = false
				r.secret = r.tagOpensPassword(out)
			}
		case c == '<':
			r.inTag, elided = true, false
			r.name, r.naming = r.name[:0], true
		default:
			if all || r.secret {
				if !elided {
					out = append(out, "…"...)
					elided = true
				}
				continue
			}
		}
		out = append(out, c)
	}
	return out
}

// tagOpensPassword reports, at the end of a tag, whether it opened a
// password element (not an empty one); out is what was written, the
// tag's end last.
func (r *textRedactor) tagOpensPassword(out []byte) bool {
	name := string(r.name)
	if i := strings.LastIndexByte(name, ':'); i >= 0 {
		name = name[i+1:]
	}
	selfClosing := len(out) > 0 && out[len(out)-1] == '/'
	return name == "password" && !selfClosing
}
