package portal

import (
	"context"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"mellium.im/xmpp/jid"

	"github.com/mxpp/mxpp/database"
	"github.com/mxpp/mxpp/xmpp"
)

// A Portal the component runs is of one of two kinds: a room it hosts as a
// MUC (muc), or a direct chat between one Matrix user and one XMPP user
// (directChat, direct.go). The Portal does what both do alike: the loop,
// the message map, translation, relations, files, the Matrix members; its
// kind does what differs: which events it takes and how, and who on XMPP
// hears what the Matrix side does. The third kind of bridged room, a MUC
// hosted elsewhere that Matrix users join, is a portal of its own (package
// remotemuc); the bridge runs all three behind one small interface.
type kind interface {
	// onLoad fills the kind's state, once the room's state is read.
	onLoad(ctx context.Context)
	// onMatrixEvent handles an event of the Matrix room, and
	// onControl a decision of the bridge; both return false when the
	// portal ended.
	onMatrixEvent(ctx context.Context, evt *event.Event) bool
	onControl(ctx context.Context, evt any) bool
	// onXMPPMessage handles a message stanza to the portal.
	onXMPPMessage(ctx context.Context, msg *xmpp.Message)
	// onBridged confirms an XMPP message that reached Matrix, onRepeat one
	// that was there already, and onSubject handles a message that sets
	// the subject.
	onBridged(ctx context.Context, msg *xmpp.Message, occ *occupant, evtID id.EventID)
	onRepeat(ctx context.Context, msg *xmpp.Message, occ *occupant, from jid.JID, evtID id.EventID)
	onSubject(ctx context.Context, occ *occupant, msg *xmpp.Message)
	// sharer returns the occupant whose shared file is ready, if it is
	// still there.
	sharer(from jid.JID) (*occupant, bool)

	// What a Matrix member did, told to XMPP.
	tellTyping(ctx context.Context, u id.UserID, m *member, state string)
	tellDisplayed(ctx context.Context, u id.UserID, m *member, row *database.Message)
	tellReactions(ctx context.Context, nick string, userID id.UserID, target id.EventID, keys []string, skip *occupant)
	tellRetraction(ctx context.Context, nick string, author id.UserID, target id.EventID, moderator *xmpp.Moderated, reason string)
}

// muc is the kind of a room the component hosts as a MUC: every occupant
// session hears everyone.
type muc struct{ *Portal }

var (
	_ kind = muc{}
	_ kind = (*directChat)(nil)
)

func (r muc) onLoad(ctx context.Context) {
	var err error
	if r.listed, err = r.deps.Matrix.InDirectory(ctx, r.RoomID); err != nil {
		r.log.Warn().Err(err).Msg("Failed to read the room's directory visibility")
	}
}

func (r muc) onMatrixEvent(ctx context.Context, evt *event.Event) bool {
	return r.handleRoomMatrixEvent(ctx, evt)
}

func (r muc) onControl(ctx context.Context, evt any) bool { return r.handleControl(ctx, evt) }

func (r muc) onXMPPMessage(ctx context.Context, msg *xmpp.Message) { r.handleRoomXMPPMessage(ctx, msg) }

// onBridged reflects the message to every session, the sender's too: that
// is how a MUC confirms it (XEP-0045 §7.4).
func (r muc) onBridged(ctx context.Context, msg *xmpp.Message, occ *occupant, evtID id.EventID) {
	r.broadcast(ctx, nil, func(to jid.JID) any { return r.reflection(msg, occ, to, evtID.String()) })
}

// onRepeat sends the sender its reflection again.
func (r muc) onRepeat(ctx context.Context, msg *xmpp.Message, occ *occupant, from jid.JID, evtID id.EventID) {
	r.send(ctx, r.reflection(msg, occ, from, evtID.String()))
}

func (r muc) onSubject(ctx context.Context, occ *occupant, msg *xmpp.Message) {
	r.setSubject(ctx, occ, msg)
}

func (r muc) sharer(from jid.JID) (*occupant, bool) { return r.session(from) }
