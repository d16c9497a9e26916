package xmpp

import (
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/uri"
)

func TestURI(t *testing.T) {
	for _, tc := range []struct{ addr, query, want string }{
		{"#lobby#hs.example@matrix.xmpp.example", "join", "xmpp:%23lobby%23hs.example@matrix.xmpp.example?join"},
		{"#team\\20room#hs.example\\3a8448@matrix.xmpp.example", "join", "xmpp:%23team%5C20room%23hs.example%5C3a8448@matrix.xmpp.example?join"},
		{"#lobby#hs.example@matrix.xmpp.example/Nick Name", "", "xmpp:%23lobby%23hs.example@matrix.xmpp.example/Nick%20Name"},
		{"alice@xmpp.example", "", "xmpp:alice@xmpp.example"},
		{"#büro#hs.example@matrix.xmpp.example/Zoë?/#", "", "xmpp:%23b%C3%BCro%23hs.example@matrix.xmpp.example/Zo%C3%AB%3F%2F%23"},
		{"matrix.xmpp.example", "", "xmpp:matrix.xmpp.example"},
		{"a@[::1]/r", "", "xmpp:a@[::1]/r"},
	} {
		addr, err := ParseJID(tc.addr)
		if err != nil {
			t.Fatalf("%s: %v", tc.addr, err)
		}
		got := URI(addr, tc.query)
		if got != tc.want {
			t.Errorf("URI(%s, %q) = %s; want %s", tc.addr, tc.query, got, tc.want)
		}
		checkURI(t, addr, tc.query, got)
	}
}

// checkURI parses a URI the bridge made with Go's URI parser, mellium's
// XMPP URI parser and ParseURI, and checks that each finds the address.
func checkURI(t *testing.T, addr jid.JID, query, s string) {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatalf("url.Parse(%s): %v", s, err)
	}
	path, err := url.PathUnescape(u.Opaque)
	if u.Scheme != "xmpp" || u.Fragment != "" || u.RawQuery != query || err != nil || path != addr.String() {
		t.Fatalf("url.Parse(%s): scheme %q, address %q, query %q, fragment %q; want %s", s, u.Scheme, path, u.RawQuery, u.Fragment, addr)
	}
	if _, err := jid.Parse(addr.String()); err == nil { // mellium's own JID rules accept it
		mu, err := uri.Parse(s)
		if err != nil || !mu.ToAddr.Equal(addr) || mu.Action != query {
			t.Fatalf("mellium uri.Parse(%s) = %v, %v", s, mu, err)
		}
	}
	got, action, err := ParseURI(s)
	if err != nil || !got.Equal(addr) || action != query {
		t.Fatalf("ParseURI(%s) = %s, %q, %v; want %s, %q", s, got, action, err, addr, query)
	}
}

func TestParseURI(t *testing.T) {
	for _, tc := range []struct{ in, addr, action string }{
		{"xmpp:%23lobby%23hs.test@matrix.xmpp.test?join", "#lobby#hs.test@matrix.xmpp.test", "join"},
		// Pasted as people see the address.
		{"xmpp:#lobby#hs.test@matrix.xmpp.test?join", "#lobby#hs.test@matrix.xmpp.test", "join"},
		{"xmpp:#Lobby#hs.test@matrix.xmpp.test", "#lobby#hs.test@matrix.xmpp.test", ""},
		{"xmpp:#lobby#hs.test@matrix.xmpp.test/Nick Name", "#lobby#hs.test@matrix.xmpp.test/Nick Name", ""},
		{"XMPP:alice@xmpp.test?message;subject=hi", "alice@xmpp.test", "message"},
		{"xmpp:alice@xmpp.test?message&body=hi", "alice@xmpp.test", "message"},
		{"xmpp://bob@xmpp.test/%23lobby%23hs.test@matrix.xmpp.test?join", "#lobby#hs.test@matrix.xmpp.test", "join"},
		{"  xmpp:room@muc.test?join;password=secret ", "room@muc.test", "join"},
	} {
		addr, action, err := ParseURI(tc.in)
		if err != nil || addr.String() != tc.addr || action != tc.action {
			t.Errorf("ParseURI(%q) = %s, %q, %v; want %s, %q", tc.in, addr, action, err, tc.addr, tc.action)
		}
	}
	for _, bad := range []string{"", "mailto:a@b", "xmpp:", "xmpp:@", "xmpp:a@b@c", "room@muc.test"} {
		if addr, _, err := ParseURI(bad); err == nil {
			t.Errorf("ParseURI(%q) = %s; want an error", bad, addr)
		}
	}
}

// FuzzURIRoundTrip: every URI the bridge makes of an address parses back
// to that address, with Go's URI parser and with ParseURI.
func FuzzURIRoundTrip(f *testing.F) {
	for _, s := range [][3]string{
		{"#lobby#hs.test", "matrix.xmpp.test", ""}, {"#a b#hs", "c.test", "Nick Name"}, {"x", "y", "a?b#c/d%20"},
		{"#büro#hs", "c.test", "Zoë"}, {"", "c.test", ""},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, local, domain, resource string) {
		if !utf8.ValidString(local + domain + resource) {
			return
		}
		addr, err := newJID(local, domain, resource)
		if err != nil {
			return
		}
		if again, err := ParseJID(addr.String()); err != nil || !again.Equal(addr) {
			return // not an address the bridge could have read
		}
		s := URI(addr, "join")
		if strings.ContainsAny(s, "# \"<>\\^`{|}") {
			t.Fatalf("URI(%s) = %s holds a character URIs do not allow", addr, s)
		}
		checkURI(t, addr, "join", s)
	})
}
