package xmpp

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"mellium.im/xmpp/jid"
)

var testScheme = Scheme{Domain: jid.MustParse("matrix.xmpp.test")}

func TestEscapeLocal(t *testing.T) {
	for _, tc := range []struct{ in, out string }{
		{"lobby", "lobby"},
		{"hs.test:8448", `hs.test\3a8448`},
		{`a b"c&d'e/f:g<h>i@j`, `a\20b\22c\26d\27e\2ff\3ag\3ch\3ei\40j`},
		{`plain\backslash`, `plain\backslash`},
		{`looks\40escaped`, `looks\5c40escaped`},
		{`trailing\`, `trailing\`},
		{`\5C`, `\5c5C`},
	} {
		got, err := EscapeLocal(tc.in)
		if err != nil || got != tc.out {
			t.Errorf("EscapeLocal(%q) = %q, %v; want %q", tc.in, got, err, tc.out)
		}
		if back := UnescapeLocal(got); back != tc.in {
			t.Errorf("UnescapeLocal(%q) = %q; want %q", got, back, tc.in)
		}
	}
	for _, in := range []string{" lead", "trail ", " "} {
		if _, err := EscapeLocal(in); !errors.Is(err, ErrEscapeSpace) {
			t.Errorf("EscapeLocal(%q) error = %v; want ErrEscapeSpace", in, err)
		}
	}
}

func TestUnescapeLocal(t *testing.T) {
	// The cases that break mellium's jid.Unescape in v0.22.0: sequences that
	// are not at offset 0, and truncated sequences.
	for _, tc := range []struct{ in, out string }{
		{`bob\40matrix.org`, "bob@matrix.org"},
		{`bob\40x`, "bob@x"},
		{`x\4`, `x\4`},
		{`x\`, `x\`},
		{`\3A\2F`, ":/"},
		{`\zz\5c`, `\zz\`},
		{`\41`, `\41`},
	} {
		if got := UnescapeLocal(tc.in); got != tc.out {
			t.Errorf("UnescapeLocal(%q) = %q; want %q", tc.in, got, tc.out)
		}
	}
}

func TestRoomJID(t *testing.T) {
	for _, tc := range []struct {
		name, server string
		want         string
		wantName     string // after PRECIS case folding
	}{
		{"lobby", "hs.test", "#lobby#hs.test@matrix.xmpp.test", "lobby"},
		{"Lobby", "hs.test", "#lobby#hs.test@matrix.xmpp.test", "lobby"},
		{"a#b", "hs.test:8448", `#a#b#hs.test\3a8448@matrix.xmpp.test`, "a#b"},
		{"team room", "hs.test", `#team\20room#hs.test@matrix.xmpp.test`, "team room"},
		{"über", "hs.test", "#über#hs.test@matrix.xmpp.test", "über"},
		{"a@b/c", "[::1]:8448", `#a\40b\2fc#[\3a\3a1]\3a8448@matrix.xmpp.test`, "a@b/c"},
	} {
		j, err := testScheme.RoomJID(tc.name, tc.server)
		if err != nil {
			t.Errorf("RoomJID(%q, %q): %v", tc.name, tc.server, err)
			continue
		}
		if j.String() != tc.want {
			t.Errorf("RoomJID(%q, %q) = %s; want %s", tc.name, tc.server, j, tc.want)
		}
		// The JID as a client would send it, parsed from text, with a nick.
		full, err := ParseJID(tc.want + "/Some Nick")
		if err != nil {
			t.Errorf("ParseJID(%s): %v", tc.want, err)
			continue
		}
		name, server, err := testScheme.ParseRoomJID(full)
		if err != nil || name != tc.wantName || server != strings.ToLower(tc.server) {
			t.Errorf("ParseRoomJID(%s) = %q, %q, %v; want %q, %q", full, name, server, err, tc.wantName, tc.server)
		}
	}
	for _, s := range []string{"matrix.xmpp.test", "lobby#hs.test@matrix.xmpp.test", "#lobby@matrix.xmpp.test",
		"##hs.test@matrix.xmpp.test", "#lobby#@matrix.xmpp.test", "#lobby#hs.test@other.test"} {
		if _, _, err := testScheme.ParseRoomJID(jid.MustParse(s)); err == nil {
			t.Errorf("ParseRoomJID(%s) accepted a JID that is not a room", s)
		}
	}
	for _, tc := range [][2]string{{"", "hs.test"}, {"lobby", ""}, {" lobby", "hs.test"}, {"x", "bad#server"}} {
		if j, err := testScheme.RoomJID(tc[0], tc[1]); err == nil {
			t.Errorf("RoomJID(%q, %q) = %s; want an error", tc[0], tc[1], j)
		}
	}
}

func TestUserJID(t *testing.T) {
	for _, tc := range []struct{ local, server, want string }{
		{"bob", "hs.test", "bob#hs.test@matrix.xmpp.test"},
		{"bob/x=y", "hs.test:8448", `bob\2fx=y#hs.test\3a8448@matrix.xmpp.test`},
		{"_under.score+", "hs.test", "_under.score+#hs.test@matrix.xmpp.test"},
	} {
		j, err := testScheme.UserJID(tc.local, tc.server)
		if err != nil || j.String() != tc.want {
			t.Errorf("UserJID(%q, %q) = %s, %v; want %s", tc.local, tc.server, j, err, tc.want)
			continue
		}
		local, server, err := testScheme.ParseUserJID(jid.MustParse(tc.want))
		if err != nil || local != tc.local || server != tc.server {
			t.Errorf("ParseUserJID(%s) = %q, %q, %v", tc.want, local, server, err)
		}
	}
	if _, err := testScheme.UserJID("#hash", "hs.test"); err == nil {
		t.Error("UserJID accepted a localpart starting with '#'")
	}
	for _, s := range []string{"#lobby#hs.test@matrix.xmpp.test", "bob@matrix.xmpp.test", "bob#hs.test@xmpp.test"} {
		if _, _, err := testScheme.ParseUserJID(jid.MustParse(s)); err == nil {
			t.Errorf("ParseUserJID(%s) accepted a JID that is not a Matrix user", s)
		}
	}
}

func FuzzEscapeRoundTrip(f *testing.F) {
	for _, s := range []string{"lobby", `a\40b`, `\5c`, `x\`, "a b", `"&'/:<>@\`, `\\40`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		esc, err := EscapeLocal(s)
		if err != nil {
			return
		}
		if strings.ContainsAny(esc, ` "&'/:<>@`) {
			t.Fatalf("EscapeLocal(%q) = %q still holds a character a localpart cannot", s, esc)
		}
		if back := UnescapeLocal(esc); back != s {
			t.Fatalf("UnescapeLocal(EscapeLocal(%q)) = %q", s, back)
		}
	})
}

func FuzzRoomJIDRoundTrip(f *testing.F) {
	for _, s := range [][2]string{{"lobby", "hs.test"}, {"a#b", "hs.test:8448"}, {"Über Raum", "example.org"}, {`x\40y`, "h"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, name, server string) {
		if !utf8.ValidString(name) || !utf8.ValidString(server) {
			return
		}
		j, err := testScheme.RoomJID(name, server)
		if err != nil {
			return // not every alias fits a JID (PRECIS, spaces, length)
		}
		n, s, err := testScheme.ParseRoomJID(j)
		if err != nil {
			t.Fatalf("ParseRoomJID(%s) of RoomJID(%q, %q): %v", j, name, server, err)
		}
		// Parse returns the case-folded form; making a JID from it must give
		// the same JID again, so lookups by folded name are stable.
		j2, err := testScheme.RoomJID(n, s)
		if err != nil || !j2.Equal(j) {
			t.Fatalf("RoomJID(ParseRoomJID(%s)) = %s, %v", j, j2, err)
		}
		if !strings.EqualFold(n, name) && strings.ToLower(n) != n {
			t.Fatalf("ParseRoomJID(%s) name %q is neither the input nor folded", j, n)
		}
	})
}

func FuzzUserJIDRoundTrip(f *testing.F) {
	f.Add("bob", "hs.test")
	f.Add("a/b", "hs:1")
	f.Fuzz(func(t *testing.T, local, server string) {
		j, err := testScheme.UserJID(local, server)
		if err != nil {
			return
		}
		l, s, err := testScheme.ParseUserJID(j)
		if err != nil {
			t.Fatalf("ParseUserJID(%s): %v", j, err)
		}
		j2, err := testScheme.UserJID(l, s)
		if err != nil || !j2.Equal(j) {
			t.Fatalf("UserJID(ParseUserJID(%s)) = %s, %v", j, j2, err)
		}
	})
}

func TestParseJID(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"alice@xmpp.test/phone", "alice@xmpp.test/phone"},
		{"Alice@XMPP.test", "alice@xmpp.test"},
		{"#Büro#hs.test@matrix.xmpp.test/Ünal", "#büro#hs.test@matrix.xmpp.test/Ünal"},
		{"#ｗide#hs.test@matrix.xmpp.test", "#wide#hs.test@matrix.xmpp.test"},
		{"matrix.xmpp.test", "matrix.xmpp.test"},
	} {
		j, err := ParseJID(tc.in)
		if err != nil || j.String() != tc.want {
			t.Errorf("ParseJID(%q) = %s, %v; want %s", tc.in, j, err, tc.want)
		}
	}
	for _, in := range []string{"", "@xmpp.test", "a@", "a@b/", "#\u05d0x#hs.test@matrix.xmpp.test", "a b@xmpp.test",
		strings.Repeat("x", 1024) + "@xmpp.test"} {
		if j, err := ParseJID(in); err == nil {
			t.Errorf("ParseJID(%q) = %s; want an error", in, j)
		}
	}
}
