package portal

import (
	"context"

	"maunium.net/go/mautrix/id"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/mxpp/mxpp/xmpp"
)

// PrivateMessage is an occupant's private message to a Matrix member of a
// hosted room (XEP-0045 §7.5), which the bridge carries as a private chat:
// a direct chat in which the member speaks from their occupant JID.
type PrivateMessage struct {
	Msg *xmpp.Message
	// User is the Matrix member, Via their occupant JID.
	User id.UserID
	Via  jid.JID
	// Nick is the sender's nick; Room the room's alias, for naming the chat.
	Nick string
	Room id.RoomAlias
}

// Moved tells a private chat that one of its sides has a new occupant JID
// (renamed in the room): Via is the Matrix user's, Peer the XMPP side's
// (an occupant of a MUC hosted elsewhere); the other is zero.
type Moved struct{ Via, Peer jid.JID }

// handlePrivate handles a message to one occupant. Only occupants may send
// one, and only where the room allows them. To another XMPP occupant it is
// relayed, from the sender's occupant JID, as a MUC service does; to a
// Matrix member it goes to the bridge (Deps.Private).
func (p *Portal) handlePrivate(ctx context.Context, msg *xmpp.Message) {
	payload := msg.Body == "" // chat states, markers, receipts: dropped where refused
	reject := func(cond stanza.Condition, text string) {
		if !payload {
			p.refuse(ctx, msg, xmpp.StanzaError(cond, text))
		}
	}
	occ, ok := p.session(msg.From.JID)
	switch {
	case !ok:
		reject(stanza.NotAcceptable, "You are not in this room")
		return
	case p.settings != nil && p.settings.PMOff:
		reject(stanza.NotAllowed, "Private messages are turned off in this room")
		return
	case p.deps.Private == nil:
		reject(stanza.FeatureNotImplemented, "Private messages are not supported")
		return
	}
	nick := msg.To.Resourcepart()
	owner, ok := p.roster.owns(nick)
	if !ok {
		reject(stanza.ItemNotFound, "No one in this room has that nick")
		return
	}
	if to := p.occupantOf(owner); to != nil {
		if to == occ {
			return // to oneself: nothing to carry
		}
		for _, s := range to.jids() {
			out := *msg
			out.From, out.To, out.MUCUser = xmpp.A(p.occupantJID(occ.nick)), xmpp.A(s), &xmpp.MUCUser{}
			p.send(ctx, &out)
		}
		return
	}
	m := p.roster.members[owner]
	if m == nil || m.nick != nick {
		reject(stanza.ItemNotFound, "No one in this room has that nick")
		return
	}
	p.deps.Private(ctx, PrivateMessage{Msg: msg, User: m.userID, Via: p.occupantJID(m.nick), Nick: occ.nick, Room: p.Alias})
}
