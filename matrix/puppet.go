package matrix

import (
	"strings"

	"maunium.net/go/mautrix/id"
)

// PuppetID returns the Matrix ID of the puppet that stands for remote, an
// XMPP user's bare JID: @<prefix><remote encoded>:<domain>, with mautrix's
// user-localpart encoding (alice@xmpp.example -> _xmpp_alice=40xmpp.example).
func (c Config) PuppetID(remote string) id.UserID {
	return id.NewUserID(c.Appservice.PuppetPrefix+id.EncodeUserLocalpart(remote), c.Homeserver.Domain)
}

// ParsePuppetID returns the remote ID of a puppet made by PuppetID, and false
// for any other user, including the bridge bot.
func (c Config) ParsePuppetID(userID id.UserID) (remote string, ok bool) {
	local, server, err := userID.Parse()
	if err != nil || server != c.Homeserver.Domain {
		return "", false
	}
	enc, ok := strings.CutPrefix(local, c.Appservice.PuppetPrefix)
	if !ok || enc == "" {
		return "", false
	}
	remote, err = id.DecodeUserLocalpart(enc)
	if err != nil || id.EncodeUserLocalpart(remote) != enc {
		return "", false
	}
	return remote, true
}

// BotID returns the Matrix ID of the bridge bot.
func (c Config) BotID() id.UserID {
	return id.NewUserID(c.Appservice.Bot.Username, c.Homeserver.Domain)
}

// IsBridgeUser reports whether a user belongs to the bridge: its bot or a
// puppet. Events they send are the bridge's own echoes.
func (c Config) IsBridgeUser(userID id.UserID) bool {
	if userID == c.BotID() {
		return true
	}
	_, ok := c.ParsePuppetID(userID)
	return ok
}
