package msgconv

import (
	"context"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxpp/mxpp/database"
)

// Bounds of one sender's reactions to one message.
const (
	MaxReactions     = 20
	MaxReactionBytes = 64
)

// Reactor is what keeping reactions in step needs of Matrix.
// *matrix.Connector implements it.
type Reactor interface {
	MatrixSender
	Redact(ctx context.Context, roomID id.RoomID, actor id.UserID, eventID id.EventID, reason, txnID string) error
	GetEvent(ctx context.Context, roomID id.RoomID, eventID id.EventID) (*event.Event, error)
}

// Reactions keeps one room's reactions in step between XEP-0444, where a
// sender sends its whole set of reactions to a message each time, and
// Matrix, where each reaction is an event. Keys are kept as hashes only
// (Hash, keyed with the bridge's secret).
type Reactions struct {
	Sender
	Matrix Reactor
	Hash   func(key string) string
}

// Apply makes a puppet's reactions to target on Matrix the set keys:
// reactions new in it are sent, the ones gone from it redacted. senderKey
// names the XMPP sender for transaction IDs, and stanzaID the reacting
// stanza: reacting again after taking a reaction back is a new event, not
// a retry of the first one. It returns the keys kept (cleaned, at most
// MaxReactions), and the homeserver's refusal of a new reaction, if any.
func (r Reactions) Apply(ctx context.Context, target id.EventID, puppet id.UserID, senderKey, stanzaID string, keys []string) ([]string, error) {
	log := zerolog.Ctx(ctx)
	want := map[string]string{} // hash -> key
	var kept []string
	for _, k := range keys {
		k = strings.TrimSpace(k)
		if k == "" || len(k) > MaxReactionBytes || !utf8.ValidString(k) {
			continue
		}
		if h := r.Hash(k); want[h] == "" && len(want) < MaxReactions {
			want[h] = k
			kept = append(kept, k)
		}
	}
	have, err := r.DB.Reaction.GetBySender(ctx, r.RoomID, target, puppet)
	if err != nil {
		return kept, err
	}
	had := map[string]*database.Reaction{}
	for _, row := range have {
		had[row.KeyHash] = row
	}
	for _, k := range kept {
		h := r.Hash(k)
		if had[h] != nil {
			continue
		}
		content := &event.ReactionEventContent{RelatesTo: event.RelatesTo{Type: event.RelAnnotation, EventID: target, Key: k}}
		key := ""
		if stanzaID != "" {
			key = "react:" + stanzaID + ":" + target.String() + ":" + h
		}
		txn := TxnID(r.RoomID.String(), senderKey, key, "")
		evtID, err := r.Send(ctx, puppet, txn, event.EventReaction, content, time.Time{})
		if err != nil {
			return kept, err
		}
		err = r.DB.Reaction.Insert(ctx, &database.Reaction{RoomID: r.RoomID, EventID: evtID, TargetEventID: target,
			Sender: puppet, KeyHash: h, Timestamp: time.Now()})
		if err != nil {
			log.Error().Err(err).Msg("Failed to store a reaction")
		} else {
			r.Sent(ctx, txn)
		}
	}
	for h, row := range had {
		if _, keep := want[h]; keep {
			continue
		}
		txn := TxnID(r.RoomID.String(), senderKey, "unreact:"+row.EventID.String(), "")
		if err := r.Matrix.Redact(ctx, r.RoomID, puppet, row.EventID, "", txn); err != nil {
			log.Info().Err(err).Msg("Failed to take back a reaction on Matrix")
			continue
		}
		if err := r.DB.Reaction.Delete(ctx, r.RoomID, row.EventID); err != nil {
			log.Error().Err(err).Msg("Failed to delete a reaction")
		}
	}
	return kept, nil
}

// KeysOf returns a Matrix user's current reactions to a message, for
// XEP-0444's whole set. Keys are not stored: known holds those at hand,
// the rest are read back from the reaction events.
func (r Reactions) KeysOf(ctx context.Context, sender id.UserID, target id.EventID, known map[id.EventID]string) ([]string, error) {
	rows, err := r.DB.Reaction.GetBySender(ctx, r.RoomID, target, sender)
	if err != nil {
		return nil, err
	}
	var keys []string
	for _, row := range rows {
		key, ok := known[row.EventID]
		if !ok {
			evt, err := r.Matrix.GetEvent(ctx, r.RoomID, row.EventID)
			if err != nil {
				continue
			}
			if c, isReaction := evt.Content.Parsed.(*event.ReactionEventContent); isReaction {
				key = c.RelatesTo.Key
			}
		}
		if key != "" && !slices.Contains(keys, key) {
			keys = append(keys, key)
		}
	}
	return keys, nil
}
