package bridge

import (
	"context"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// checkDeparted erases the message and reaction mappings of a Matrix user
// who is in no bridged room or direct chat any more. Deactivating an account makes it
// leave every room, and homeservers tell appservices nothing else about
// it, so this is how deactivation erases a user's mappings at once.
func (b *Bridge) checkDeparted(evt *event.Event) {
	if evt.Type != event.StateMember || evt.StateKey == nil || b.Matrix.IsBridgeUser(id.UserID(*evt.StateKey)) {
		return
	}
	switch evt.Content.AsMember().Membership {
	case event.MembershipLeave, event.MembershipBan:
	default:
		return
	}
	userID := id.UserID(*evt.StateKey)
	go func() {
		ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
		defer cancel()
		rows, err := b.DB.Portal.GetAll(ctx)
		if err != nil {
			return
		}
		directs, err := b.DB.Portal.GetDirectByUser(ctx, userID)
		if err != nil {
			return
		}
		for _, row := range append(rows, directs...) {
			if b.Matrix.AS.StateStore.IsInRoom(ctx, row.RoomID, userID) {
				return
			}
		}
		contact, err := b.userJID(userID)
		if err != nil {
			return
		}
		if err = b.DB.Message.DeleteBySender(ctx, contact.String()); err == nil {
			err = b.DB.Reaction.DeleteBySender(ctx, userID)
		}
		if err != nil {
			b.Log.Error().Err(err).Stringer("user_id", userID).Msg("Failed to erase a departed user's mappings")
			return
		}
		b.Audit.Info().Str("action", "erase").Stringer("user_id", userID).Str("result", "ok").
			Msg("Erased the mappings of a Matrix user who left every bridged room")
	}()
}
