package bridge

import (
	"context"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// commandRequest is a command line sent to the bot on Matrix.
type commandRequest struct {
	room   id.RoomID
	sender id.UserID
	event  id.EventID
	line   string
}

// commandText returns the command in a Matrix message: text after the
// command prefix, or, in the bot's direct chat, the whole text.
func (b *Bridge) commandText(ctx context.Context, evt *event.Event, bridged bool) (string, bool) {
	content := evt.Content.AsMessage()
	if content.MsgType != event.MsgText || b.Matrix.IsBridgeUser(evt.Sender) {
		return "", false
	}
	body := strings.TrimSpace(content.Body)
	if b.isCommand(body) {
		return strings.TrimSpace(strings.TrimPrefix(body, b.Config.Bridge.CommandPrefix)), true
	}
	if !bridged && b.Matrix.IsBotChat(ctx, evt.RoomID, evt.Sender) {
		return body, true
	}
	return "", false
}

// runCommands answers bot commands one at a time, off the transaction.
func (b *Bridge) runCommands() {
	for {
		select {
		case <-b.ctx.Done():
			return
		case req := <-b.cmdQueue:
			ctx, cancel := context.WithTimeout(b.ctx, 2*time.Minute)
			env := &cmdEnv{b: b, sender: req.sender, room: req.room, event: req.event}
			answer := b.runCommand(ctx, env, req.line)
			if _, err := b.Matrix.SendNotice(ctx, req.room, answer, req.event); err != nil {
				zerolog.Ctx(ctx).Warn().Err(err).Stringer("room_id", req.room).Msg("Failed to answer a bot command")
			}
			cancel()
		}
	}
}

// isCommand reports whether a message starts with the command prefix.
func (b *Bridge) isCommand(body string) bool {
	rest, ok := strings.CutPrefix(strings.TrimSpace(body), b.Config.Bridge.CommandPrefix)
	return ok && (rest == "" || rest[0] == ' ')
}
