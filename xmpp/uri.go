package xmpp

import (
	"errors"
	"net/url"
	"strings"

	"mellium.im/xmpp/jid"
)

// URI returns the xmpp: URI of an address (RFC 5122 §2), with an XEP-0147
// query such as "join" when query is not empty. Every character the URI
// grammar does not allow in a localpart, domain or resource is
// percent-encoded as UTF-8, so the room address #lobby#hs.example@… is
// written xmpp:%23lobby%23hs.example@…: a bare '#' would start the URI's
// fragment (RFC 3986), leaving a standard parser an empty address.
func URI(addr jid.JID, query string) string {
	var b strings.Builder
	b.WriteString("xmpp:")
	if local := addr.Localpart(); local != "" {
		escapeURIPart(&b, local, nodeAllowed)
		b.WriteByte('@')
	}
	domain := addr.Domainpart()
	if strings.HasPrefix(domain, "[") && strings.HasSuffix(domain, "]") {
		b.WriteString(domain) // an IPv6 literal as it stands
	} else {
		escapeURIPart(&b, domain, hostAllowed)
	}
	if res := addr.Resourcepart(); res != "" {
		b.WriteByte('/')
		escapeURIPart(&b, res, resAllowed)
	}
	if query != "" {
		b.WriteByte('?')
		b.WriteString(query)
	}
	return b.String()
}

// The characters RFC 5122 §2.2 lets stand unencoded, beside unreserved
// ones: nodeallow in a localpart, resallow in a resource, sub-delims in a
// domain (reg-name, RFC 3986 §3.2.2).
const (
	nodeAllowed = "!$()*+,;="
	resAllowed  = "!$&'()*+,:;="
	hostAllowed = "!$&'()*+,;="
)

func escapeURIPart(b *strings.Builder, s, allowed string) {
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~", c) >= 0 ||
			strings.IndexByte(allowed, c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
}

var errNotURI = errors.New("not an xmpp: URI")

// ParseURI reads the address and the XEP-0147 action ("join", "message",
// or "" for none) of an xmpp: URI: the percent-encoded form RFC 5122
// defines, xmpp://account/address with an authority, and, leniently, the
// raw form people paste (xmpp:#lobby#hs.example@…?join), whose '#' a URI
// parser takes for a fragment. The address is normalised as ParseJID does.
func ParseURI(s string) (addr jid.JID, action string, err error) {
	rest, ok := cutPrefixFold(strings.TrimSpace(s), "xmpp:")
	if !ok {
		return jid.JID{}, "", errNotURI
	}
	if u, perr := url.Parse("xmpp:" + rest); perr == nil && u.Fragment == "" && !strings.HasSuffix(rest, "#") {
		path := u.Opaque
		if u.Host != "" || strings.HasPrefix(rest, "//") {
			// xmpp://account/address: the account is whoever opens it.
			path = strings.TrimPrefix(u.EscapedPath(), "/")
		}
		if raw, uerr := url.PathUnescape(path); uerr == nil && raw != "" {
			if addr, err = ParseJID(raw); err == nil {
				return addr, uriAction(u.RawQuery), nil
			}
		}
	}
	// The raw form: the address runs to the first '?', and anything
	// percent-encoded in it is decoded where it can be.
	raw, query, _ := strings.Cut(strings.TrimPrefix(rest, "//"), "?")
	if dec, uerr := url.PathUnescape(raw); uerr == nil {
		raw = dec
	}
	if addr, err = ParseJID(raw); err != nil {
		return jid.JID{}, "", err
	}
	return addr, uriAction(query), nil
}

// uriAction is the XEP-0147 action of a query: its first component, up to
// a ';' (XEP-0147's separator) or '&'.
func uriAction(query string) string {
	action, _, _ := strings.Cut(query, ";")
	action, _, _ = strings.Cut(action, "&")
	if strings.Contains(action, "=") {
		return ""
	}
	dec, err := url.QueryUnescape(action)
	if err != nil {
		return ""
	}
	return dec
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}
