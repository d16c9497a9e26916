package matrix

import (
	"fmt"
	"regexp"

	"maunium.net/go/mautrix/appservice"
)

// Registration returns the appservice registration for the homeserver
// (Matrix application service API §2.1): the tokens, the bot, and
// exclusive namespaces of the puppets' user IDs and of the aliases of
// portals into MUCs hosted elsewhere.
func (c Config) Registration() *appservice.Registration {
	reg := &appservice.Registration{
		ID:              c.Appservice.ID,
		URL:             c.Appservice.Address,
		AppToken:        c.Appservice.ASToken,
		ServerToken:     c.Appservice.HSToken,
		SenderLocalpart: c.Appservice.Bot.Username,
		RateLimited:     new(bool),
		// Typing and receipts (MSC2409) from homeservers that push them.
		EphemeralEvents: true,
	}
	reg.Namespaces.UserIDs.Register(c.puppetRegex(), true)
	reg.Namespaces.UserIDs.Register(regexp.MustCompile(fmt.Sprintf("^@%s:%s$",
		regexp.QuoteMeta(c.Appservice.Bot.Username), regexp.QuoteMeta(c.Homeserver.Domain))), true)
	reg.Namespaces.RoomAliases.Register(regexp.MustCompile(fmt.Sprintf("^#%s.+:%s$",
		regexp.QuoteMeta(c.Appservice.PuppetPrefix), regexp.QuoteMeta(c.Homeserver.Domain))), true)
	return reg
}

// puppetRegex matches the puppets' user IDs. It is anchored: some
// homeservers match namespaces without anchors.
func (c Config) puppetRegex() *regexp.Regexp {
	return regexp.MustCompile(fmt.Sprintf("^@%s.+:%s$",
		regexp.QuoteMeta(c.Appservice.PuppetPrefix), regexp.QuoteMeta(c.Homeserver.Domain)))
}
