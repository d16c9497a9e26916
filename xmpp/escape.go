package xmpp

import (
	"errors"
	"strings"
)

// escapable lists the characters that XEP-0106 (JID Escaping) maps to \xx
// sequences, with their lower-case hex codes.
var escapable = map[byte]string{
	' ': `\20`, '"': `\22`, '&': `\26`, '\'': `\27`, '/': `\2f`,
	':': `\3a`, '<': `\3c`, '>': `\3e`, '@': `\40`, '\\': `\5c`,
}

// unescapable is the inverse of escapable, keyed by the two hex digits.
var unescapable = map[string]byte{
	"20": ' ', "22": '"', "26": '&', "27": '\'', "2f": '/',
	"3a": ':', "3c": '<', "3e": '>', "40": '@', "5c": '\\',
}

// ErrEscapeSpace is returned by EscapeLocal for text that begins or ends with
// a space: XEP-0106 §4.2 forbids an escaped localpart to begin or end with \20.
var ErrEscapeSpace = errors.New("a JID localpart cannot begin or end with a space")

// EscapeLocal escapes s for use as a JID localpart as XEP-0106 defines it: the
// nine characters a localpart cannot hold become \xx sequences, and a
// backslash is escaped only where it would otherwise start such a sequence.
// The result still has to pass the localpart's PRECIS profile, which also
// case-folds it.
func EscapeLocal(s string) (string, error) {
	if strings.HasPrefix(s, " ") || strings.HasSuffix(s, " ") {
		return "", ErrEscapeSpace
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		seq, ok := escapable[c]
		switch {
		case !ok, c == '\\' && !startsEscape(s[i:]):
			b.WriteByte(c)
		default:
			b.WriteString(seq)
		}
	}
	return b.String(), nil
}

// UnescapeLocal reverses EscapeLocal. A backslash that does not start one of
// the ten XEP-0106 sequences is kept as it is, as the XEP requires. Hex digits
// are matched without regard to case, since PRECIS case mapping may have
// changed them in transit.
func UnescapeLocal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && startsEscape(s[i:]) {
			b.WriteByte(unescapable[strings.ToLower(s[i+1:i+3])])
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// startsEscape reports whether s begins with one of the XEP-0106 sequences.
func startsEscape(s string) bool {
	if len(s) < 3 || s[0] != '\\' {
		return false
	}
	_, ok := unescapable[strings.ToLower(s[1:3])]
	return ok
}
