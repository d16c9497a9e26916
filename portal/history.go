package portal

import (
	"context"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"mellium.im/xmpp/jid"

	"github.com/mxpp/mxpp/xmpp"
)

// sendHistory sends a joining session the room's recent messages with
// XEP-0203 delay stamps (XEP-0045 §7.2.14), fetched live from the
// homeserver: the bridge keeps no history. Only rooms whose history
// visibility is shared or world_readable have any to give; for joined and
// invited, nothing from before the user's membership, which has just begun,
// may be shown. The homeserver is asked as the user's puppet, so it applies
// the visibility rules as well.
func (p *Portal) sendHistory(ctx context.Context, occ *occupant, to jid.JID, req *xmpp.MUCHistory) {
	limit := p.deps.HistoryMessages
	var since time.Time
	if req != nil {
		if req.MaxStanzas != nil {
			limit = min(limit, *req.MaxStanzas)
		}
		if req.MaxChars != nil && *req.MaxChars == 0 {
			limit = 0
		}
		if req.Seconds != nil {
			since = time.Now().Add(-time.Duration(*req.Seconds) * time.Second)
		}
		if req.Since != nil && req.Since.After(since) {
			since = *req.Since
		}
	}
	switch p.info.HistoryVisibility {
	case event.HistoryVisibilityShared, event.HistoryVisibilityWorldReadable:
	default:
		return
	}
	if limit <= 0 {
		return
	}
	evts, err := p.deps.Matrix.RecentMessages(ctx, p.RoomID, occ.puppet, limit)
	if err != nil {
		p.log.Warn().Err(err).Msg("Failed to fetch history for a joining occupant")
		return
	}
	for _, evt := range evts {
		stamp := time.UnixMilli(evt.Timestamp)
		content := evt.Content.AsMessage()
		if stamp.Before(since) || content.Body == "" || evt.Sender == p.deps.Matrix.BotID() || content.RelatesTo.GetReplaceID() != "" ||
			p.deps.IsCommand != nil && p.deps.IsCommand(content.Body) {
			continue // edits are shown by the message they edit, as it is now; commands are for the bot
		}
		body, refs := p.xmppBody(ctx, content)
		p.send(ctx, &xmpp.Message{
			ID: evt.ID.String(), Type: xmpp.TypeGroupchat, To: xmpp.A(to),
			From:       xmpp.A(p.occupantJID(p.historyNick(evt.Sender))),
			Body:       body,
			References: refs,
			Delay:      &xmpp.Delay{From: p.roomJID.String(), Stamp: stamp.UTC()},
			StanzaID:   &xmpp.StanzaID{ID: evt.ID.String(), By: p.roomJID.String()},
			OccupantID: p.occupantID(evt.Sender),
		})
	}
}

// historyNick is the nick a past message is shown under: the sender's nick
// if it is still in the room, else a name made from its address.
func (p *Portal) historyNick(u id.UserID) string {
	if nick := p.nickOf(u); nick != "" {
		return nick
	}
	if remote, ok := p.deps.Matrix.ParsePuppetID(u); ok {
		if j, err := xmpp.ParseJID(remote); err == nil && j.Localpart() != "" {
			return j.Localpart()
		}
		return remote
	}
	if nick := cleanNick(u.Localpart()); nick != "" {
		return nick
	}
	return u.String()
}
