package bridge

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"mellium.im/xmpp/jid"

	"github.com/mxpp/mxpp/database"
	"github.com/mxpp/mxpp/matrix"
	"github.com/mxpp/mxpp/portal"
	"github.com/mxpp/mxpp/xmpp"
)

// errNoAlias is returned by expose for rooms XMPP cannot address.
var errNoAlias = errors.New("the room needs a canonical alias on this homeserver to be reached from XMPP")

// expose opens a room to XMPP users (bridge.exposure opt-in): the bot
// joins, the room gets a portal and the m.bridge state event, and the bot
// tells the members, so that everyone can see that XMPP users may read
// along. marked is false when the bot could not set the state event,
// usually because its power level is too low; encrypted tells whether the
// room is encrypted.
func (b *Bridge) expose(ctx context.Context, roomID id.RoomID, by id.UserID) (muc jid.JID, marked, encrypted bool, err error) {
	if err = b.Matrix.JoinBot(ctx, roomID); err != nil {
		return jid.JID{}, false, false, err
	}
	info, err := b.Matrix.RoomInfo(ctx, roomID)
	if err != nil {
		return jid.JID{}, false, false, err
	}
	if portal.Reachable(info, b.scheme, b.Config.Homeserver.Domain) != nil {
		return jid.JID{}, false, false, errNoAlias
	}
	muc, err = portal.MUCJID(b.scheme, info.CanonicalAlias)
	if err != nil {
		return jid.JID{}, false, false, errNoAlias
	}
	if err = b.encryptionRefusal(info); err != nil {
		return jid.JID{}, false, false, err
	}
	if row, err := b.DB.Portal.GetByRoomID(ctx, roomID); err == nil && row != nil && row.IsDirect() {
		return jid.JID{}, false, false, errors.New("this is a direct chat with an XMPP user, not a room")
	}
	settings, err := b.DB.Settings.Get(ctx, roomID)
	if err != nil {
		return jid.JID{}, false, false, err
	}
	settings.Exposed, settings.ExposedBy, settings.ExposedAt = true, by, time.Now()
	if err = b.DB.Settings.Put(ctx, settings); err != nil {
		return jid.JID{}, false, false, err
	}
	if row, err := b.DB.Portal.GetByRoomID(ctx, roomID); err != nil {
		return jid.JID{}, false, false, err
	} else if row == nil {
		err = b.DB.Portal.Insert(ctx, &database.Portal{RoomID: roomID, Alias: info.CanonicalAlias, MUCLocal: muc.Localpart(), CreatedAt: time.Now()})
		if err != nil {
			return jid.JID{}, false, false, err
		}
	}
	b.misses.forget(muc.Localpart())
	marked = true
	if err = b.Matrix.SetBridgeState(ctx, roomID, b.bridgeStateKey(muc), b.bridgeState(info, muc, by)); err != nil {
		b.Log.Warn().Err(err).Stringer("room_id", roomID).Msg("Failed to set the bridge state event")
		marked = false
	}
	b.Audit.Info().Str("action", "expose").Stringer("room_id", roomID).Stringer("by", by).Stringer("muc", muc).
		Str("result", "ok").Msg("Room exposed to XMPP")
	return muc, marked, info.Encrypted, nil
}

// unexpose closes a room to XMPP: occupants are removed, the portal and the
// m.bridge state go.
func (b *Bridge) unexpose(ctx context.Context, roomID id.RoomID, by id.UserID) error {
	settings, err := b.DB.Settings.Get(ctx, roomID)
	if err != nil {
		return err
	}
	settings.Exposed = false
	if err = b.DB.Settings.Put(ctx, settings); err != nil {
		return err
	}
	if err = b.closeRoom(ctx, roomID); err != nil {
		return err
	}
	b.Audit.Info().Str("action", "unexpose").Stringer("room_id", roomID).Stringer("by", by).Str("result", "ok").
		Msg("Room closed to XMPP")
	return nil
}

// closeRoom removes a room's XMPP occupants (with a destroy notice), its
// portal and its m.bridge state. The room's settings stay.
func (b *Bridge) closeRoom(ctx context.Context, roomID id.RoomID) error {
	row, err := b.DB.Portal.GetByRoomID(ctx, roomID)
	if err != nil || row == nil {
		return err
	}
	if p, err := b.startHosted(row); err == nil {
		done := make(chan struct{})
		if p.Queue(ctx, portal.Unexpose{Done: done}) {
			select {
			case <-done:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	if err = b.DB.Portal.Delete(ctx, roomID); err != nil {
		return err
	}
	if muc, err := portal.MUCJID(b.scheme, row.Alias); err == nil {
		if err = b.Matrix.SetBridgeState(ctx, roomID, b.bridgeStateKey(muc), nil); err != nil {
			b.Log.Warn().Err(err).Stringer("room_id", roomID).Msg("Failed to clear the bridge state event")
		}
	}
	return nil
}

func (b *Bridge) bridgeStateKey(muc jid.JID) string {
	return "xmpp://" + b.XMPP.Domain().String() + "/" + muc.Localpart()
}

// DecryptsKey marks, in a room's m.bridge state, that the bridge decrypts
// the room's messages to pass them to XMPP.
const DecryptsKey = "net.mxpp.decrypts"

// bridgeState is the m.bridge content (MSC2346) of a room reachable as muc.
// In an encrypted room it also says that the bridge decrypts (DecryptsKey).
func (b *Bridge) bridgeState(info *matrix.RoomInfo, muc jid.JID, creator id.UserID) any {
	name := info.Name
	if name == "" {
		name = muc.String()
	}
	return b.bridgeInfo(event.BridgeInfoSection{ID: muc.String(), DisplayName: name, ExternalURL: xmpp.URI(muc, "join")},
		creator, info.Encrypted)
}

// bridgeInfo is the m.bridge content for a channel (a room's MUC, or the
// XMPP user of a direct chat); when the bridge decrypts, it says so.
func (b *Bridge) bridgeInfo(channel event.BridgeInfoSection, creator id.UserID, decrypts bool) any {
	content := &event.BridgeEventContent{
		BridgeBot: b.Matrix.BotID(),
		Creator:   creator,
		Protocol:  event.BridgeInfoSection{ID: "xmpp", DisplayName: "XMPP"},
		Network:   &event.BridgeInfoSection{ID: b.XMPP.Domain().String(), DisplayName: "XMPP via " + b.XMPP.Domain().String()},
		Channel:   channel,
	}
	if !decrypts {
		return content
	}
	return &event.Content{Parsed: content, Raw: map[string]any{DecryptsKey: true}}
}

// decryptNotice is what the bot tells an encrypted room it opens to XMPP.
const decryptNotice = " This room is encrypted: the bridge decrypts its messages so that they reach XMPP users, " +
	"who read them unencrypted, and encrypts theirs."

// encryptionRefusal says why a room may not be bridged as its encryption
// stands, or nil.
func (b *Bridge) encryptionRefusal(info *matrix.RoomInfo) error {
	switch {
	case info.Encrypted && !b.Matrix.EncryptionOn():
		return errors.New("the room is encrypted and this bridge does not bridge encrypted rooms (encryption.allow)")
	case !info.Encrypted && b.Config.Encryption.Require:
		return errors.New("this bridge bridges only encrypted rooms (encryption.require); turn on encryption in the room first")
	}
	return nil
}

// roomOpen reports whether XMPP users may reach a room, as the exposure
// mode says, and why not.
func (b *Bridge) roomOpen(ctx context.Context, roomID id.RoomID) (bool, error) {
	switch b.Config.Bridge.Exposure {
	case ExposureOff:
		return false, nil
	case ExposurePublic:
		return true, nil
	}
	settings, err := b.DB.Settings.Get(ctx, roomID)
	if err != nil {
		return false, fmt.Errorf("failed to read room settings: %w", err)
	}
	return settings.Exposed, nil
}

// findClosedRooms notes, at start, the bridged rooms that the exposure
// setting no longer opens (it changed, or a room was never exposed under
// opt-in): from then on nothing crosses in them. Two queries, whatever the
// number of rooms: it runs before the bridge is ready.
func (b *Bridge) findClosedRooms(ctx context.Context) error {
	if b.Config.Bridge.Exposure == ExposurePublic {
		return nil
	}
	rows, err := b.DB.Portal.GetAll(ctx)
	if err != nil {
		return fmt.Errorf("failed to list portals: %w", err)
	}
	exposed := map[id.RoomID]bool{}
	if b.Config.Bridge.Exposure != ExposureOff {
		settings, err := b.DB.Settings.GetExposed(ctx)
		if err != nil {
			return fmt.Errorf("failed to read room settings: %w", err)
		}
		for _, s := range settings {
			exposed[s.RoomID] = true
		}
	}
	for _, row := range rows {
		if !exposed[row.RoomID] {
			b.Log.Warn().Stringer("room_id", row.RoomID).Str("exposure", b.Config.Bridge.Exposure).
				Msg("Closing a bridged room that bridge.exposure no longer opens to XMPP")
			b.mu.Lock()
			b.closing[row.RoomID] = true
			b.mu.Unlock()
		}
	}
	return nil
}

// closeClosedRooms removes the XMPP occupants of the rooms findClosedRooms
// found, once the component can tell them, and deletes their portals.
func (b *Bridge) closeClosedRooms(ctx context.Context) {
	b.mu.Lock()
	rooms := make([]id.RoomID, 0, len(b.closing))
	for roomID := range b.closing {
		rooms = append(rooms, roomID)
	}
	b.mu.Unlock()
	for _, roomID := range rooms {
		if err := b.closeRoom(ctx, roomID); err != nil {
			b.Log.Error().Err(err).Stringer("room_id", roomID).Msg("Failed to close a room")
			continue
		}
		b.Audit.Info().Str("action", "close").Stringer("room_id", roomID).Str("exposure", b.Config.Bridge.Exposure).
			Str("result", "ok").Msg("Room closed to XMPP by the exposure setting")
		if _, err := b.Matrix.SendNotice(ctx, roomID, "This room is no longer reachable from XMPP.", ""); err != nil {
			b.Log.Warn().Err(err).Msg("Failed to announce the end of the bridge in the room")
		}
		b.mu.Lock()
		delete(b.closing, roomID)
		b.mu.Unlock()
	}
}

func (b *Bridge) isClosing(roomID id.RoomID) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closing[roomID]
}

// encryptionTurnedOn follows a bridged room that turned encryption on: the
// room is closed to XMPP if the bridge does not bridge encrypted rooms,
// else its members learn that the bridge decrypts, also from m.bridge.
func (b *Bridge) encryptionTurnedOn(roomID id.RoomID) {
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	defer cancel()
	if !b.Matrix.EncryptionOn() {
		if err := b.closeRoom(ctx, roomID); err != nil {
			b.Log.Error().Err(err).Stringer("room_id", roomID).Msg("Failed to close a room that turned encryption on")
			return
		}
		b.Audit.Info().Str("action", "close").Stringer("room_id", roomID).Str("reason", "encrypted").Str("result", "ok").
			Msg("Room closed to XMPP: it turned encryption on")
		if _, err := b.Matrix.SendNotice(ctx, roomID, "This room turned encryption on, and this bridge does not bridge "+
			"encrypted rooms: it is no longer reachable from XMPP.", ""); err != nil {
			b.Log.Warn().Err(err).Msg("Failed to announce the end of the bridge in the room")
		}
		return
	}
	info, err := b.Matrix.RoomInfo(ctx, roomID)
	if err != nil {
		b.Log.Warn().Err(err).Stringer("room_id", roomID).Msg("Failed to read a room that turned encryption on")
		return
	}
	if muc, err := portal.MUCJID(b.scheme, info.CanonicalAlias); err == nil {
		if err = b.Matrix.SetBridgeState(ctx, roomID, b.bridgeStateKey(muc), b.bridgeState(info, muc, "")); err != nil {
			b.Log.Info().Err(err).Msg("Failed to update the bridge state event")
		}
	}
	if _, err = b.Matrix.SendNotice(ctx, roomID, strings.TrimSpace(decryptNotice), ""); err != nil {
		b.Log.Warn().Err(err).Msg("Failed to tell the room that the bridge decrypts")
	}
}
