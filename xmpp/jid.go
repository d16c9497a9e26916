package xmpp

import (
	"fmt"

	"golang.org/x/text/secure/bidirule"
	"golang.org/x/text/secure/precis"
	"golang.org/x/text/unicode/bidi"
	"golang.org/x/text/unicode/norm"
	"mellium.im/xmpp/jid"
)

// localProfile is the UsernameCaseMapped profile of RFC 8265 with the Bidi
// Rule applied only to strings that hold right-to-left characters, as §3.3.4
// of the RFC says. x/text applies it to every non-ASCII string, which refuses
// left-to-right localparts that begin or end with a symbol, such as the MUC
// localpart #büro#example.org; Prosody and ejabberd accept those.
var localProfile = precis.NewIdentifier(precis.FoldWidth, precis.LowerCase(), precis.Norm(norm.NFC))

// ParseJID parses a JID like jid.Parse, but normalizes the localpart with
// localProfile. It is the only way the component reads addresses off the
// wire, so that a room JID with non-ASCII letters is routed and not refused.
func ParseJID(s string) (jid.JID, error) {
	if j, err := jid.Parse(s); err == nil {
		return j, nil
	}
	local, domain, resource, err := jid.SplitString(s)
	if err != nil {
		return jid.JID{}, err
	}
	return newJID(local, domain, resource)
}

// newJID builds a JID like jid.New with the localpart normalized by
// localProfile.
func newJID(local, domain, resource string) (jid.JID, error) {
	d, err := jid.New("", domain, resource)
	if err != nil {
		return jid.JID{}, err
	}
	if local == "" {
		return d, nil
	}
	l, err := localProfile.String(local)
	if err != nil {
		return jid.JID{}, fmt.Errorf("invalid localpart: %w", err)
	}
	if len(l) > 1023 {
		return jid.JID{}, fmt.Errorf("localpart longer than 1023 bytes")
	}
	if hasRTL(l) && !bidirule.ValidString(l) {
		return jid.JID{}, fmt.Errorf("invalid localpart: %w", bidirule.ErrInvalid)
	}
	return jid.NewUnsafe(l, d.Domainpart(), d.Resourcepart()).JID, nil
}

func hasRTL(s string) bool {
	for _, r := range s {
		p, _ := bidi.LookupRune(r)
		switch p.Class() {
		case bidi.R, bidi.AL, bidi.AN:
			return true
		}
	}
	return false
}
