package bridge

import (
	"context"

	"maunium.net/go/mautrix/id"
	"mellium.im/xmpp/jid"

	"github.com/mxpp/mxpp/portal"
	"github.com/mxpp/mxpp/xmpp"
)

// privateOrigin is where a private chat began: a Matrix member's occupant
// JID in a hosted room (via), the sender's nick there and the room's alias.
type privateOrigin struct {
	via   jid.JID
	nick  string
	alias string
	// peer and puppet, for a chat with an occupant of a MUC hosted
	// elsewhere: their occupant JID, and their puppet in the portal.
	peer   jid.JID
	puppet id.UserID
}

// remotePrivate carries a private message from an occupant of a MUC hosted
// elsewhere to a Matrix user's occupant there, or the bounce of one, to
// their private chat: between the user, speaking from their occupant JID,
// and the occupant's puppet; answers go to the occupant JID. The rules of
// direct chats apply, with the room's address for the sender's.
func (b *Bridge) remotePrivate(ctx context.Context, msg *xmpp.Message, user id.UserID, via jid.JID, puppet id.UserID) {
	if msg.Type != xmpp.TypeError && b.directRefusal(ctx, msg.From.JID, user, user.Homeserver()) != nil {
		return // a MUC removes an occupant that bounces: dropped
	}
	origin := &privateOrigin{via: via, nick: msg.From.Resourcepart(), alias: msg.From.Bare().String(),
		peer: msg.From.JID, puppet: puppet}
	if msg.Type == xmpp.TypeError {
		if p := b.directPortal(ctx, user, origin.peer, via.String()); p != nil {
			b.queueXMPP(ctx, p, msg)
		}
		return
	}
	b.toChat(ctx, msg, user, origin)
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
