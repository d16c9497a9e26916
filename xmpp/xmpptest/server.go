// Package xmpptest is an XMPP server for tests of an external component
// (XEP-0114): it takes the component's connection, routes what the
// component sends to its own domain back to it, as a real server does
// (the component's probes and pings), and hands the test every other
// stanza. The test writes stanzas to the component with Send.
//
// It knows nothing of the component's own types, so tests of any package
// can use it.
package xmpptest

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"encoding/xml"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// Server is a listening fake XMPP server for one component domain.
type Server struct {
	t      testing.TB
	ln     net.Listener
	domain string
	secret string

	mu   sync.Mutex
	conn net.Conn // the component's current connection
	up   chan struct{}
	sent chan []byte // stanzas the component sent elsewhere
}

// NewServer listens on loopback for a component of domain that
// authenticates with secret. It closes when the test ends.
func NewServer(t testing.TB, domain, secret string) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{t: t, ln: ln, domain: domain, secret: secret, up: make(chan struct{}, 1), sent: make(chan []byte, 1024)}
	go s.accept()
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.conn != nil {
			s.conn.Close()
		}
	})
	return s
}

// Addr is the address the component connects to.
func (s *Server) Addr() string { return s.ln.Addr().String() }

func (s *Server) accept() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		go s.serve(c)
	}
}

// serve authenticates one connection and then reads it until it ends.
func (s *Server) serve(c net.Conn) {
	defer c.Close()
	dec, err := Handshake(c, s.domain, s.secret)
	if err != nil {
		return
	}
	s.mu.Lock()
	if s.conn != nil {
		s.conn.Close()
	}
	s.conn = c
	s.mu.Unlock()
	select {
	case s.up <- struct{}{}:
	default:
	}
	for {
		raw, to, err := readElement(dec)
		if err != nil {
			return
		}
		if strings.EqualFold(to, s.domain) {
			s.write(raw) // routed back, as the server would
			continue
		}
		select {
		case s.sent <- raw:
		default:
			s.t.Errorf("xmpptest: the test does not read what the component sends")
			return
		}
	}
}

// Handshake does the server's side of a component's stream opening and
// handshake (XEP-0114 §3) on c, with stream ID sid1. It returns the
// decoder positioned after the handshake, or why it failed; a wrong
// secret gets not-authorized.
func Handshake(c net.Conn, domain, secret string) (*xml.Decoder, error) {
	dec := xml.NewDecoder(bufio.NewReader(c))
	if _, err := dec.Token(); err != nil { // <stream:stream ...>
		return nil, err
	}
	if _, err := io.WriteString(c, `<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' id='sid1' from='`+domain+`'>`); err != nil {
		return nil, err
	}
	var hs struct {
		XMLName xml.Name `xml:"handshake"`
		Digest  string   `xml:",chardata"`
	}
	if err := dec.Decode(&hs); err != nil {
		return nil, err
	}
	sum := sha1.Sum([]byte("sid1" + secret))
	if hs.Digest != hex.EncodeToString(sum[:]) {
		io.WriteString(c, `<stream:error><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>`)
		return nil, errNotAuthorized
	}
	_, err := io.WriteString(c, `<handshake/>`)
	return dec, err
}

type serverError string

func (e serverError) Error() string { return string(e) }

const errNotAuthorized = serverError("xmpptest: the component's handshake is wrong")

// readElement reads the next top-level element of the stream and returns
// it re-encoded, with its to attribute.
func readElement(dec *xml.Decoder) (raw []byte, to string, err error) {
	var buf bytes.Buffer
	enc := xml.NewEncoder(&buf)
	depth := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil, "", err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				for _, a := range t.Attr {
					if a.Name.Local == "to" && a.Name.Space == "" {
						to = a.Value
					}
				}
			}
			depth++
		case xml.EndElement:
			depth--
		case xml.CharData, xml.Comment:
			if depth == 0 {
				continue // whitespace keepalives between stanzas
			}
		default:
			continue
		}
		if err := enc.EncodeToken(xml.CopyToken(tok)); err != nil {
			return nil, "", err
		}
		if depth == 0 {
			if err := enc.Flush(); err != nil {
				return nil, "", err
			}
			return buf.Bytes(), to, nil
		}
	}
}

// WaitConnected waits until a component has authenticated.
func (s *Server) WaitConnected() {
	s.t.Helper()
	select {
	case <-s.up:
	case <-time.After(10 * time.Second):
		s.t.Fatal("xmpptest: the component did not connect")
	}
}

func (s *Server) write(raw []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != nil {
		s.conn.Write(raw)
	}
}

// Send writes a stanza to the component.
func (s *Server) Send(stanza string) { s.write([]byte(stanza)) }

// Next decodes the next stanza the component sent (to anyone but its own
// domain) into v, failing the test after 10 s.
func (s *Server) Next(v any) {
	s.t.Helper()
	select {
	case raw := <-s.sent:
		if err := xml.Unmarshal(raw, v); err != nil {
			s.t.Fatalf("xmpptest: %s: %v", raw, err)
		}
	case <-time.After(10 * time.Second):
		s.t.Fatal("xmpptest: the component sent nothing")
	}
}
