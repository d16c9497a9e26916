package matrix

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/appservice"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// Member is a joined member of a room as the bridge shows it.
type Member struct {
	Displayname string
	AvatarURL   id.ContentURIString
}

// RoomInfo is the part of a room's state the bridge needs.
type RoomInfo struct {
	RoomID id.RoomID
	Name   string
	Topic  string
	// NameSetter and TopicSetter sent the room's name and topic.
	NameSetter, TopicSetter id.UserID
	CanonicalAlias          id.RoomAlias
	AltAliases              []id.RoomAlias
	JoinRule                event.JoinRule
	// PowerLevels is never nil: a room without the event gets the spec's
	// defaults. Its CreateEvent is set where room creators have power
	// of their own (room version 12 on), so that they count as such.
	PowerLevels       *event.PowerLevelsEventContent
	HistoryVisibility event.HistoryVisibility
	Avatar            id.ContentURIString
	// Members holds the joined members, the bridge's own users included.
	Members map[id.UserID]Member
	// Invited holds the users invited and not yet joined; Banned the banned.
	// Both are nil while empty, as most rooms' are: add with Invite and Ban.
	Invited map[id.UserID]bool
	Banned  map[id.UserID]bool
	// Encrypted is whether the room has encryption on.
	Encrypted bool
}

// Invite notes a user as invited.
func (info *RoomInfo) Invite(user id.UserID) {
	if info.Invited == nil {
		info.Invited = map[id.UserID]bool{}
	}
	info.Invited[user] = true
}

// Ban notes a user as banned.
func (info *RoomInfo) Ban(user id.UserID) {
	if info.Banned == nil {
		info.Banned = map[id.UserID]bool{}
	}
	info.Banned[user] = true
}

// ResolveAlias returns the room an alias points to. A missing alias is an
// error that matches mautrix.MNotFound.
func (c *Connector) ResolveAlias(ctx context.Context, alias id.RoomAlias) (id.RoomID, error) {
	resp, err := c.Bot().ResolveAlias(ctx, alias)
	if err != nil {
		return "", fmt.Errorf("failed to resolve %s: %w", alias, err)
	}
	return resp.RoomID, nil
}

// JoinBot makes the bridge bot a member of a room, which is what makes the
// homeserver push the room's events to the bridge.
func (c *Connector) JoinBot(ctx context.Context, roomID id.RoomID) error {
	if err := c.Bot().EnsureJoined(ctx, roomID); err != nil {
		return fmt.Errorf("bot failed to join %s: %w", roomID, err)
	}
	// Fill the state cache (members, encryption): events from before the
	// join never came.
	if _, err := c.Bot().State(ctx, roomID); err != nil {
		c.log.Debug().Err(err).Stringer("room_id", roomID).Msg("Failed to fetch the room state after joining")
	}
	return nil
}

// RoomInfo reads a room's current state as the bridge bot.
func (c *Connector) RoomInfo(ctx context.Context, roomID id.RoomID) (*RoomInfo, error) {
	state, err := c.Bot().State(ctx, roomID)
	if err != nil {
		return nil, fmt.Errorf("failed to get state of %s: %w", roomID, err)
	}
	info := &RoomInfo{RoomID: roomID, JoinRule: event.JoinRuleInvite, HistoryVisibility: event.HistoryVisibilityShared,
		Members: map[id.UserID]Member{}}
	if evt := state[event.StateRoomName][""]; evt != nil {
		info.Name, info.NameSetter = evt.Content.AsRoomName().Name, evt.Sender
	}
	if evt := state[event.StateTopic][""]; evt != nil {
		info.Topic, info.TopicSetter = evt.Content.AsTopic().Topic, evt.Sender
	}
	if evt := state[event.StateCanonicalAlias][""]; evt != nil {
		ca := evt.Content.AsCanonicalAlias()
		info.CanonicalAlias, info.AltAliases = ca.Alias, ca.AltAliases
	}
	if evt := state[event.StateJoinRules][""]; evt != nil {
		info.JoinRule = evt.Content.AsJoinRules().JoinRule
	}
	if evt := state[event.StateHistoryVisibility][""]; evt != nil {
		info.HistoryVisibility = evt.Content.AsHistoryVisibility().HistoryVisibility
	}
	if evt := state[event.StateRoomAvatar][""]; evt != nil {
		info.Avatar = evt.Content.AsRoomAvatar().URL
	}
	info.Encrypted = state[event.StateEncryption][""] != nil
	info.PowerLevels = &event.PowerLevelsEventContent{}
	if evt := state[event.StatePowerLevels][""]; evt != nil {
		info.PowerLevels = evt.Content.AsPowerLevels()
		info.PowerLevels.Events = c.eventLevels.share(info.PowerLevels.Events)
	} else if create := state[event.StateCreate][""]; create != nil {
		// Without a power levels event the creator has 100 (spec §10.5).
		info.PowerLevels.Users = map[id.UserID]int{create.Sender: 100}
	}
	// mautrix attaches the whole create event, raw JSON and all, which
	// would stay in memory for as long as the room's portal. The power
	// checks read it only in room versions whose creators stand above
	// every level, and then only its sender and content.
	info.PowerLevels.CreateEvent = nil
	if create := state[event.StateCreate][""]; create != nil && create.Content.AsCreate().SupportsCreatorPower() {
		info.PowerLevels.CreateEvent = &event.Event{Type: create.Type, RoomID: create.RoomID, Sender: create.Sender,
			Content: event.Content{Parsed: create.Content.AsCreate()}}
	}
	for key, evt := range state[event.StateMember] {
		m := evt.Content.AsMember()
		switch m.Membership {
		case event.MembershipJoin:
			info.Members[id.UserID(key)] = Member{Displayname: m.Displayname, AvatarURL: m.AvatarURL}
		case event.MembershipInvite:
			info.Invite(id.UserID(key))
		case event.MembershipBan:
			info.Ban(id.UserID(key))
		}
	}
	return info, nil
}

// EnsurePuppet registers a puppet with the homeserver if it is new, and gives
// it a global display name then. It is cheap when the puppet exists.
func (c *Connector) EnsurePuppet(ctx context.Context, userID id.UserID, displayname string) error {
	intent := c.Intent(userID)
	if intent.Registered {
		return nil
	}
	known, err := c.AS.StateStore.IsRegistered(ctx, userID)
	if err != nil {
		return fmt.Errorf("failed to check registration of %s: %w", userID, err)
	}
	if err = intent.EnsureRegistered(ctx); err != nil {
		return fmt.Errorf("failed to register %s: %w", userID, err)
	}
	if !known && displayname != "" {
		if err = intent.SetDisplayName(ctx, displayname); err != nil {
			return fmt.Errorf("failed to set display name of %s: %w", userID, err)
		}
	}
	return nil
}

// JoinPuppet makes a puppet a member of a room with a display name for that
// room (its MUC nick). If the room does not let it join by itself, the bot
// invites it first.
func (c *Connector) JoinPuppet(ctx context.Context, roomID id.RoomID, userID id.UserID, displayname string) error {
	if err := c.EnsurePuppet(ctx, userID, displayname); err != nil {
		return err
	}
	intent := c.Intent(userID)
	if err := intent.EnsureJoined(ctx, roomID, appservice.EnsureJoinedParams{}); err != nil {
		return fmt.Errorf("%s failed to join %s: %w", userID, roomID, err)
	}
	return c.SetPuppetRoomName(ctx, roomID, userID, displayname)
}

// SetPuppetRoomName changes a joined puppet's display name in one room with
// a new member event, unless it already has that name there.
func (c *Connector) SetPuppetRoomName(ctx context.Context, roomID id.RoomID, userID id.UserID, displayname string) error {
	member, err := c.AS.StateStore.TryGetMember(ctx, roomID, userID)
	if err != nil || member == nil || member.Displayname == "" {
		// The cache may know the membership without the member event
		// (right after a join): ask the homeserver before sending one more.
		var fetched event.MemberEventContent
		if c.Intent(userID).StateEvent(ctx, roomID, event.StateMember, userID.String(), &fetched) == nil {
			member = &fetched
		}
	}
	if member != nil && member.Membership == event.MembershipJoin && member.Displayname == displayname {
		return nil
	}
	content := &event.MemberEventContent{Membership: event.MembershipJoin, Displayname: displayname}
	if member != nil {
		content.AvatarURL = member.AvatarURL
	}
	if _, err = c.Intent(userID).SendStateEvent(ctx, roomID, event.StateMember, userID.String(), content); err != nil {
		return fmt.Errorf("failed to set display name of %s in %s: %w", userID, roomID, err)
	}
	return nil
}

// LeavePuppet makes a puppet leave a room. Not being in the room is not an
// error.
func (c *Connector) LeavePuppet(ctx context.Context, roomID id.RoomID, userID id.UserID, reason string) error {
	_, err := c.Intent(userID).LeaveRoom(ctx, roomID, &mautrix.ReqLeave{Reason: reason})
	if err != nil && !errors.Is(err, mautrix.MForbidden) && !errors.Is(err, mautrix.MNotFound) {
		return fmt.Errorf("%s failed to leave %s: %w", userID, roomID, err)
	}
	_ = c.AS.StateStore.SetMembership(ctx, roomID, userID, event.MembershipLeave)
	return nil
}

// ForgetRoom drops the cached state of a room the bridge left for good.
func (c *Connector) ForgetRoom(ctx context.Context, roomID id.RoomID) error {
	if s, ok := c.AS.StateStore.(interface {
		ForgetRoom(context.Context, id.RoomID) error
	}); ok {
		if err := s.ForgetRoom(ctx, roomID); err != nil {
			return fmt.Errorf("failed to forget the state of %s: %w", roomID, err)
		}
	}
	return nil
}

// TxnKey is the content key under which a bridged event carries its
// transaction ID, so that a send whose answer was lost can be found.
const TxnKey = "net.mxpp.txn_id"

// Sending retries: attempts, and the first pause (doubled after each).
const sendAttempts = 6

var sendBackoff = time.Second

// SendMessage sends a message event as sender. txnID makes the send
// idempotent: homeservers return the first event for a retry with the same
// ID, while they remember it. They may not across a restart (Dendrite keeps
// them in memory), so the event also carries txnID (TxnKey) and, before
// trying again after an answer that was lost or an error of the server,
// the bridge looks for it among the room's last events. A non-zero ts sets
// the event's origin_server_ts (appservice timestamp massaging).
func (c *Connector) SendMessage(ctx context.Context, roomID id.RoomID, sender id.UserID, txnID string, evtType event.Type, content any, ts time.Time) (id.EventID, error) {
	req := mautrix.ReqSendEvent{TransactionID: txnID}
	if !ts.IsZero() {
		req.Timestamp = ts.UnixMilli()
	}
	sendType, sendContent, err := c.encrypt(ctx, roomID, evtType, content)
	if err != nil {
		return "", err
	}
	// The marker stays outside the encryption, so that FindSent sees it.
	wrapped := &event.Content{Parsed: sendContent, Raw: map[string]any{TxnKey: txnID}}
	intent := c.Intent(sender)
	pause := sendBackoff
	for attempt := 1; ; attempt++ {
		// One HTTP attempt at a time: the retries are ours.
		actx := context.WithValue(c.withoutBodyLogs(ctx), mautrix.MaxAttemptsContextKey, 1)
		resp, err := intent.SendMessageEvent(actx, roomID, sendType, wrapped, req)
		if err == nil {
			return resp.EventID, nil
		}
		if !retryable(err) || attempt == sendAttempts {
			return "", fmt.Errorf("failed to send %s as %s: %w", evtType.Type, sender, err)
		}
		c.log.Warn().Err(err).Stringer("room_id", roomID).Int("attempt", attempt).Stringer("retry_in", pause).
			Msg("Sending to the homeserver failed; retrying")
		select {
		case <-time.After(pause):
		case <-ctx.Done():
			return "", fmt.Errorf("failed to send %s as %s: %w", evtType.Type, sender, err)
		}
		pause *= 2
		if evtID := c.FindSent(ctx, roomID, sender, txnID); evtID != "" {
			c.log.Info().Stringer("event_id", evtID).Msg("The homeserver had taken the event whose answer was lost")
			return evtID, nil
		}
	}
}

// retryable reports whether a failed request may succeed later: no answer
// at all, a server error, or rate limiting. Refusals (4xx) are final.
func retryable(err error) bool {
	var he mautrix.HTTPError
	if !errors.As(err, &he) || he.Response == nil {
		return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
	}
	code := he.Response.StatusCode
	return code >= 500 || code == http.StatusTooManyRequests
}

// FindSent looks among the room's last events for one that sender sent
// with txnID (see SendMessage), and returns its ID or "".
func (c *Connector) FindSent(ctx context.Context, roomID id.RoomID, sender id.UserID, txnID string) id.EventID {
	filter := &mautrix.FilterPart{Senders: []id.UserID{sender}}
	resp, err := c.Intent(sender).Messages(ctx, roomID, "", "", mautrix.DirectionBackward, filter, 50)
	if err != nil {
		return ""
	}
	for _, evt := range resp.Chunk {
		if evt.Sender != sender {
			continue
		}
		var marker struct {
			Txn string `json:"net.mxpp.txn_id"`
		}
		if json.Unmarshal(evt.Content.VeryRaw, &marker) == nil && marker.Txn == txnID {
			return evt.ID
		}
	}
	return ""
}

// FindRoomByAliasFold looks for a published room whose canonical alias
// equals alias without regard to case. It is the fallback of ResolveAlias
// for aliases that reached the bridge case-folded, as MUC JIDs do. It
// returns "" if there is none among the first pages of the room directory.
func (c *Connector) FindRoomByAliasFold(ctx context.Context, alias id.RoomAlias) (id.RoomID, id.RoomAlias, error) {
	const pages = 10
	req := &mautrix.ReqPublicRooms{Limit: 100}
	for range pages {
		resp, err := c.Bot().PublicRooms(ctx, req)
		if err != nil {
			return "", "", fmt.Errorf("failed to list public rooms: %w", err)
		}
		for _, r := range resp.Chunk {
			if strings.EqualFold(r.CanonicalAlias.String(), alias.String()) {
				return r.RoomID, r.CanonicalAlias, nil
			}
		}
		if resp.NextBatch == "" {
			break
		}
		req.Since = resp.NextBatch
	}
	return "", "", nil
}

// withoutBodyLogs keeps mautrix from logging request bodies, which hold
// message text, below trace level (or at all, with RedactBodies): its
// request log uses the context's logger, so that logger is raised to info.
func (c *Connector) withoutBodyLogs(ctx context.Context) context.Context {
	log := zerolog.Ctx(ctx)
	if log.GetLevel() >= zerolog.InfoLevel || (log.GetLevel() <= zerolog.TraceLevel && !c.RedactBodies) {
		return ctx
	}
	return log.Level(zerolog.InfoLevel).WithContext(ctx)
}

// Kick removes target from a room, acting as actor.
func (c *Connector) Kick(ctx context.Context, roomID id.RoomID, actor, target id.UserID, reason string) error {
	_, err := c.Intent(actor).KickUser(ctx, roomID, &mautrix.ReqKickUser{UserID: target, Reason: reason})
	if err != nil {
		return fmt.Errorf("%s failed to kick %s: %w", actor, target, err)
	}
	return nil
}

// Ban bans target from a room, acting as actor.
func (c *Connector) Ban(ctx context.Context, roomID id.RoomID, actor, target id.UserID, reason string) error {
	_, err := c.Intent(actor).BanUser(ctx, roomID, &mautrix.ReqBanUser{UserID: target, Reason: reason})
	if err != nil {
		return fmt.Errorf("%s failed to ban %s: %w", actor, target, err)
	}
	return nil
}

// Unban lifts a ban, acting as actor.
func (c *Connector) Unban(ctx context.Context, roomID id.RoomID, actor, target id.UserID, reason string) error {
	_, err := c.Intent(actor).UnbanUser(ctx, roomID, &mautrix.ReqUnbanUser{UserID: target, Reason: reason})
	if err != nil {
		return fmt.Errorf("%s failed to unban %s: %w", actor, target, err)
	}
	return nil
}

// SetUserLevel changes one user's power level, acting as actor. It reads
// the current power levels first, so that only that user's level changes.
func (c *Connector) SetUserLevel(ctx context.Context, roomID id.RoomID, actor, target id.UserID, level int) error {
	var pl event.PowerLevelsEventContent
	if err := c.Intent(actor).StateEvent(ctx, roomID, event.StatePowerLevels, "", &pl); err != nil {
		return fmt.Errorf("failed to read power levels of %s: %w", roomID, err)
	}
	pl.SetUserLevel(target, level)
	if _, err := c.Intent(actor).SendStateEvent(ctx, roomID, event.StatePowerLevels, "", &pl); err != nil {
		return fmt.Errorf("%s failed to set the power level of %s: %w", actor, target, err)
	}
	return nil
}

// SetTopic changes a room's topic, acting as actor.
func (c *Connector) SetTopic(ctx context.Context, roomID id.RoomID, actor id.UserID, topic string) error {
	if _, err := c.Intent(actor).SetRoomTopic(ctx, roomID, topic); err != nil {
		return fmt.Errorf("%s failed to set the topic of %s: %w", actor, roomID, err)
	}
	return nil
}

// PublicRoom is a room from the homeserver's room directory.
type PublicRoom struct {
	RoomID         id.RoomID
	CanonicalAlias id.RoomAlias
	Name           string
	Topic          string
	JoinRule       event.JoinRule
	Members        int
}

// PublicRooms lists the homeserver's room directory, up to a bound.
func (c *Connector) PublicRooms(ctx context.Context) ([]PublicRoom, error) {
	const pages = 20
	var out []PublicRoom
	req := &mautrix.ReqPublicRooms{Limit: 100}
	for range pages {
		resp, err := c.Bot().PublicRooms(ctx, req)
		if err != nil {
			return nil, fmt.Errorf("failed to list public rooms: %w", err)
		}
		for _, r := range resp.Chunk {
			out = append(out, PublicRoom{RoomID: r.RoomID, CanonicalAlias: r.CanonicalAlias, Name: r.Name,
				Topic: r.Topic, JoinRule: r.JoinRule, Members: r.NumJoinedMembers})
		}
		if resp.NextBatch == "" {
			break
		}
		req.Since = resp.NextBatch
	}
	return out, nil
}

// InDirectory reports whether a room is published in the room directory.
func (c *Connector) InDirectory(ctx context.Context, roomID id.RoomID) (bool, error) {
	var resp struct {
		Visibility string `json:"visibility"`
	}
	_, err := c.Bot().MakeRequest(ctx, "GET", c.Bot().BuildClientURL("v3", "directory", "list", "room", roomID), nil, &resp)
	if err != nil {
		return false, fmt.Errorf("failed to get directory visibility of %s: %w", roomID, err)
	}
	return resp.Visibility == "public", nil
}

// RecentMessages returns up to limit of the latest message events of a room
// that asUser may see, oldest first. Reading as the user lets the homeserver
// apply the room's history visibility for that user. Some homeservers count
// the limit before the type filter, so more events are asked for and the
// messages picked out here.
func (c *Connector) RecentMessages(ctx context.Context, roomID id.RoomID, asUser id.UserID, limit int) ([]*event.Event, error) {
	resp, err := c.Intent(asUser).Messages(c.withoutBodyLogs(ctx), roomID, "", "", mautrix.DirectionBackward, nil, min(100, 3*limit+20))
	if err != nil {
		return nil, fmt.Errorf("failed to read history of %s: %w", roomID, err)
	}
	// Newest first: only as many as wanted are decrypted.
	var out []*event.Event
	for _, evt := range resp.Chunk {
		if len(out) == limit {
			break
		}
		if m := c.readableMessage(ctx, roomID, evt); m != nil {
			out = append(out, m)
		}
	}
	slices.Reverse(out)
	return out, nil
}

// History reads one page of up to limit timeline events of a room as
// asUser, backward or forward from the pagination token from ("" is the
// live end going backward). It returns the messages among them, decrypted
// where the bot's device had the key, oldest first, and the token to read
// on from, "" at the end of the timeline.
func (c *Connector) History(ctx context.Context, roomID id.RoomID, asUser id.UserID, from string, backward bool, limit int) (msgs []*event.Event, next string, err error) {
	dir := mautrix.DirectionForward
	if backward {
		dir = mautrix.DirectionBackward
	}
	resp, err := c.Intent(asUser).Messages(c.withoutBodyLogs(ctx), roomID, from, "", dir, nil, limit)
	if err != nil {
		return nil, "", fmt.Errorf("failed to read history of %s: %w", roomID, err)
	}
	for _, evt := range resp.Chunk {
		if m := c.readableMessage(ctx, roomID, evt); m != nil {
			msgs = append(msgs, m)
		}
	}
	if backward {
		slices.Reverse(msgs)
	}
	if len(resp.Chunk) == 0 {
		resp.End = ""
	}
	return msgs, resp.End, nil
}

// readableMessage returns a timeline event as a parsed message, decrypted
// if it was encrypted and the bot's device had the room key then (no
// waiting), or nil for anything else.
func (c *Connector) readableMessage(ctx context.Context, roomID id.RoomID, evt *event.Event) *event.Event {
	if evt.StateKey != nil {
		return nil
	}
	evt.RoomID = roomID
	evt.Type.Class = event.MessageEventType
	if evt.Type == event.EventEncrypted && c.crypto != nil {
		if evt.Content.ParseRaw(evt.Type) != nil {
			return nil
		}
		decrypted, err := c.crypto.mach.DecryptMegolmEvent(ctx, evt)
		if err != nil {
			return nil
		}
		evt = decrypted
	}
	if evt.Type.Type != event.EventMessage.Type {
		return nil
	}
	if err := evt.Content.ParseRaw(evt.Type); err != nil && !errors.Is(err, event.ErrContentAlreadyParsed) {
		return nil
	}
	return evt
}

// EventContext returns the messages around an event of a room, as asUser
// sees it: some before it and some after it (oldest first, the event
// itself in neither), with the tokens to read on from beyond them.
func (c *Connector) EventContext(ctx context.Context, roomID id.RoomID, asUser id.UserID, eventID id.EventID) (before []*event.Event, beforeToken string, after []*event.Event, afterToken string, err error) {
	resp, err := c.Intent(asUser).Context(c.withoutBodyLogs(ctx), roomID, eventID, nil, 20)
	if err != nil {
		return nil, "", nil, "", fmt.Errorf("failed to find %s in %s: %w", eventID, roomID, err)
	}
	for _, evt := range resp.EventsBefore {
		if m := c.readableMessage(ctx, roomID, evt); m != nil {
			before = append(before, m)
		}
	}
	slices.Reverse(before)
	for _, evt := range resp.EventsAfter {
		if m := c.readableMessage(ctx, roomID, evt); m != nil {
			after = append(after, m)
		}
	}
	return before, resp.Start, after, resp.End, nil
}

// Invite invites target to a room, acting as actor.
func (c *Connector) Invite(ctx context.Context, roomID id.RoomID, actor, target id.UserID, reason string) error {
	_, err := c.Intent(actor).InviteUser(ctx, roomID, &mautrix.ReqInviteUser{UserID: target, Reason: reason})
	if err != nil {
		return fmt.Errorf("%s failed to invite %s: %w", actor, target, err)
	}
	return nil
}

// AcceptInvite makes a puppet join a room it was invited to, and has it
// invite the bridge bot, which then joins too: in a room that is not public
// only a member can bring the bot in.
func (c *Connector) AcceptInvite(ctx context.Context, roomID id.RoomID, puppet id.UserID, displayname string) error {
	if err := c.EnsurePuppet(ctx, puppet, displayname); err != nil {
		return err
	}
	if _, err := c.Intent(puppet).JoinRoomByID(ctx, roomID); err != nil {
		return fmt.Errorf("%s failed to join %s: %w", puppet, roomID, err)
	}
	_ = c.AS.StateStore.SetMembership(ctx, roomID, puppet, event.MembershipJoin)
	if err := c.Bot().EnsureJoined(ctx, roomID, appservice.EnsureJoinedParams{BotOverride: c.Intent(puppet).Client}); err != nil {
		return fmt.Errorf("bot failed to join %s after an invite by %s: %w", roomID, puppet, err)
	}
	return nil
}

// StrippedAlias returns the canonical alias and name of the room an invite
// event invites to, from the stripped state the homeserver attaches, if any.
func StrippedAlias(evt *event.Event) (alias id.RoomAlias, name string) {
	for _, st := range evt.Unsigned.InviteRoomState {
		switch st.Type.Type {
		case event.StateCanonicalAlias.Type:
			var c event.CanonicalAliasEventContent
			if json.Unmarshal(st.Content.VeryRaw, &c) == nil {
				alias = c.Alias
			}
		case event.StateRoomName.Type:
			var c event.RoomNameEventContent
			if json.Unmarshal(st.Content.VeryRaw, &c) == nil {
				name = c.Name
			}
		}
	}
	return alias, name
}

// GetEvent fetches one event of a room as the bot, with its content parsed
// where the type is known.
func (c *Connector) GetEvent(ctx context.Context, roomID id.RoomID, eventID id.EventID) (*event.Event, error) {
	evt, err := c.Bot().GetEvent(c.withoutBodyLogs(ctx), roomID, eventID)
	if err != nil {
		return nil, fmt.Errorf("failed to get event %s: %w", eventID, err)
	}
	if evt.Type.Class == event.UnknownEventType {
		evt.Type.Class = event.MessageEventType
	}
	if err = evt.Content.ParseRaw(evt.Type); err != nil && !errors.Is(err, event.ErrContentAlreadyParsed) &&
		!errors.Is(err, event.ErrUnsupportedContentType) {
		return nil, fmt.Errorf("failed to parse event %s: %w", eventID, err)
	}
	return evt, nil
}

// Redact redacts an event, acting as actor. txnID makes a retry harmless.
func (c *Connector) Redact(ctx context.Context, roomID id.RoomID, actor id.UserID, eventID id.EventID, reason, txnID string) error {
	_, err := c.Intent(actor).RedactEvent(ctx, roomID, eventID, mautrix.ReqRedact{Reason: reason, TxnID: txnID})
	if err != nil {
		return fmt.Errorf("%s failed to redact %s: %w", actor, eventID, err)
	}
	return nil
}

// SetTyping sets whether a puppet is typing in a room.
func (c *Connector) SetTyping(ctx context.Context, roomID id.RoomID, userID id.UserID, typing bool) error {
	timeout := time.Duration(0)
	if typing {
		timeout = 30 * time.Second
	}
	if _, err := c.Intent(userID).UserTyping(ctx, roomID, typing, timeout); err != nil {
		return fmt.Errorf("failed to set typing of %s: %w", userID, err)
	}
	return nil
}

// SetPresence sets a puppet's presence and status message. A homeserver
// with presence off takes it and does nothing (Dendrite), or refuses it.
func (c *Connector) SetPresence(ctx context.Context, userID id.UserID, presence event.Presence, status string) error {
	if err := c.Intent(userID).SetPresence(ctx, mautrix.ReqPresence{Presence: presence, StatusMsg: status}); err != nil {
		return fmt.Errorf("failed to set the presence of %s: %w", userID, err)
	}
	return nil
}

// MarkRead sends a puppet's read receipt for an event.
func (c *Connector) MarkRead(ctx context.Context, roomID id.RoomID, userID id.UserID, eventID id.EventID) error {
	if err := c.Intent(userID).MarkRead(ctx, roomID, eventID); err != nil {
		return fmt.Errorf("failed to send the read receipt of %s: %w", userID, err)
	}
	return nil
}

// SetBridgeState sets or, with a nil content, clears the room's bridge
// state event (MSC2346), under both the stable and the older type that
// clients read.
func (c *Connector) SetBridgeState(ctx context.Context, roomID id.RoomID, stateKey string, content any) error {
	return c.SetBridgeStateAs(ctx, roomID, c.BotID(), stateKey, content)
}

// SetBridgeStateAs is SetBridgeState sent by another of the bridge's users:
// in a direct chat a Matrix user opened, the puppet may have the power
// level the bot lacks.
func (c *Connector) SetBridgeStateAs(ctx context.Context, roomID id.RoomID, sender id.UserID, stateKey string, content any) error {
	body := content
	if content == nil {
		body = map[string]any{}
	}
	for _, t := range []event.Type{event.StateBridge, event.StateHalfShotBridge} {
		if _, err := c.Intent(sender).SendStateEvent(ctx, roomID, t, stateKey, body); err != nil {
			return fmt.Errorf("failed to set %s in %s: %w", t.Type, roomID, err)
		}
	}
	return nil
}

// SendNotice sends an m.notice as the bot, as a reply if replyTo is set.
func (c *Connector) SendNotice(ctx context.Context, roomID id.RoomID, text string, replyTo id.EventID) (id.EventID, error) {
	content := &event.MessageEventContent{MsgType: event.MsgNotice, Body: text}
	if replyTo != "" {
		content.GetRelatesTo().SetReplyTo(replyTo)
	}
	evtType, sendContent, err := c.encrypt(ctx, roomID, event.EventMessage, content)
	if err != nil {
		return "", err
	}
	resp, err := c.Bot().SendMessageEvent(ctx, roomID, evtType, sendContent)
	if err != nil {
		return "", fmt.Errorf("failed to send a notice to %s: %w", roomID, err)
	}
	return resp.EventID, nil
}

// RoomPowerLevels reads a room's power levels as the bot.
func (c *Connector) RoomPowerLevels(ctx context.Context, roomID id.RoomID) (*event.PowerLevelsEventContent, error) {
	pl, err := c.Bot().PowerLevels(ctx, roomID)
	if err != nil {
		return nil, fmt.Errorf("failed to read power levels of %s: %w", roomID, err)
	}
	return pl, nil
}

// IsJoined reports whether a user is joined to a room: from the bot's cache
// of room state, else from the homeserver.
func (c *Connector) IsJoined(ctx context.Context, roomID id.RoomID, userID id.UserID) (bool, error) {
	if c.AS.StateStore.IsInRoom(ctx, roomID, userID) {
		return true, nil
	}
	var member event.MemberEventContent
	err := c.Bot().StateEvent(ctx, roomID, event.StateMember, userID.String(), &member)
	if errors.Is(err, mautrix.MNotFound) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("failed to read the membership of %s in %s: %w", userID, roomID, err)
	}
	return member.Membership == event.MembershipJoin, nil
}

// IsBotChat reports whether a room is a chat of one user with the bot:
// they are its only members, joined or invited. The bot's cache of room
// state answers where it knows both; where it does not (their joins may
// still be on their way to it, as right after the bot accepted the
// invitation), the homeserver does, and the cache learns from it.
func (c *Connector) IsBotChat(ctx context.Context, roomID id.RoomID, user id.UserID) bool {
	bot := c.BotID()
	members, err := c.AS.StateStore.GetRoomJoinedOrInvitedMembers(ctx, roomID)
	if err == nil && slices.Contains(members, user) && slices.Contains(members, bot) {
		return len(members) == 2
	}
	resp, err := c.Bot().JoinedMembers(ctx, roomID)
	if err != nil {
		return false
	}
	_, hasUser := resp.Joined[user]
	_, hasBot := resp.Joined[bot]
	if !hasUser || !hasBot {
		return false
	}
	if members, err = c.AS.StateStore.GetRoomJoinedOrInvitedMembers(ctx, roomID); err != nil {
		return len(resp.Joined) == 2
	}
	return len(members) == 2
}
