package bridge

import (
	"context"
	"slices"
	"strings"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/mxpp/mxpp/xmpp"
)

// isXMPPAdmin reports whether a JID is one of xmpp.admins.
func (b *Bridge) isXMPPAdmin(j jid.JID) bool {
	return slices.Contains(b.Config.XMPP.Admins, j.Bare().String())
}

// commandItems lists the ad-hoc commands (XEP-0050) an XMPP user may run:
// the admin commands for xmpp.admins, nothing for anyone else.
func (b *Bridge) commandItems(from jid.JID) *xmpp.DiscoItems {
	items := &xmpp.DiscoItems{Node: xmpp.NSCommands}
	if !b.isXMPPAdmin(from) {
		return items
	}
	for _, c := range b.commands {
		if c.xmpp {
			items.Items = append(items.Items, xmpp.DiscoItem{JID: xmpp.A(b.XMPP.Domain()), Node: c.name, Name: c.help})
		}
	}
	return items
}

// handleAdhoc runs an ad-hoc command for an XMPP admin. Commands that take
// a JID first answer with a form for it.
func (b *Bridge) handleAdhoc(ctx context.Context, iq *xmpp.IQ) {
	var req xmpp.Command
	if err := iq.Payload.Decode(&req); err != nil {
		b.XMPP.Reply(ctx, iq, nil, xmpp.StanzaError(stanza.BadRequest, ""))
		return
	}
	c := b.findCommand(req.Node)
	if !b.isXMPPAdmin(iq.From.JID) {
		b.Audit.Info().Str("action", "command").Str("command", req.Node).Stringer("by", iq.From.Bare()).Str("result", "denied").
			Msg("Refused an ad-hoc command")
		b.XMPP.Reply(ctx, iq, nil, xmpp.StanzaError(stanza.Forbidden, "Only the bridge's admins may run commands"))
		return
	}
	if c == nil || !c.xmpp {
		b.XMPP.Reply(ctx, iq, nil, xmpp.StanzaError(stanza.ItemNotFound, "No such command"))
		return
	}
	answer := &xmpp.Command{Node: c.name, SessionID: req.SessionID}
	if answer.SessionID == "" {
		answer.SessionID = xmpp.RandomID()
	}
	if req.Action == "cancel" {
		answer.Status = "canceled"
		b.XMPP.Reply(ctx, iq, answer, nil)
		return
	}
	line := c.name
	if c.arg != "" {
		value := strings.TrimSpace(req.Form.Value(c.arg))
		if value == "" {
			answer.Status = "executing"
			answer.Actions = &xmpp.CommandActions{Execute: "complete", Complete: &xmpp.Empty{}}
			answer.Form = &xmpp.CommandForm{Type: "form", Title: c.help, Fields: []xmpp.CommandFormField{
				{Var: c.arg, Type: "jid-single", Label: "JID", Required: &xmpp.Empty{}}}}
			b.XMPP.Reply(ctx, iq, answer, nil)
			return
		}
		line += " " + value
	}
	go func() {
		ctx, cancel := context.WithTimeout(b.ctx, 2*time.Minute)
		defer cancel()
		text := b.runCommand(ctx, &cmdEnv{b: b, xmpp: iq.From.Bare()}, line)
		answer.Status = "completed"
		answer.Notes = []xmpp.CommandNote{{Type: "info", Text: text}}
		b.XMPP.Reply(ctx, iq, answer, nil)
	}()
}
