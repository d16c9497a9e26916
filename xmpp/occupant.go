package xmpp

import (
	"crypto/sha256"
	"encoding/base32"
	"strings"
)

// OccupantToken names an occupant of a semi-anonymous MUC within that
// room, for the room's puppet of it (matrix.Config.RoomPuppetID): by its
// XEP-0421 occupant-id where the room advertises them, else by the nick it
// had when the bridge first saw it (the bridge follows its nick changes
// from there). The token is "o-" or "n-" and 16 characters of a hash,
// [a-z2-7]: it carries neither the occupant-id nor the nick, and the two
// kinds never meet.
func OccupantToken(occupantID, firstNick string) string {
	kind, key := "n-", "nick\x00"+firstNick
	if occupantID != "" {
		kind, key = "o-", "occupant-id\x00"+occupantID
	}
	sum := sha256.Sum256([]byte(key))
	return kind + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:10]))
}
