package matrix

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"maunium.net/go/mautrix/id"
)

// HomeserverConfig is the homeserver section of the bridge config.
type HomeserverConfig struct {
	// Address is the URL the bridge uses to reach the client-server API.
	Address string `yaml:"address"`
	// Domain is the homeserver's server name, the part after ':' in IDs.
	Domain string `yaml:"domain"`
}

// AppserviceConfig is the appservice section of the bridge config.
type AppserviceConfig struct {
	// Address is the URL the homeserver uses to reach the bridge.
	Address string `yaml:"address"`
	// Hostname and Port are where the bridge listens for the homeserver.
	Hostname string `yaml:"hostname"`
	Port     uint16 `yaml:"port"`
	// ID is the appservice's ID in the registration.
	ID  string    `yaml:"id"`
	Bot BotConfig `yaml:"bot"`
	// ASToken and HSToken authenticate the bridge to the homeserver and the
	// homeserver to the bridge. Generated with -g when empty.
	ASToken string `yaml:"as_token"`
	HSToken string `yaml:"hs_token"`
	// PuppetPrefix starts the localpart of every puppet user.
	PuppetPrefix string `yaml:"puppet_prefix"`
}

// BotConfig is the bridge bot's Matrix profile.
type BotConfig struct {
	Username    string `yaml:"username"`
	Displayname string `yaml:"displayname"`
	Avatar      string `yaml:"avatar"`
}

// Config is what the matrix package needs from the bridge config.
type Config struct {
	Homeserver HomeserverConfig
	Appservice AppserviceConfig
	Encryption EncryptionConfig
}

// DefaultHomeserverConfig returns the defaults of the homeserver section.
func DefaultHomeserverConfig() HomeserverConfig { return HomeserverConfig{} }

// DefaultAppserviceConfig returns the defaults of the appservice section.
func DefaultAppserviceConfig() AppserviceConfig {
	return AppserviceConfig{
		Hostname:     "127.0.0.1",
		Port:         29333,
		ID:           "xmpp",
		Bot:          BotConfig{Username: "xmppbot", Displayname: "XMPP bridge bot"},
		PuppetPrefix: "_xmpp_",
	}
}

var localpartRe = regexp.MustCompile(`^[a-z0-9._=/+-]+$`)

// Validate reports the first problem with the sections, naming its key.
// Empty tokens are allowed: the caller decides whether to generate them.
func (c Config) Validate() error {
	if err := checkHTTPURL(c.Homeserver.Address); err != nil {
		return fmt.Errorf("homeserver.address: %w", err)
	}
	if !id.ValidateServerName(c.Homeserver.Domain) {
		return fmt.Errorf("homeserver.domain: must be the homeserver's server name, got %q", c.Homeserver.Domain)
	}
	as := c.Appservice
	if err := checkHTTPURL(as.Address); err != nil {
		return fmt.Errorf("appservice.address: %w", err)
	}
	if as.Hostname == "" {
		return fmt.Errorf("appservice.hostname: must be an address to listen on, such as 127.0.0.1 or 0.0.0.0")
	}
	if as.Port == 0 {
		return fmt.Errorf("appservice.port: must be a TCP port")
	}
	if as.ID == "" {
		return fmt.Errorf("appservice.id: must not be empty")
	}
	if !localpartRe.MatchString(as.Bot.Username) {
		return fmt.Errorf("appservice.bot.username: %q is not a valid Matrix localpart", as.Bot.Username)
	}
	if as.Bot.Avatar != "" {
		if _, err := id.ParseContentURI(as.Bot.Avatar); err != nil {
			return fmt.Errorf("appservice.bot.avatar: must be an mxc:// URI: %w", err)
		}
	}
	if !localpartRe.MatchString(as.PuppetPrefix) {
		return fmt.Errorf("appservice.puppet_prefix: %q is not a valid start of a Matrix localpart", as.PuppetPrefix)
	}
	if strings.HasPrefix(as.Bot.Username, as.PuppetPrefix) && strings.Contains(as.Bot.Username, "=40") {
		return fmt.Errorf("appservice.bot.username: %q looks like a puppet of an XMPP user", as.Bot.Username)
	}
	return nil
}

func checkHTTPURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("must be an http:// or https:// URL, got %q", s)
	}
	return nil
}
