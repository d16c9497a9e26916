package portal

import (
	"context"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"mellium.im/xmpp/jid"

	"github.com/mxpp/mxpp/msgconv"
	"github.com/mxpp/mxpp/xmpp"
)

// names is how the room names its members for msgconv.
type names struct{ p *Portal }

var _ msgconv.Names = names{}

func (n names) RoomJID() jid.JID { return n.p.roomJID }

func (n names) NickOf(u id.UserID) string { return n.p.nickOf(u) }

func (n names) UserOfNick(nick string) (id.UserID, bool) { return n.p.userOfNick(nick) }

// MemberOfJID maps a contact JID on the component to its Matrix user and
// any other JID to its puppet, if they are in the room.
func (n names) MemberOfJID(j jid.JID) (id.UserID, bool) {
	u, ok := n.p.userOfJID(j)
	if !ok || (n.p.roster.members[u] == nil && n.p.occupantOf(u) == nil) {
		return "", false
	}
	return u, true
}

// matrixContent turns an XMPP message into Matrix message content.
func (p *Portal) matrixContent(msg *xmpp.Message) *event.MessageEventContent {
	return msgconv.MatrixContent(names{p}, msg)
}

// xmppBody turns Matrix message content into the body XMPP clients show,
// and the references to the mentioned occupants.
func (p *Portal) xmppBody(ctx context.Context, content *event.MessageEventContent) (string, []xmpp.Reference) {
	return p.conv.XMPPBody(ctx, names{p}, content)
}
