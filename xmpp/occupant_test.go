package xmpp

import (
	"regexp"
	"testing"
)

func TestOccupantToken(t *testing.T) {
	valid := regexp.MustCompile(`^[on]-[a-z2-7]{16}$`)
	byID, byNick := OccupantToken("abc", ""), OccupantToken("", "abc")
	for _, tok := range []string{byID, byNick, OccupantToken("", ""), OccupantToken("ü/@ x", "")} {
		if !valid.MatchString(tok) {
			t.Errorf("token %q is not [on]-[a-z2-7]{16}", tok)
		}
	}
	if byID == byNick || byID[:2] != "o-" || byNick[:2] != "n-" {
		t.Errorf("occupant-id and nick tokens of the same string: %q, %q", byID, byNick)
	}
	if OccupantToken("abc", "Nick") != byID {
		t.Error("with an occupant-id, the nick changes the token")
	}
	if OccupantToken("abc", "") != byID || OccupantToken("abd", "") == byID {
		t.Error("tokens are not a function of the occupant-id")
	}
}
