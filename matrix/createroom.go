package matrix

// Creating the rooms the bridge owns on Matrix: direct chats it opens for
// XMPP users, and portal rooms into MUCs hosted elsewhere.

import (
	"context"
	"fmt"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// DirectRoom is a direct chat the bridge opens on Matrix for an XMPP user.
type DirectRoom struct {
	// Puppet creates the room and invites User; the bot joins too, as the
	// bridge's device must be a member to get the room's keys.
	Puppet, User id.UserID
	// Displayname is the puppet's name in the room.
	Displayname string
	// Name and Topic, if set, name the room: a private chat says which
	// room it came from.
	Name, Topic string
	Encrypted   bool
	// BridgeStateKey and BridgeState make the room's m.bridge state.
	BridgeStateKey string
	BridgeState    any
}

// functionalMembers is the state event that tells clients which members are
// services, so that a direct chat is named after the other person only.
var functionalMembers = event.Type{Type: "io.element.functional_members", Class: event.StateEventType}

// CreateDirectRoom creates a direct chat (is_direct) as the puppet, with the
// user and the bot invited and everyone at power level 100, as in a direct
// chat Matrix clients create. The bot joins before it returns.
func (c *Connector) CreateDirectRoom(ctx context.Context, r DirectRoom) (id.RoomID, error) {
	if err := c.EnsurePuppet(ctx, r.Puppet, r.Displayname); err != nil {
		return "", err
	}
	bot := c.BotID()
	state := func(t event.Type, key string, content any) *event.Event {
		return &event.Event{Type: t, StateKey: &key, Content: event.Content{Parsed: content}}
	}
	initial := []*event.Event{
		state(functionalMembers, "", map[string]any{"service_members": []id.UserID{bot}}),
	}
	if r.BridgeState != nil {
		initial = append(initial, state(event.StateBridge, r.BridgeStateKey, r.BridgeState),
			state(event.StateHalfShotBridge, r.BridgeStateKey, r.BridgeState))
	}
	if r.Encrypted {
		initial = append(initial, state(event.StateEncryption, "", &event.EncryptionEventContent{Algorithm: id.AlgorithmMegolmV1}))
	}
	resp, err := c.Intent(r.Puppet).CreateRoom(ctx, &mautrix.ReqCreateRoom{
		Preset:       "trusted_private_chat",
		IsDirect:     true,
		Name:         r.Name,
		Topic:        r.Topic,
		Invite:       []id.UserID{r.User, bot},
		InitialState: initial,
		PowerLevelOverride: &event.PowerLevelsEventContent{
			Users: map[id.UserID]int{r.Puppet: 100, bot: 100, r.User: 100},
		},
	})
	if err != nil {
		return "", fmt.Errorf("%s failed to create a direct chat with %s: %w", r.Puppet, r.User, err)
	}
	if err = c.JoinBot(ctx, resp.RoomID); err != nil {
		return resp.RoomID, err
	}
	if r.Displayname != "" {
		if err = c.SetPuppetRoomName(ctx, resp.RoomID, r.Puppet, r.Displayname); err != nil {
			c.log.Warn().Err(err).Stringer("room_id", resp.RoomID).Msg("Failed to name the puppet in a direct chat")
		}
	}
	return resp.RoomID, nil
}

// PortalRoom is a room the bridge creates for a portal into a MUC hosted
// elsewhere.
type PortalRoom struct {
	// AliasLocalpart is the localpart of the room's alias.
	AliasLocalpart string
	Name, Topic    string
	// Public lets every user of the homeserver join; otherwise users need
	// an invitation.
	Public bool
	// Federate is the room's m.federate: false keeps it on this
	// homeserver, whatever the homeserver's federation settings.
	Federate bool
	// BridgeStateKey and BridgeState make the room's m.bridge state.
	BridgeStateKey string
	BridgeState    any
	Invite         []id.UserID
}

// BotLevel is the bridge bot's power level in the rooms it creates: above
// every level it gives puppets (100 at most), so that it can always change
// them.
const BotLevel = 9001

// CreatePortalRoom creates a portal room as the bot, not listed in the
// room directory, and returns its ID.
func (c *Connector) CreatePortalRoom(ctx context.Context, r PortalRoom) (id.RoomID, error) {
	bot := c.BotID()
	state := func(t event.Type, key string, content any) *event.Event {
		return &event.Event{Type: t, StateKey: &key, Content: event.Content{Parsed: content}}
	}
	initial := []*event.Event{
		state(functionalMembers, "", map[string]any{"service_members": []id.UserID{bot}}),
		state(event.StateHistoryVisibility, "", &event.HistoryVisibilityEventContent{HistoryVisibility: event.HistoryVisibilityShared}),
	}
	if r.BridgeState != nil {
		initial = append(initial, state(event.StateBridge, r.BridgeStateKey, r.BridgeState),
			state(event.StateHalfShotBridge, r.BridgeStateKey, r.BridgeState))
	}
	preset := "private_chat"
	if r.Public {
		preset = "public_chat"
	}
	req := &mautrix.ReqCreateRoom{
		Visibility:         "private",
		Preset:             preset,
		RoomAliasName:      r.AliasLocalpart,
		Name:               r.Name,
		Topic:              r.Topic,
		Invite:             r.Invite,
		InitialState:       initial,
		PowerLevelOverride: &event.PowerLevelsEventContent{Users: map[id.UserID]int{bot: BotLevel}},
	}
	if !r.Federate {
		req.CreationContent = map[string]any{"m.federate": false}
	}
	resp, err := c.Bot().CreateRoom(ctx, req)
	if err != nil {
		return "", fmt.Errorf("failed to create the portal room %s: %w", r.AliasLocalpart, err)
	}
	return resp.RoomID, nil
}

// CreateBotChat opens a direct chat of the bot with a Matrix user: a
// private room marked is_direct, the user invited. The bot talks to users
// there on its own (a contact request to answer).
func (c *Connector) CreateBotChat(ctx context.Context, user id.UserID) (id.RoomID, error) {
	resp, err := c.Bot().CreateRoom(ctx, &mautrix.ReqCreateRoom{
		Visibility: "private",
		Preset:     "trusted_private_chat",
		Name:       "XMPP bridge",
		Invite:     []id.UserID{user},
		IsDirect:   true,
	})
	if err != nil {
		return "", fmt.Errorf("failed to open a chat with %s: %w", user, err)
	}
	return resp.RoomID, nil
}
