package bridge

import (
	"context"

	"mellium.im/xmpp/jid"

	"github.com/mxpp/mxpp/portal"
)

// privateOrigin is where a private chat began: a Matrix member's occupant
// JID in a hosted room (via), the sender's nick there and the room's alias.
type privateOrigin struct {
	via   jid.JID
	nick  string
	alias string
}

// privateMessage carries an occupant's private message to a Matrix member
// of a hosted room (XEP-0045 §7.5) to their private chat. The rules of
// direct chats apply: the Matrix user must be reachable and must not have
// blocked the sender.
func (b *Bridge) privateMessage(ctx context.Context, pm portal.PrivateMessage) {
	if serr := b.directRefusal(ctx, pm.Msg.From.JID, pm.User, pm.User.Homeserver()); serr != nil {
		if pm.Msg.Body != "" {
			b.reject(ctx, pm.Msg, serr.Condition, serr.Error())
		}
		return
	}
	b.toChat(ctx, pm.Msg, pm.User, &privateOrigin{via: pm.Via, nick: pm.Nick, alias: pm.Room.String()})
}
