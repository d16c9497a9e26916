package bridge

import (
	"context"
	"errors"
	"time"

	"mellium.im/xmpp/jid"
)

// forget removes an XMPP user from every room and erases its puppet and
// every mapping that names it, at once (the forget command).
func (b *Bridge) forget(ctx context.Context, bare jid.JID) (int, error) {
	n, err := b.removeEverywhere(ctx, bare, "Forgotten by the bridge", false)
	if err != nil {
		return n, err
	}
	if err = b.erasePuppet(ctx, bare.String()); err != nil {
		return n, err
	}
	if err = b.DB.Contact.DeleteByJID(ctx, bare.String()); err != nil {
		return n, err
	}
	b.Audit.Info().Str("action", "forget").Stringer("jid", bare).Str("result", "ok").Msg("Erased an XMPP user's puppet and mappings")
	return n, nil
}

// erasePuppet deletes a puppet with its reactions and message mappings.
func (b *Bridge) erasePuppet(ctx context.Context, bare string) error {
	return b.erasePuppetIfGone(ctx, bare, time.Time{})
}

// errNotGone says that a puppet's user came back before it was erased.
var errNotGone = errors.New("the XMPP user came back")

// erasePuppetIfGone erases a puppet and its mappings; with goneBefore set,
// only if its user is still gone as of then, checked in the same database
// transaction as the deletes, so that a user who joins meanwhile is never
// erased halfway.
func (b *Bridge) erasePuppetIfGone(ctx context.Context, bare string, goneBefore time.Time) error {
	puppet := b.Matrix.PuppetID(bare)
	return b.DB.DoTxn(ctx, nil, func(ctx context.Context) error {
		if goneBefore.IsZero() {
			if err := b.DB.Puppet.Delete(ctx, bare); err != nil {
				return err
			}
		} else if gone, err := b.DB.Puppet.DeleteIfGone(ctx, bare, goneBefore); err != nil {
			return err
		} else if !gone {
			return errNotGone
		}
		if err := b.DB.Reaction.DeleteBySender(ctx, puppet); err != nil {
			return err
		}
		if err := b.DB.Message.DeleteBySender(ctx, bare); err != nil {
			return err
		}
		// mautrix's membership cache remembers the puppet too.
		return b.DB.ForgetMatrixUser(ctx, puppet)
	})
}

// cleanupLoop removes, every hour, the message and reaction mappings older
// than bridge.message_retention and the puppets of XMPP users who left
// their last room longer than bridge.puppet_retention ago.
func (b *Bridge) cleanupLoop() {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		b.cleanup(b.ctx)
		select {
		case <-b.ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (b *Bridge) cleanup(ctx context.Context) {
	cutoff := time.Now().Add(-b.Config.Bridge.MessageRetention)
	if err := b.DB.Message.DeleteBefore(ctx, cutoff); err != nil {
		b.Log.Error().Err(err).Msg("Failed to expire message mappings")
	}
	if err := b.DB.Reaction.DeleteBefore(ctx, cutoff); err != nil {
		b.Log.Error().Err(err).Msg("Failed to expire reaction mappings")
	}
	if n, err := b.Matrix.DeleteExpiredKeys(ctx); err != nil {
		b.Log.Error().Err(err).Msg("Failed to delete expired room keys")
	} else if n > 0 {
		b.Log.Info().Int("keys", n).Msg("Deleted expired room keys")
	}
	before := time.Now().Add(-b.Config.Bridge.PuppetRetention)
	gone, err := b.DB.Puppet.GetGone(ctx, before)
	if err != nil {
		b.Log.Error().Err(err).Msg("Failed to list departed puppets")
		return
	}
	for _, p := range gone {
		if chats, err := b.DB.Portal.GetDirectByJID(ctx, p.JID); err != nil || len(chats) > 0 {
			continue // still in a direct chat
		}
		if err := b.erasePuppetIfGone(ctx, p.JID, before); errors.Is(err, errNotGone) {
			continue
		} else if err != nil {
			b.Log.Error().Err(err).Str("jid", p.JID).Msg("Failed to erase a departed puppet")
			continue
		}
		b.Log.Info().Str("jid", p.JID).Msg("Erased the puppet of an XMPP user who left every room")
	}
}
