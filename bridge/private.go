package bridge

import (
	"context"

	"maunium.net/go/mautrix/id"
	"mellium.im/xmpp/jid"

	"github.com/mxpp/mxpp/database"
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

// privateMoved makes a Matrix user's private chats follow their new nick
// in a hosted room: stored, and in the running chats (which are keyed by
// it).
func (b *Bridge) privateMoved(ctx context.Context, user id.UserID, from, to jid.JID) {
	b.movePrivate(func(row *database.Portal) bool { return row.DMUser == user && row.DMVia == from.String() },
		func(row *database.Portal) { row.DMVia = to.String() }, portal.Moved{Via: to},
		func() (int64, error) { return b.DB.Portal.MoveVia(ctx, user, from.String(), to.String()) })
}

// peerMoved makes the private chats with an occupant of a MUC hosted
// elsewhere follow their new nick there.
func (b *Bridge) peerMoved(ctx context.Context, from, to jid.JID) {
	b.movePrivate(func(row *database.Portal) bool { return row.DMPuppet != "" && row.DMJID == from.String() },
		func(row *database.Portal) { row.DMJID = to.String() }, portal.Moved{Peer: to},
		func() (int64, error) { return b.DB.Portal.MovePeer(ctx, from.String(), to.String()) })
}

// movePrivate stores the move of private chats, then re-keys the running
// ones that match and tells them.
func (b *Bridge) movePrivate(match func(*database.Portal) bool, move func(*database.Portal), tell portal.Moved, store func() (int64, error)) {
	n, err := store()
	if err != nil {
		b.Log.Warn().Err(err).Msg("Failed to move private chats to a new nick; they keep the old one")
		return
	}
	if n == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for key, p := range b.byDirect {
		row := p.Row()
		if !match(row) {
			continue
		}
		delete(b.byDirect, key)
		move(row)
		b.byDirect[directKey(row.DMUser, row.DMJID, row.DMVia)] = p
		p.TryQueue(tell)
	}
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
