package bridge

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
	"mellium.im/xmpp/jid"

	"github.com/mxpp/mxpp/database"
	"github.com/mxpp/mxpp/xmpp"
)

// Contacts the Matrix user controls (bridge.subscriptions). An XMPP user who
// asks to see a Matrix user's presence (a roster subscription to their JID)
// is approved at once (auto), refused (deny), or, by default (ask), waits
// while the bot asks the Matrix user in a chat with the bot; the answer is a
// command (allow, deny, block). The decisions are in the contact table, by
// IDs only; forget erases those about a JID.

// kvBotChat prefixes the kv key of a Matrix user's chat with the bot.
const kvBotChat = "bot_chat:"

// subscriptionState is what the Matrix user decided about an XMPP user,
// with bridge.subscriptions applied: allowed, denied, blocked, or pending
// ("" when nobody asked yet).
func (b *Bridge) subscriptionState(ctx context.Context, user id.UserID, bare string) (string, error) {
	state, err := b.DB.Contact.State(ctx, user, bare)
	if err != nil || state == database.ContactBlocked || state == database.ContactDenied {
		return state, err // the user's own refusal holds in every mode
	}
	switch b.Config.Bridge.Subscriptions {
	case SubscriptionsAuto:
		return database.ContactAllowed, nil
	case SubscriptionsDeny:
		return database.ContactDenied, nil
	}
	return state, nil
}

// blocked reports whether a Matrix user blocked an XMPP user (a bare JID).
func (b *Bridge) blocked(ctx context.Context, user id.UserID, bare string) bool {
	state, err := b.DB.Contact.State(ctx, user, bare)
	return err == nil && state == database.ContactBlocked
}

// handleSubscription answers presence of type subscribe, probe,
// unsubscribe or unsubscribed from an XMPP user to a Matrix user's JID.
// The decision is read and written here, in the order the stanzas came;
// what needs the homeserver (the user's name, asking the user) runs beside
// the XMPP read loop, within the sender's share of lookups. refused is set
// when the XMPP user may not reach the Matrix user at all (directRefusal).
func (b *Bridge) handleSubscription(ctx context.Context, pres *xmpp.Presence, user id.UserID, refused bool) {
	from, to := xmpp.A(pres.To.Bare()), xmpp.A(pres.From.Bare())
	bare := pres.From.Bare().String()
	log := zerolog.Ctx(ctx).With().Str("jid", bare).Stringer("user_id", user).Str("presence", pres.Type).Logger()
	if pres.Type == "unsubscribe" || pres.Type == "unsubscribed" {
		// The XMPP user's own: they no longer see the Matrix user's
		// presence, or no longer want to. A block stays.
		if state, err := b.DB.Contact.State(ctx, user, bare); err == nil && state != database.ContactBlocked && state != "" {
			if err = b.DB.Contact.Delete(ctx, user, bare); err != nil {
				log.Error().Err(err).Msg("Failed to drop a contact")
			}
		}
		if pres.Type == "unsubscribe" {
			b.send(ctx, &xmpp.Presence{Type: "unsubscribed", From: from, To: to})
		}
		return
	}
	state := database.ContactDenied
	if !refused {
		var err error
		if state, err = b.subscriptionState(ctx, user, bare); err != nil {
			log.Error().Err(err).Msg("Failed to read a contact")
			return
		}
	}
	switch {
	case state == database.ContactAllowed:
		if b.allowLookup(pres.From.JID) {
			go func() {
				ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
				defer cancel()
				b.approveContact(ctx, user, pres.From.Bare(), pres.Type == "subscribe")
			}()
		}
	case (state == database.ContactDenied || state == database.ContactBlocked) && pres.Type == "subscribe":
		b.send(ctx, &xmpp.Presence{Type: "unsubscribed", From: from, To: to})
	case pres.Type == "probe":
		// Not allowed (yet): nothing to see, and a request stands.
		b.send(ctx, &xmpp.Presence{Type: xmpp.TypeUnavailable, From: from, To: to})
	case state == "":
		// A first request: it waits (the XMPP server keeps it) while the
		// Matrix user is asked. Later ones while it waits ask nothing more.
		if !b.allowLookup(pres.From.JID) {
			return // not noted: the client asks again
		}
		if err := b.DB.Contact.Set(ctx, user, bare, database.ContactPending); err != nil {
			log.Error().Err(err).Msg("Failed to note a contact request")
			return
		}
		go b.askContact(log, user, pres)
	}
}

// askContact asks a Matrix user, in their chat with the bot, whether an
// XMPP user may see their presence; a user the homeserver does not know
// refuses.
func (b *Bridge) askContact(log zerolog.Logger, user id.UserID, pres *xmpp.Presence) {
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	defer cancel()
	bare := pres.From.Bare().String()
	if _, _, err := b.Matrix.Profile(ctx, user); errors.Is(err, mautrix.MNotFound) {
		_ = b.DB.Contact.Delete(ctx, user, bare)
		b.send(ctx, &xmpp.Presence{Type: "unsubscribed", From: xmpp.A(pres.To.Bare()), To: xmpp.A(pres.From.Bare())})
		return
	}
	text := fmt.Sprintf("%s wants to see your presence. Reply `allow %s` or `deny %s` (`block %s` also refuses their messages).",
		bare, bare, bare, bare)
	if err := b.tellUser(ctx, user, text); err != nil {
		log.Warn().Err(err).Msg("Failed to ask a Matrix user about a contact request")
		return
	}
	log.Info().Msg("Asked a Matrix user about a contact request")
}

// approveContact lets an XMPP user see a Matrix user's presence: subscribed
// (when asked for it) and the user's presence, with their display name
// (XEP-0172). A user the homeserver does not know is refused.
func (b *Bridge) approveContact(ctx context.Context, user id.UserID, bare jid.JID, subscribed bool) {
	userJID, err := b.userJID(user)
	if err != nil {
		return
	}
	from, to := xmpp.A(userJID), xmpp.A(bare)
	nick := user.Localpart()
	name, _, err := b.Matrix.Profile(ctx, user)
	switch {
	case errors.Is(err, mautrix.MNotFound) && subscribed:
		b.send(ctx, &xmpp.Presence{Type: "unsubscribed", From: from, To: to})
		return
	case errors.Is(err, mautrix.MNotFound):
		b.send(ctx, &xmpp.Presence{Type: xmpp.TypeUnavailable, From: from, To: to})
		return
	case err == nil && name != "":
		nick = name
	}
	if subscribed {
		b.send(ctx, &xmpp.Presence{Type: "subscribed", From: from, To: to})
	}
	pres := &xmpp.Presence{From: from, To: to, Nick: nick}
	b.contactPresence(user, pres)
	b.send(ctx, pres)
}

// userJID is a Matrix user's contact JID on the component.
func (b *Bridge) userJID(user id.UserID) (jid.JID, error) {
	local, server, err := user.Parse()
	if err != nil {
		return jid.JID{}, err
	}
	return b.scheme.UserJID(local, server)
}

// tellUser sends a Matrix user a notice in their chat with the bot,
// opening one if they have none.
func (b *Bridge) tellUser(ctx context.Context, user id.UserID, text string) error {
	key := kvBotChat + user.String()
	room, err := b.DB.GetValue(ctx, key)
	if err != nil {
		return err
	}
	if room == "" || !b.Matrix.IsBotChat(ctx, id.RoomID(room), user) {
		roomID, err := b.Matrix.CreateBotChat(ctx, user)
		if err != nil {
			return err
		}
		if err = b.DB.SetValue(ctx, key, roomID.String()); err != nil {
			return err
		}
		room = roomID.String()
	}
	_, err = b.Matrix.SendNotice(ctx, id.RoomID(room), text, "")
	return err
}

// cmdContacts lists who sees the user's presence, who waits, and whom
// they denied or blocked.
func (b *Bridge) cmdContacts(ctx context.Context, e *cmdEnv) (string, error) {
	list, err := b.DB.Contact.List(ctx, e.sender)
	if err != nil {
		return "", err
	}
	lines := []string{"Contact requests: " + b.Config.Bridge.Subscriptions + " (bridge.subscriptions)."}
	if len(list) == 0 {
		lines = append(lines, "You have no XMPP contacts.")
	}
	for _, c := range list {
		lines = append(lines, fmt.Sprintf("%s: %s", c.JID, c.State))
	}
	return strings.Join(lines, "\n"), nil
}

// cmdContact returns the command that records a decision about a JID: the
// answer to a contact request, or one made ahead of it; "" lifts a block.
func (b *Bridge) cmdContact(state string) func(context.Context, *cmdEnv) (string, error) {
	return func(ctx context.Context, e *cmdEnv) (string, error) {
		bare, err := argJID(e)
		if err != nil {
			return "", err
		}
		if state == database.ContactAllowed && b.Config.Bridge.Subscriptions == SubscriptionsDeny {
			return "Contact requests are refused on this bridge (bridge.subscriptions: deny).", nil
		}
		if state == "" {
			if b.blocked(ctx, e.sender, bare.String()) {
				if err = b.DB.Contact.Delete(ctx, e.sender, bare.String()); err != nil {
					return "", err
				}
			}
			return fmt.Sprintf("%s is not blocked.", bare), nil
		}
		if err = b.DB.Contact.Set(ctx, e.sender, bare.String(), state); err != nil {
			return "", err
		}
		if state == database.ContactAllowed {
			b.approveContact(ctx, e.sender, bare, true)
			return fmt.Sprintf("%s sees your presence now.", bare), nil
		}
		if userJID, err := b.userJID(e.sender); err == nil {
			b.send(ctx, &xmpp.Presence{Type: "unsubscribed", From: xmpp.A(userJID), To: xmpp.A(bare)})
		}
		if state == database.ContactDenied {
			return fmt.Sprintf("%s does not see your presence.", bare), nil
		}
		return fmt.Sprintf("%s is blocked: no presence, no messages.", bare), nil
	}
}
