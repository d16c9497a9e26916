package portal

import (
	"mellium.im/xmpp/stanza"

	"github.com/mxpp/mxpp/matrix"
	"github.com/mxpp/mxpp/xmpp"
)

// Reachable reports whether XMPP users can address a room, as a stanza
// error to answer them with if not: rooms of the bridged homeserver with a
// canonical alias. Who may join is up to the join rule: anyone in public
// rooms, only invited users in the others (see Portal.mayJoin).
func Reachable(info *matrix.RoomInfo, scheme xmpp.Scheme, homeserver string) error {
	alias := info.CanonicalAlias
	if _, server, ok := SplitAlias(alias); !ok || server != homeserver {
		return *xmpp.StanzaError(stanza.ItemNotFound, "The room has no address on this bridge")
	}
	if _, err := MUCJID(scheme, alias); err != nil {
		return *xmpp.StanzaError(stanza.ItemNotFound, "The room's address cannot be written as a JID")
	}
	return nil
}
