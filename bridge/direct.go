package bridge

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/mxpp/mxpp/database"
	"github.com/mxpp/mxpp/matrix"
	"github.com/mxpp/mxpp/portal"
	"github.com/mxpp/mxpp/xmpp"
)

// An XMPP user may open newChatBurst direct chats at once, then one every
// newChatEvery: each opens a room on Matrix and an invitation, which a
// hostile sender must not be able to do by the thousand.
const (
	newChatBurst = 10
	newChatEvery = 6 * time.Minute
)

// Each XMPP user may have lookupBurst Matrix users looked up at once (a
// vCard, a presence answer with a display name), then one every
// lookupEvery: every lookup is a homeserver request and a goroutine. A
// client that logs in probes all its Matrix contacts at once.
const (
	lookupBurst = 50
	lookupEvery = time.Second
)

// All the senders of one XMPP domain together may have domainLookupBurst
// lookups at once, then one every domainLookupEvery (50 a second).
const (
	domainLookupBurst = 500
	domainLookupEvery = 20 * time.Millisecond
)

// allowLookup takes one of the sender's lookups and one of its domain's:
// a lookup is a homeserver request, or several, that anyone on an allowed
// domain can make the bridge do.
func (b *Bridge) allowLookup(from jid.JID) bool {
	now := time.Now()
	return b.lookups.Allow(from.Bare().String(), now) && b.domainLookups.Allow(from.Domainpart(), now)
}

// directNotice is what the bot says in an encrypted direct chat it opens or
// joins.
const directNotice = "This chat is encrypted: the bridge decrypts your messages so that they reach the XMPP user, " +
	"who reads them unencrypted, and encrypts theirs."

// routeDirect handles a stanza to a Matrix user's contact JID: vCard and
// disco#info requests, presence subscriptions and one-to-one chat messages.
func (b *Bridge) routeDirect(ctx context.Context, st any, user id.UserID, server string) {
	switch s := st.(type) {
	case *xmpp.IQ:
		var answer func(context.Context, *xmpp.IQ, id.UserID)
		switch {
		case s.Type == xmpp.TypeGet && s.Payload.XMLName.Space == xmpp.NSVCard:
			answer = b.userVCard
		case s.Type == xmpp.TypeGet && s.Payload.XMLName.Space == xmpp.NSDiscoInfo:
			if serr := b.directRefusal(ctx, s.From.JID, user, server); serr != nil {
				b.XMPP.Reply(ctx, s, nil, serr)
				return
			}
			answer = b.userDiscoInfo
		default:
			b.reject(ctx, st, stanza.ServiceUnavailable, "")
			return
		}
		// A homeserver round trip: beside the XMPP read loop, and not more
		// often than the sender's share of lookups allows.
		if !b.allowLookup(s.From.JID) {
			b.reject(ctx, st, stanza.ResourceConstraint, "Too many requests; try again later")
			return
		}
		go answer(ctx, s, user)
	case *xmpp.Presence:
		b.directPresence(ctx, s, user, server)
	case *xmpp.Message:
		b.directMessage(ctx, s, user, server)
	}
}

// directRefusal says why an XMPP user may not chat with a Matrix user, or
// nil.
func (b *Bridge) directRefusal(ctx context.Context, from jid.JID, user id.UserID, server string) *stanza.Error {
	switch {
	case !b.Config.Bridge.DirectMessages:
		return xmpp.StanzaError(stanza.FeatureNotImplemented, "Direct messages with Matrix users are turned off on this bridge")
	case server != b.Config.Homeserver.Domain:
		return xmpp.StanzaError(stanza.ItemNotFound, "Only users of "+b.Config.Homeserver.Domain+" are reachable here")
	case b.Matrix.IsBridgeUser(user):
		return xmpp.StanzaError(stanza.ItemNotFound, "This is not a Matrix user")
	case b.isBanned(from.Bare().String()):
		return xmpp.StanzaError(stanza.Forbidden, "You are banned from this bridge")
	case !b.Config.hasLevel(user, LevelUser):
		return xmpp.StanzaError(stanza.Forbidden, "This Matrix user cannot be reached from XMPP")
	case b.blocked(ctx, user, from.Bare().String()):
		return xmpp.StanzaError(stanza.Forbidden, "This Matrix user does not accept messages from you")
	}
	return nil
}

// directPresence answers presence to a Matrix user's contact JID, so that
// XMPP users can keep Matrix users in their rosters: subscription requests,
// probes and cancellations go by what the Matrix user decided
// (contacts.go); for users who do not exist, or may not be reached, they
// are refused. Matrix presence is not followed; a user whose presence an
// XMPP user may see shows as available.
func (b *Bridge) directPresence(ctx context.Context, pres *xmpp.Presence, user id.UserID, server string) {
	switch pres.Type {
	case "subscribe", "probe", "unsubscribe", "unsubscribed":
	default:
		return
	}
	b.handleSubscription(ctx, pres, user, b.directRefusal(ctx, pres.From.JID, user, server) != nil)
}

// directMessage hands a chat message to a Matrix user to the direct chat
// of the two, opening one on Matrix for the first message with a body.
func (b *Bridge) directMessage(ctx context.Context, msg *xmpp.Message, user id.UserID, server string) {
	if msg.Type == xmpp.TypeError {
		// A bounce of what the bridge sent; the chat reports it.
		if p := b.directPortal(ctx, user, msg.From.Bare(), ""); p != nil {
			b.queueXMPP(ctx, p, msg)
		}
		return
	}
	if serr := b.directRefusal(ctx, msg.From.JID, user, server); serr != nil {
		b.reject(ctx, msg, serr.Condition, serr.Error())
		return
	}
	if msg.Type == xmpp.TypeGroupchat {
		b.reject(ctx, msg, stanza.BadRequest, "This is a user, not a room")
		return
	}
	b.toChat(ctx, msg, user, nil)
}

// toChat hands an XMPP user's message to their direct chat with a Matrix
// user (a private chat when pm is set), opening one on Matrix for the first
// message with a body; new chats are rate-limited per XMPP user.
func (b *Bridge) toChat(ctx context.Context, msg *xmpp.Message, user id.UserID, pm *privateOrigin) {
	bare, via := msg.From.Bare(), ""
	if pm != nil {
		via = pm.via.String()
		if pm.puppet != "" {
			bare = pm.peer
		}
	}
	if p := b.directPortal(ctx, user, bare, via); p != nil {
		b.queueXMPP(ctx, p, msg)
		return
	}
	if msg.Body == "" {
		return // chat states and markers open no chat
	}
	key := directKey(user, bare.String(), via)
	b.mu.Lock()
	opening := b.pending[key] != nil // later messages of a chat being opened wait for it
	b.mu.Unlock()
	if !opening && !b.newChats.Allow(bare.String(), time.Now()) {
		b.Audit.Info().Str("action", "direct_chat").Stringer("jid", bare).Stringer("user_id", user).Str("via", via).
			Str("result", "refused").Str("reason", "rate").Msg("Refused to open another direct chat")
		b.reject(ctx, msg, stanza.PolicyViolation, "You opened too many new chats; try again later")
		return
	}
	b.lookup(key, msg, func(ctx context.Context) (*portal.Portal, *stanza.Error) {
		return b.openDirect(ctx, user, bare, pm)
	})
}

// directKey names the direct chat of a Matrix user with an XMPP user (a
// bare JID) among the running portals and pending lookups; via is the
// occupant JID of a private chat ("" for others).
func directKey(user id.UserID, bare, via string) string {
	return "dm\x00" + user.String() + "\x00" + bare + "\x00" + via
}

// directPortal returns the running direct chat of a Matrix user with an
// XMPP user, starting it from the database if needed, or nil. A running one
// is found without asking the database: this is on every chat message.
func (b *Bridge) directPortal(ctx context.Context, user id.UserID, bare jid.JID, via string) *portal.Portal {
	b.mu.Lock()
	p := b.byDirect[directKey(user, bare.String(), via)]
	b.mu.Unlock()
	if p != nil {
		return p
	}
	row, err := b.DB.Portal.GetPrivate(ctx, user, bare.String(), via)
	if err != nil {
		zerolog.Ctx(ctx).Error().Err(err).Msg("Failed to look up a direct chat")
		return nil
	}
	if row == nil {
		return nil
	}
	if p, err = b.startHosted(row); err != nil {
		zerolog.Ctx(ctx).Error().Err(err).Stringer("room_id", row.RoomID).Msg("Failed to start a direct chat")
		return nil
	}
	return p
}

// openDirect creates the Matrix room of a direct chat an XMPP user starts:
// the user's puppet creates it and invites the Matrix user (and the bot).
// It is encrypted when encryption.default (or require) says so.
func (b *Bridge) openDirect(ctx context.Context, user id.UserID, bare jid.JID, pm *privateOrigin) (*portal.Portal, *stanza.Error) {
	via := ""
	if pm != nil {
		via = pm.via.String()
	}
	if p := b.directPortal(ctx, user, bare, via); p != nil {
		return p, nil
	}
	log := b.Log.With().Stringer("user_id", user).Stringer("jid", bare).Logger()
	if _, _, err := b.Matrix.Profile(ctx, user); err != nil {
		if errors.Is(err, mautrix.MNotFound) {
			return nil, xmpp.StanzaError(stanza.ItemNotFound, "There is no Matrix user "+user.String())
		}
		log.Warn().Err(err).Msg("Failed to look up a Matrix user")
		return nil, xmpp.StanzaError(stanza.RemoteServerTimeout, "The Matrix homeserver did not answer")
	}
	// An occupant of a MUC hosted elsewhere has their puppet in the
	// portal already; anyone else gets (or has) the puppet of their JID.
	puppet, displayname := b.Matrix.PuppetID(bare.String()), bare.String()
	if pm != nil && pm.puppet != "" {
		puppet, displayname = pm.puppet, pm.nick
	} else if err := b.DB.Puppet.Upsert(ctx, &database.Puppet{JID: bare.String(), MXID: puppet, Registered: true, CreatedAt: time.Now()}); err != nil {
		log.Error().Err(err).Msg("Failed to store puppet")
		return nil, xmpp.StanzaError(stanza.InternalServerError, "")
	}
	encrypted := b.Config.Encryption.Default || b.Config.Encryption.Require
	room := matrix.DirectRoom{
		Puppet: puppet, User: user, Displayname: displayname, Encrypted: encrypted,
		BridgeStateKey: b.directStateKey(bare), BridgeState: b.directState(bare, puppet, encrypted),
	}
	row := func(roomID id.RoomID) *database.Portal { return database.NewDirect(roomID, user, bare.String()) }
	if pm != nil {
		room.Name = fmt.Sprintf("%s (private, %s)", pm.nick, pm.alias)
		room.Topic = fmt.Sprintf("Private messages with %s, who wrote to you in the XMPP room %s.", pm.nick, pm.alias)
		row = func(roomID id.RoomID) *database.Portal {
			r := database.NewPrivate(roomID, user, bare.String(), via)
			if pm.puppet != "" {
				r.DMPuppet = pm.puppet
			}
			return r
		}
	}
	roomID, err := b.Matrix.CreateDirectRoom(ctx, room)
	if err != nil {
		log.Warn().Err(err).Msg("Failed to create a direct chat on Matrix")
		if errors.Is(err, mautrix.MForbidden) {
			return nil, xmpp.StanzaError(stanza.Forbidden, "The Matrix homeserver refused the chat")
		}
		return nil, xmpp.StanzaError(stanza.RemoteServerTimeout, "The Matrix homeserver did not open the chat")
	}
	return b.startDirect(ctx, row(roomID), encrypted, "opened")
}

// startDirect stores and runs a new direct chat, replacing an older one of
// the same two users, and tells the room that the bridge decrypts if it is
// encrypted.
func (b *Bridge) startDirect(ctx context.Context, row *database.Portal, encrypted bool, how string) (*portal.Portal, *stanza.Error) {
	log := b.Log.With().Stringer("room_id", row.RoomID).Stringer("user_id", row.DMUser).Str("jid", row.DMJID).Logger()
	if old, err := b.DB.Portal.GetPrivate(ctx, row.DMUser, row.DMJID, row.DMVia); err == nil && old != nil && old.RoomID != row.RoomID {
		log.Info().Stringer("old_room_id", old.RoomID).Msg("A new direct chat replaces an older one")
		if err = b.closeRoom(ctx, old.RoomID); err != nil {
			log.Warn().Err(err).Msg("Failed to close the older direct chat")
		}
	}
	if err := b.DB.Portal.Insert(ctx, row); err != nil {
		log.Error().Err(err).Msg("Failed to store a direct chat")
		return nil, xmpp.StanzaError(stanza.InternalServerError, "")
	}
	b.Audit.Info().Str("action", "direct_chat").Stringer("user_id", row.DMUser).Str("jid", row.DMJID).
		Stringer("room_id", row.RoomID).Str("result", how).Msg("Direct chat between a Matrix and an XMPP user")
	if encrypted {
		if _, err := b.Matrix.SendNotice(ctx, row.RoomID, directNotice, ""); err != nil {
			log.Warn().Err(err).Msg("Failed to tell a direct chat that the bridge decrypts")
		}
	}
	p, err := b.startHosted(row)
	if err != nil {
		log.Error().Err(err).Msg("Failed to start a direct chat")
		return nil, xmpp.StanzaError(stanza.InternalServerError, "")
	}
	return p, nil
}

func (b *Bridge) directStateKey(bare jid.JID) string {
	return "xmpp://" + b.XMPP.Domain().String() + "/" + bare.String()
}

// directState is the m.bridge content of a direct chat.
func (b *Bridge) directState(bare jid.JID, creator id.UserID, encrypted bool) any {
	return b.bridgeInfo(event.BridgeInfoSection{ID: bare.String(), DisplayName: bare.String(), ExternalURL: xmpp.URI(bare, "")},
		creator, encrypted)
}

// acceptDirect handles a Matrix user's invitation of a puppet to a direct
// chat: the puppet accepts (bringing the bot in) and the chat goes to the
// XMPP user. What cannot be bridged is declined with a reason.
func (b *Bridge) acceptDirect(evt *event.Event, puppet id.UserID, remote string) {
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	defer cancel()
	log := b.Log.With().Stringer("room_id", evt.RoomID).Stringer("inviter", evt.Sender).Stringer("puppet", puppet).Logger()
	decline := func(reason string) {
		log.Info().Str("reason", reason).Msg("Declining a direct chat")
		if err := b.Matrix.LeavePuppet(ctx, evt.RoomID, puppet, reason); err != nil {
			log.Warn().Err(err).Msg("Failed to decline a direct chat")
		}
	}
	bare, err := xmpp.ParseJID(remote)
	if err != nil || bare.Resourcepart() != "" {
		decline("This is not a valid XMPP address")
		return
	}
	_, server, _ := evt.Sender.Parse()
	switch serr := b.directRefusal(ctx, bare, evt.Sender, server); {
	case serr != nil:
		decline(serr.Error())
		return
	case !b.AllowPuppet(remote):
		decline("The bridge does not reach XMPP users of " + bare.Domainpart())
		return
	}
	err = b.DB.Puppet.Upsert(ctx, &database.Puppet{JID: bare.String(), MXID: puppet, Registered: true, CreatedAt: time.Now()})
	if err != nil {
		log.Error().Err(err).Msg("Failed to store puppet")
		return
	}
	if err = b.Matrix.AcceptInvite(ctx, evt.RoomID, puppet, bare.String()); err != nil {
		log.Warn().Err(err).Msg("Failed to accept a direct chat")
		decline("The bridge could not join the chat")
		return
	}
	if err = b.Matrix.SetPuppetRoomName(ctx, evt.RoomID, puppet, bare.String()); err != nil {
		log.Debug().Err(err).Msg("Failed to name the puppet in a direct chat")
	}
	info, err := b.Matrix.RoomInfo(ctx, evt.RoomID)
	if err != nil {
		log.Warn().Err(err).Msg("Failed to read a direct chat")
		return
	}
	if rerr := b.encryptionRefusal(info); rerr != nil {
		if _, err := b.Matrix.SendNotice(ctx, evt.RoomID, "This chat cannot reach XMPP: "+rerr.Error()+".", ""); err != nil {
			log.Warn().Err(err).Msg("Failed to explain a declined direct chat")
		}
		decline(rerr.Error())
		if err := b.Matrix.LeavePuppet(ctx, evt.RoomID, b.Matrix.BotID(), rerr.Error()); err != nil {
			log.Warn().Err(err).Msg("Bot failed to leave a declined direct chat")
		}
		return
	}
	row := database.NewDirect(evt.RoomID, evt.Sender, bare.String())
	p, serr := b.startDirect(ctx, row, info.Encrypted, "accepted")
	if serr != nil {
		decline("The bridge could not store the chat")
		return
	}
	// What the user wrote between the invitation and now came while the
	// room was not bridged: it goes out now, in order (the portal skips
	// what it already sent).
	early, err := b.Matrix.RecentMessages(ctx, evt.RoomID, puppet, 50)
	if err != nil {
		log.Warn().Err(err).Msg("Failed to read what was written before the chat was accepted")
	}
	for _, m := range early {
		if m.Sender == evt.Sender && m.Timestamp >= evt.Timestamp {
			p.Queue(ctx, m)
		}
	}
	// Sent as the puppet: invitees of a direct chat usually get the power
	// level of its creator, which the bot, invited by the puppet, lacks.
	if err = b.Matrix.SetBridgeStateAs(ctx, evt.RoomID, puppet, b.directStateKey(bare), b.directState(bare, evt.Sender, info.Encrypted)); err != nil {
		log.Debug().Err(err).Msg("Failed to set the bridge state of a direct chat")
	}
	log.Info().Msg("Accepted a direct chat")
}

// Lookups of XMPP users the bridge has not seen create puppets, each an
// account on the homeserver: 50 per XMPP domain at once, then one every
// 6 s, and 200 in all at once, then one a second.
const (
	newPuppetEvery     = 6 * time.Second
	newPuppetBurst     = 50
	newPuppetsAllEvery = time.Second
	newPuppetsAllBurst = 200
	allPuppetsKey      = "*"
)

// MayRegisterPuppet implements matrix.PuppetAllower.
func (b *Bridge) MayRegisterPuppet(remote string) bool {
	bare, err := xmpp.ParseJID(remote)
	if err != nil {
		return false
	}
	now := time.Now()
	if !b.newPuppets.Allow(bare.Domainpart(), now) || !b.allPuppets.Allow(allPuppetsKey, now) {
		b.Audit.Warn().Str("action", "new_puppet").Str("jid", remote).Str("result", "rate-limited").Msg("puppet")
		return false
	}
	return true
}

// AllowPuppet implements matrix.PuppetAllower: the homeserver may create
// the puppet of an XMPP user a Matrix user looks up or invites, when direct
// chats are on and the user's server is allowed.
func (b *Bridge) AllowPuppet(remote string) bool {
	bare, err := xmpp.ParseJID(remote)
	return err == nil && b.Config.Bridge.DirectMessages && bare.Resourcepart() == "" && bare.String() == remote &&
		bare.Domainpart() != b.XMPP.Domain().Domainpart() && b.policy.Allows(bare.Domainpart()) && !b.isBanned(remote)
}

// contactFeatures are what a Matrix user's contact JID does in a direct
// chat, as disco#info tells XMPP clients (XEP-0030, XEP-0115 clients ask
// before they offer corrections, reactions or receipts).
var contactFeatures = xmpp.Features(xmpp.NSDiscoInfo, xmpp.NSReceipts, xmpp.NSChatStates, xmpp.NSMarkers, xmpp.NSCorrect,
	xmpp.NSReactions, xmpp.NSReply, xmpp.NSRetract, xmpp.NSVCard)

// userDiscoInfo answers disco#info about a Matrix user: a client, named by
// the user's display name, with the features of a direct chat; a user the
// homeserver does not know is item-not-found.
func (b *Bridge) userDiscoInfo(ctx context.Context, iq *xmpp.IQ, user id.UserID) {
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	name, _, err := b.Matrix.Profile(ctx, user)
	switch {
	case errors.Is(err, mautrix.MNotFound):
		b.XMPP.Reply(ctx, iq, nil, xmpp.StanzaError(stanza.ItemNotFound, "No such Matrix user"))
		return
	case err != nil:
		zerolog.Ctx(ctx).Debug().Err(err).Stringer("user_id", user).Msg("Failed to read a Matrix user's profile for disco#info")
	}
	if name == "" {
		name = user.Localpart()
	}
	b.XMPP.Reply(ctx, iq, &xmpp.DiscoInfo{
		Identities: []xmpp.DiscoIdentity{{Category: "client", Type: "pc", Name: name}},
		Features:   contactFeatures,
	}, nil)
}
