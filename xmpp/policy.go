package xmpp

import (
	"fmt"
	"strings"
	"unicode"

	"mellium.im/xmpp/jid"
)

// DomainPolicy decides which XMPP domains may use the bridge. Patterns are
// exact domains or "*." wildcards, which match every subdomain but not the
// domain itself ("*.example.org" matches chat.example.org). A denied domain
// is always refused; when Allowed is not empty, only domains it matches are
// let in.
type DomainPolicy struct {
	Allowed []string
	Denied  []string
}

// Allows reports whether a domain may use the bridge.
func (p DomainPolicy) Allows(domain string) bool {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	for _, pat := range p.Denied {
		if MatchDomain(pat, domain) {
			return false
		}
	}
	if len(p.Allowed) == 0 {
		return true
	}
	for _, pat := range p.Allowed {
		if MatchDomain(pat, domain) {
			return true
		}
	}
	return false
}

// Override returns the policy of a room: the room's allowed list, if any,
// replaces this one's, and its denied list adds to this one's.
func (p DomainPolicy) Override(allowed, denied []string) DomainPolicy {
	out := DomainPolicy{Allowed: p.Allowed, Denied: append(append([]string(nil), p.Denied...), denied...)}
	if len(allowed) > 0 {
		out.Allowed = allowed
	}
	return out
}

// MatchDomain reports whether a pattern matches a domain.
func MatchDomain(pattern, domain string) bool {
	pattern = strings.ToLower(pattern)
	if rest, ok := strings.CutPrefix(pattern, "*."); ok {
		return strings.HasSuffix(domain, "."+rest)
	}
	return pattern == domain
}

// CheckDomainPattern reports whether s is a valid pattern: a DNS name
// (labels of letters, digits and inner hyphens, internationalized names
// allowed) or "*." and one.
func CheckDomainPattern(s string) error {
	bad := fmt.Errorf("%q is not a domain or *.domain", s)
	d := strings.TrimPrefix(s, "*.")
	if d == "" || len(d) > 253 {
		return bad
	}
	if j, err := jid.Parse(d); err != nil || !j.Equal(j.Domain()) {
		return bad
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 || strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-") {
			return bad
		}
		for _, r := range label {
			if r != '-' && !unicode.IsLetter(r) && !unicode.IsDigit(r) {
				return bad
			}
		}
	}
	return nil
}
