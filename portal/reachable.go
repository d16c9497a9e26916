package portal

import (
	"maunium.net/go/mautrix/event"
	"mellium.im/xmpp/stanza"

	"github.com/mxpp/mxpp/matrix"
	"github.com/mxpp/mxpp/xmpp"
)

// Reachable reports whether XMPP users may join a room, as a stanza error
// to answer them with if not. For now these are the rooms of the bridged
// homeserver that have a canonical alias and the public join rule.
func Reachable(info *matrix.RoomInfo, scheme xmpp.Scheme, homeserver string) error {
	alias := info.CanonicalAlias
	if _, server, ok := SplitAlias(alias); !ok || server != homeserver {
		return *xmpp.StanzaError(stanza.ItemNotFound, "The room has no address on this bridge")
	}
	if _, err := MUCJID(scheme, alias); err != nil {
		return *xmpp.StanzaError(stanza.ItemNotFound, "The room's address cannot be written as a JID")
	}
	if info.JoinRule != event.JoinRulePublic {
		return *xmpp.StanzaError(stanza.Forbidden, "The room is not open to XMPP users")
	}
	return nil
}
