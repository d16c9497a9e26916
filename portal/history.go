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
	if !p.historyShared() || limit <= 0 {
		return
	}
	evts, err := p.deps.Matrix.RecentMessages(ctx, p.RoomID, occ.puppet, limit)
	if err != nil {
		p.log.Warn().Err(err).Msg("Failed to fetch history for a joining occupant")
		return
	}
	for _, evt := range evts {
		if time.UnixMilli(evt.Timestamp).Before(since) {
			continue
		}
		if m := p.pastMessage(ctx, evt); m != nil {
			m.To = xmpp.A(to)
			m.Delay = &xmpp.Delay{From: p.roomJID.String(), Stamp: time.UnixMilli(evt.Timestamp).UTC()}
			p.send(ctx, m)
		}
	}
}

// historyShared reports whether the room lets members see what was said
// before they joined, which history on join and the archive need.
func (p *Portal) historyShared() bool {
	switch p.info.HistoryVisibility {
	case event.HistoryVisibilityShared, event.HistoryVisibilityWorldReadable:
		return true
	}
	return false
}

// pastMessage is a past Matrix message as the room shows it, or nil for
// what is not shown: the bot's notices, bot commands, and edits (a message
// is shown as it was first sent).
func (p *Portal) pastMessage(ctx context.Context, evt *event.Event) *xmpp.Message {
	if !p.shownLater(evt) {
		return nil
	}
	body, refs := p.xmppBody(ctx, evt.Content.AsMessage())
	return &xmpp.Message{
		ID: evt.ID.String(), Type: xmpp.TypeGroupchat,
		From:       xmpp.A(p.occupantJID(p.historyNick(evt.Sender))),
		Body:       body,
		References: refs,
		StanzaID:   &xmpp.StanzaID{ID: evt.ID.String(), By: p.roomJID.String()},
		OccupantID: p.occupantID(evt.Sender),
	}
}

// shownLater reports whether a past message is shown by pastMessage.
func (p *Portal) shownLater(evt *event.Event) bool {
	content := evt.Content.AsMessage()
	return content.Body != "" && evt.Sender != p.deps.Matrix.BotID() && content.RelatesTo.GetReplaceID() == "" &&
		(p.deps.IsCommand == nil || !p.deps.IsCommand(content.Body))
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
