package bridge

import (
	"context"
	"fmt"
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
	b.Audit.Info().Str("action", "forget").Stringer("jid", bare).Str("result", "ok").Msg("Erased an XMPP user's puppet and mappings")
	return n, nil
}

// erasePuppet deletes a puppet with its reactions and message mappings.
func (b *Bridge) erasePuppet(ctx context.Context, bare string) error {
	puppet := b.Matrix.PuppetID(bare)
	if err := b.DB.Reaction.DeleteBySender(ctx, puppet); err != nil {
		return err
	}
	if err := b.DB.Message.DeleteBySender(ctx, bare); err != nil {
		return err
	}
	if err := b.DB.Puppet.Delete(ctx, bare); err != nil {
		return err
	}
	// mautrix's membership cache (same database) remembers the puppet too.
	for _, q := range []string{`DELETE FROM mx_user_profile WHERE user_id=$1`, `DELETE FROM mx_registrations WHERE user_id=$1`} {
		if _, err := b.DB.Exec(ctx, q, puppet); err != nil {
			return fmt.Errorf("failed to clear the membership cache: %w", err)
		}
	}
	return nil
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
	gone, err := b.DB.Puppet.GetGone(ctx, time.Now().Add(-b.Config.Bridge.PuppetRetention))
	if err != nil {
		b.Log.Error().Err(err).Msg("Failed to list departed puppets")
		return
	}
	for _, p := range gone {
		if chats, err := b.DB.Portal.GetDirectByJID(ctx, p.JID); err != nil || len(chats) > 0 {
			continue // still in a direct chat
		}
		if err := b.erasePuppet(ctx, p.JID); err != nil {
			b.Log.Error().Err(err).Str("jid", p.JID).Msg("Failed to erase a departed puppet")
			continue
		}
		b.Log.Info().Str("jid", p.JID).Msg("Erased the puppet of an XMPP user who left every room")
	}
}
