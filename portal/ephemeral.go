package portal

import (
	"context"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"mellium.im/xmpp/jid"

	"github.com/mxpp/mxpp/database"
	"github.com/mxpp/mxpp/msgconv"
	"github.com/mxpp/mxpp/xmpp"
)

// handleXMPPChatState makes the puppet type on Matrix while its XMPP user
// composes (XEP-0085), and passes the state on to the other occupants.
func (p *Portal) handleXMPPChatState(ctx context.Context, occ *occupant, state string) {
	if err := p.deps.Matrix.SetTyping(ctx, p.RoomID, occ.puppet, state == "composing"); err != nil {
		p.log.Debug().Err(err).Msg("Failed to bridge a chat state")
	} else {
		p.bridged(ToMatrix, "typing")
	}
	p.broadcast(ctx, occ, func(to jid.JID) any {
		return msgconv.WithChatState(&xmpp.Message{Type: xmpp.TypeGroupchat, From: xmpp.A(p.occupantJID(occ.nick)), To: xmpp.A(to),
			OccupantID: p.occupantID(occ.puppet), NoStore: &xmpp.Empty{}}, state)
	})
}

// permitted reports whether a Matrix user may use the bridge.
func (p *Portal) permitted(u id.UserID) bool { return p.deps.Permitted == nil || p.deps.Permitted(u) }

// handleMatrixTyping turns Matrix typing notifications into chat states:
// composing for members who started typing, active for those who stopped.
func (p *Portal) handleMatrixTyping(ctx context.Context, evt *event.Event) {
	now := map[id.UserID]bool{}
	for _, u := range evt.Content.AsTyping().UserIDs {
		if !p.deps.Matrix.IsBridgeUser(u) && p.roster.members[u] != nil && p.permitted(u) {
			now[u] = true
		}
	}
	changed := map[id.UserID]string{}
	for u := range now {
		if !p.typing[u] {
			changed[u] = "composing"
		}
	}
	for u := range p.typing {
		if !now[u] {
			changed[u] = "active"
		}
	}
	if len(now) == 0 {
		now = nil
	}
	p.typing = now
	for u, state := range changed {
		m := p.roster.members[u]
		if m == nil {
			continue
		}
		p.bridged(ToXMPP, "typing")
		p.kind.tellTyping(ctx, u, m, state)
	}
}

// tellTyping sends a member's chat state from their nick to every session.
func (r muc) tellTyping(ctx context.Context, u id.UserID, m *member, state string) {
	r.broadcast(ctx, nil, func(to jid.JID) any {
		return msgconv.WithChatState(&xmpp.Message{Type: xmpp.TypeGroupchat, From: xmpp.A(r.occupantJID(m.nick)), To: xmpp.A(to),
			OccupantID: r.occupantID(u), NoStore: &xmpp.Empty{}}, state)
	})
}

// handleXMPPDisplayed sends the puppet's read receipt for a message an
// occupant displayed (XEP-0333), and passes the marker on.
func (p *Portal) handleXMPPDisplayed(ctx context.Context, occ *occupant, marker *xmpp.Marker) {
	target, ok := p.replyTarget(ctx, marker.ID)
	if !ok {
		return
	}
	if err := p.deps.Matrix.MarkRead(ctx, p.RoomID, occ.puppet, target); err != nil {
		p.log.Debug().Err(err).Msg("Failed to bridge a displayed marker")
	} else {
		p.bridged(ToMatrix, "receipt")
	}
	p.broadcast(ctx, occ, func(to jid.JID) any {
		return &xmpp.Message{Type: xmpp.TypeGroupchat, From: xmpp.A(p.occupantJID(occ.nick)), To: xmpp.A(to),
			OccupantID: p.occupantID(occ.puppet), Displayed: &xmpp.Marker{ID: target.String()}}
	})
}

// handleMatrixReceipts turns Matrix read receipts into displayed markers
// (XEP-0333) from the reader's nick, for messages that crossed the bridge.
func (p *Portal) handleMatrixReceipts(ctx context.Context, evt *event.Event) {
	for eventID, receipts := range *evt.Content.AsReceipt() {
		for u := range receipts[event.ReceiptTypeRead] {
			m := p.roster.members[u]
			if m == nil || p.deps.Matrix.IsBridgeUser(u) || p.lastRead[u] == eventID || !p.permitted(u) {
				continue
			}
			row, err := p.deps.DB.Message.GetByEventID(ctx, p.RoomID, eventID)
			if err != nil || row == nil {
				continue
			}
			if p.lastRead == nil {
				p.lastRead = map[id.UserID]id.EventID{}
			}
			p.lastRead[u] = eventID
			p.bridged(ToXMPP, "receipt")
			p.kind.tellDisplayed(ctx, u, m, row)
		}
	}
}

// tellDisplayed sends a member's displayed marker for a message from their
// nick to every session; the room's stanza-id of a message is its event ID.
func (r muc) tellDisplayed(ctx context.Context, u id.UserID, m *member, row *database.Message) {
	r.broadcast(ctx, nil, func(to jid.JID) any {
		return &xmpp.Message{Type: xmpp.TypeGroupchat, From: xmpp.A(r.occupantJID(m.nick)), To: xmpp.A(to),
			OccupantID: r.occupantID(u), Displayed: &xmpp.Marker{ID: row.EventID.String()}}
	})
}
