package xmpp

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/secure/bidirule"
	"golang.org/x/text/unicode/norm"
	"golang.org/x/text/unicode/rangetable"
	"mellium.im/xmpp/jid"
)

// MaxNickRunes bounds the nicks the bridge makes: a display name may be
// long, a nick in a member list should not be.
const MaxNickRunes = 64

// assigned is Unicode 4.1's repertoire, the oldest x/text has: the
// nearest to the Unicode 3.2 that strict resourceprep (RFC 3920, which
// Prosody enforces on nicks) allows. The few characters added in 4.0 and
// 4.1 pass here and are refused by such a service with jid-malformed, which
// the caller answers by falling back to an ASCII nick.
var assigned = rangetable.Assigned("4.1.0")

// StrictNick makes a display name usable as a nick in a MUC hosted
// elsewhere, whose service may check nicks with strict resourceprep
// (stringprep's Unicode 3.2, no unassigned code points) rather than the
// PRECIS profile of RFC 7622: compatibility-normalised, without control,
// format, private-use or unassigned characters (so without most emoji),
// other spaces made plain ones, runs of spaces folded, at most
// MaxNickRunes, a valid resourcepart, and right-to-left text only where it
// keeps the Bidi Rule. It returns "" when nothing usable is left.
func StrictNick(displayname string) string {
	// Invalid bytes go first: left in, they keep the normaliser from
	// composing what follows them, and the result would not be stable.
	s := norm.NFKC.String(strings.ToValidUTF8(displayname, ""))
	var b strings.Builder
	space := false
	for _, r := range s {
		switch {
		case r == utf8.RuneError, unicode.IsControl(r), unicode.In(r, unicode.Cf, unicode.Co, unicode.Cs),
			!unicode.Is(assigned, r), isNonCharacter(r):
			continue
		case unicode.IsSpace(r):
			space = b.Len() > 0
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteRune(r)
	}
	nick := b.String()
	if utf8.RuneCountInString(nick) > MaxNickRunes {
		nick = strings.TrimSpace(string([]rune(nick)[:MaxNickRunes]))
	}
	if nick == "" || (hasRTL(nick) && !bidirule.ValidString(nick)) {
		return ""
	}
	if j, err := jid.New("", "x.test", nick); err != nil || j.Resourcepart() != nick {
		return ""
	}
	return nick
}

// isNonCharacter reports the code points Unicode reserves as
// noncharacters: U+FDD0..U+FDEF and the last two of every plane.
func isNonCharacter(r rune) bool {
	return r >= 0xFDD0 && r <= 0xFDEF || r&0xFFFE == 0xFFFE
}

// NickSuffix is added to a Matrix user's nick when another occupant of a
// MUC hosted elsewhere holds it.
const NickSuffix = " (Matrix)"

// NickCandidates lists the nicks to try, in order, for a Matrix user
// joining a MUC hosted elsewhere: the display name made strict, the same
// with NickSuffix (for a conflict), then the user's localpart (ASCII in
// practice, for a service that refuses the others), each only once.
func NickCandidates(displayname, localpart string) []string {
	var out []string
	add := func(n string) {
		if n != "" && !containsFold(out, n) {
			out = append(out, n)
		}
	}
	if n := StrictNick(displayname); n != "" {
		add(n)
		add(StrictNick(trimRunes(n, MaxNickRunes-utf8.RuneCountInString(NickSuffix)) + NickSuffix))
	}
	add(StrictNick(localpart))
	return out
}

func trimRunes(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return strings.TrimSpace(string(r[:n]))
	}
	return s
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}
