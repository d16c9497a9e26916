package msgconv

import (
	"context"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxpp/mxpp/database"
)

// MatrixSender sends events to Matrix rooms as puppets.
// *matrix.Connector implements it.
type MatrixSender interface {
	SendMessage(ctx context.Context, roomID id.RoomID, sender id.UserID, txnID string, evtType event.Type, content any, ts time.Time) (id.EventID, error)
	FindSent(ctx context.Context, roomID id.RoomID, sender id.UserID, txnID string) id.EventID
}

// Sender sends the events XMPP stanzas make, in one room, exactly once.
// Transaction IDs alone do not ensure that: a homeserver may forget them
// (Dendrite does across restarts, and when the sender disconnected before
// the answer). So each send is noted in the database (pending_send)
// before it goes out, and a note left over from an attempt the bridge did
// not live to finish makes it look for the event in the room first. Once
// the event ID is stored, Sent drops the note. Transaction IDs of random
// make (stanzas without an id) cannot come again and are not noted.
type Sender struct {
	DB     *database.Database
	Matrix MatrixSender
	RoomID id.RoomID
}

// Send sends an event as sender, with the stanza's transaction ID; ts is
// its time for a message from an archive, zero for now.
func (s Sender) Send(ctx context.Context, sender id.UserID, txn string, evtType event.Type, content any, ts time.Time) (id.EventID, error) {
	if strings.HasPrefix(txn, RandomTxnPrefix) {
		return s.Matrix.SendMessage(ctx, s.RoomID, sender, txn, evtType, content, ts)
	}
	log := zerolog.Ctx(ctx)
	unfinished, err := s.DB.Message.BeginSend(ctx, s.RoomID, txn)
	if err != nil {
		log.Error().Err(err).Msg("Failed to note a send to Matrix")
	}
	if unfinished {
		if evtID := s.Matrix.FindSent(ctx, s.RoomID, sender, txn); evtID != "" {
			log.Info().Stringer("event_id", evtID).Msg("Found the event of a send cut off by a restart")
			return evtID, nil
		}
	}
	return s.Matrix.SendMessage(ctx, s.RoomID, sender, txn, evtType, content, ts)
}

// Store stores the mapping of the message sent with txn and drops the note
// of its send, in one commit.
func (s Sender) Store(ctx context.Context, m *database.Message, txn string) error {
	if strings.HasPrefix(txn, RandomTxnPrefix) {
		return s.DB.Message.Insert(ctx, m)
	}
	return s.DB.Message.InsertSent(ctx, m, txn)
}

// Sent drops the note of a send whose event ID is stored.
func (s Sender) Sent(ctx context.Context, txn string) {
	if strings.HasPrefix(txn, RandomTxnPrefix) {
		return
	}
	if err := s.DB.Message.FinishSend(ctx, s.RoomID, txn); err != nil {
		zerolog.Ctx(ctx).Error().Err(err).Msg("Failed to drop the note of a finished send")
	}
}
