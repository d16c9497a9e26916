package matrix

import (
	"crypto/sha256"
	"encoding/base32"
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
// for any other user, including the bridge bot and the puppets of
// RoomPuppetID.
func (c Config) ParsePuppetID(userID id.UserID) (remote string, ok bool) {
	remote, ok = c.parsePuppet(userID)
	if !ok || strings.Contains(remote, "/") {
		return "", false
	}
	return remote, true
}

// Puppets of occupants known only within one MUC. In a semi-anonymous room
// the bridge never uses an occupant's real JID, even where it could see it:
// the occupant is named by the room and a token of its identity in the room
// (its XEP-0421 occupant-id, or the nick it first had), and gets a puppet of
// its own for that room:
//
//	@<prefix><room JID>/<token>:<domain>   encoded like PuppetID
//
// A bare JID has no '/', so these never collide with the puppets of
// PuppetID. Where the room's JID would make the user ID longer than the 255
// bytes Matrix allows, the room is written as RoomRef gives it: '~' and a
// hash of the JID.

// maxUserID is the longest user ID Matrix allows, in bytes.
const maxUserID = 255

// RoomPuppetID returns the puppet of the occupant with the given token in
// room, a MUC's bare JID. token must be made of [a-z0-9-] (xmpp.OccupantToken
// is).
func (c Config) RoomPuppetID(room, token string) id.UserID {
	return id.NewUserID(c.Appservice.PuppetPrefix+id.EncodeUserLocalpart(c.RoomRef(room, token)+"/"+token), c.Homeserver.Domain)
}

// RoomRef is how RoomPuppetID names room for an occupant with token: the
// room's JID where the ID fits in Matrix's limit, else '~' and a hash of it.
func (c Config) RoomRef(room, token string) string {
	fixed := len("@") + len(c.Appservice.PuppetPrefix) + len("=2f") + len(token) + len(":") + len(c.Homeserver.Domain)
	if fixed+len(id.EncodeUserLocalpart(room)) <= maxUserID && !strings.HasPrefix(room, "~") {
		return room
	}
	sum := sha256.Sum256([]byte(room))
	return "~" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:15]))
}

// ParseRoomPuppetID returns the room reference (see RoomRef) and the token
// of a puppet made by RoomPuppetID, and false for any other user.
func (c Config) ParseRoomPuppetID(userID id.UserID) (roomRef, token string, ok bool) {
	remote, ok := c.parsePuppet(userID)
	if !ok {
		return "", "", false
	}
	// The token has no '/'; cut at the last one.
	i := strings.LastIndexByte(remote, '/')
	if i < 0 {
		return "", "", false
	}
	roomRef, token = remote[:i], remote[i+1:]
	if roomRef == "" || token == "" || strings.ContainsFunc(token, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-')
	}) {
		return "", "", false
	}
	return roomRef, token, true
}

func (c Config) parsePuppet(userID id.UserID) (remote string, ok bool) {
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

// RemoteRoomAlias returns the alias of the portal into a MUC hosted
// elsewhere: #<prefix><room encoded>:<domain>, room being the MUC's bare
// JID, encoded like PuppetID (team@conference.xmpp.example ->
// #_xmpp_team=40conference.xmpp.example). XEP-0106 escapes in the room's
// localpart are kept and encoded with the rest.
func (c Config) RemoteRoomAlias(room string) id.RoomAlias {
	return id.NewRoomAlias(c.Appservice.PuppetPrefix+id.EncodeUserLocalpart(room), c.Homeserver.Domain)
}

// ParseRemoteRoomAlias returns the room of an alias made by
// RemoteRoomAlias, and false for any other alias. Aliases are compared
// without case, as users type them: the encoding writes no capitals.
func (c Config) ParseRemoteRoomAlias(alias id.RoomAlias) (room string, ok bool) {
	local, server, ok := strings.Cut(strings.TrimPrefix(string(alias), "#"), ":")
	if !ok || !strings.HasPrefix(string(alias), "#") || server != c.Homeserver.Domain {
		return "", false
	}
	enc, ok := strings.CutPrefix(strings.ToLower(local), c.Appservice.PuppetPrefix)
	if !ok || enc == "" {
		return "", false
	}
	room, err := id.DecodeUserLocalpart(enc)
	if err != nil || id.EncodeUserLocalpart(room) != enc || strings.Contains(room, "/") {
		return "", false
	}
	return room, true
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
	_, ok := c.parsePuppet(userID)
	return ok
}
