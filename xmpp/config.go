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
	return nil
}
