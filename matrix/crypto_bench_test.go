package matrix

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"maunium.net/go/mautrix/crypto"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// encryptedRoomStore is the state a crypto machine needs of one encrypted
// room, without a database.
type encryptedRoomStore struct{}

func (encryptedRoomStore) IsEncrypted(context.Context, id.RoomID) (bool, error) { return true, nil }
func (encryptedRoomStore) GetEncryptionEvent(context.Context, id.RoomID) (*event.EncryptionEventContent, error) {
	return &event.EncryptionEventContent{Algorithm: id.AlgorithmMegolmV1}, nil
}
func (encryptedRoomStore) GetHistoryVisibility(context.Context, id.RoomID) (*event.HistoryVisibilityEventContent, error) {
	return &event.HistoryVisibilityEventContent{HistoryVisibility: event.HistoryVisibilityShared}, nil
}
func (encryptedRoomStore) FindSharedRooms(context.Context, id.UserID) ([]id.RoomID, error) {
	return nil, nil
}

// BenchmarkMessageEncryption is the per-message cost of end-to-bridge
// encryption beside the unencrypted path: what the bridge does to one
// message before sending it (encode it; or encrypt it with the room's
// megolm session and encode that), and what it does to one it receives
// (parse it; or decrypt it). The network and the homeserver are the same
// for both and left out.
func BenchmarkMessageEncryption(b *testing.B) {
	ctx := context.Background()
	// Sharing the session with nobody still sends an empty to-device batch.
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("{}")) }))
	defer hs.Close()
	mach := loadMachine(b, hs.URL, crypto.NewMemoryStore(nil))
	room := id.RoomID("!bench:hs.test")
	if err := mach.ShareGroupSession(ctx, room, nil); err != nil {
		b.Fatal(err)
	}
	content := &event.MessageEventContent{MsgType: event.MsgText, Body: "A message of ordinary length, about as long as most chat messages are."}
	sample, err := mach.EncryptMegolmEvent(ctx, room, event.EventMessage, content)
	if err != nil {
		b.Fatal(err)
	}
	encrypted := &event.Event{Type: event.EventEncrypted, ID: "$e", RoomID: room, Sender: mach.Client.UserID,
		Content: event.Content{Parsed: sample}}
	plain, _ := json.Marshal(content)

	b.Run("send/plain", func(b *testing.B) {
		for b.Loop() {
			if _, err := json.Marshal(content); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("send/encrypted", func(b *testing.B) {
		for b.Loop() {
			enc, err := mach.EncryptMegolmEvent(ctx, room, event.EventMessage, content)
			if errors.Is(err, crypto.ErrSessionExpired) {
				// A new session every 100 messages, as the bridge does.
				if err = mach.ShareGroupSession(ctx, room, nil); err == nil {
					enc, err = mach.EncryptMegolmEvent(ctx, room, event.EventMessage, content)
				}
			}
			if err != nil {
				b.Fatal(err)
			}
			if _, err = json.Marshal(enc); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("receive/plain", func(b *testing.B) {
		for b.Loop() {
			var c event.MessageEventContent
			if err := json.Unmarshal(plain, &c); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("receive/encrypted", func(b *testing.B) {
		for b.Loop() {
			// The same event again: replay protection allows the same ID.
			evt := *encrypted
			if _, err := mach.DecryptMegolmEvent(ctx, &evt); err != nil {
				b.Fatal(err)
			}
		}
	})
}
