package xmpp

import (
	"fmt"
	"net"

	"mellium.im/xmpp/jid"
)

// Config is the xmpp section of the bridge config: how the component reaches
// its XMPP server (XEP-0114).
type Config struct {
	// Server is host:port of the server's component listener.
	Server string `yaml:"server"`
	// Domain is the component's JID, e.g. matrix.example.org.
	Domain string `yaml:"domain"`
	// Secret is the shared secret of the component handshake.
	Secret string `yaml:"secret"`
	// AllowedDomains and DeniedDomains decide which XMPP domains may use
	// the bridge (see DomainPolicy).
	AllowedDomains []string `yaml:"allowed_domains"`
	DeniedDomains  []string `yaml:"denied_domains"`
	// Admins are the bare JIDs that may run admin commands (XEP-0050).
	Admins []string `yaml:"admins"`
}

// Policy returns the configured domain policy.
func (c Config) Policy() DomainPolicy {
	return DomainPolicy{Allowed: c.AllowedDomains, Denied: c.DeniedDomains}
}

// Validate reports the first problem with the section, naming its key.
func (c Config) Validate() error {
	if _, port, err := net.SplitHostPort(c.Server); err != nil || port == "" {
		return fmt.Errorf("xmpp.server: must be host:port of the component listener, got %q", c.Server)
	}
	j, err := jid.Parse(c.Domain)
	if c.Domain == "" || err != nil || !j.Equal(j.Domain()) {
		return fmt.Errorf("xmpp.domain: must be a bare domain such as matrix.example.org, got %q", c.Domain)
	}
	if c.Secret == "" {
		return fmt.Errorf("xmpp.secret: must be set to the component secret of the XMPP server")
	}
	for _, list := range []struct {
		key      string
		patterns []string
	}{{"xmpp.allowed_domains", c.AllowedDomains}, {"xmpp.denied_domains", c.DeniedDomains}} {
		for _, p := range list.patterns {
			if err := CheckDomainPattern(p); err != nil {
				return fmt.Errorf("%s: %w", list.key, err)
			}
		}
	}
	for _, a := range c.Admins {
		if j, err := jid.Parse(a); err != nil || j.Localpart() == "" || j.Resourcepart() != "" {
			return fmt.Errorf("xmpp.admins: %q is not a bare JID such as admin@example.org", a)
		}
	}
	return nil
}
