package msgconv

import (
	"crypto/sha256"
	"encoding/base64"
	"strings"

	"golang.org/x/text/unicode/norm"
	"maunium.net/go/mautrix/event"

	"github.com/mxpp/mxpp/xmpp"
)

// RandomTxnPrefix starts the transaction IDs that are random: made for
// stanzas without any id, they cannot come again.
const RandomTxnPrefix = "mxpp_r_"

// TxnID makes the Matrix transaction ID of an XMPP stanza, so that sending
// the same stanza twice yields one event. Transaction IDs are scoped to the
// sending user; the room is part of the hash since stanza ids need not be
// unique across rooms. Without stanzaID, fallback is used; without either,
// the ID is random.
func TxnID(room, sender, stanzaID, fallback string) string {
	if stanzaID == "" {
		stanzaID = fallback
	}
	if stanzaID == "" {
		return RandomTxnPrefix + xmpp.RandomID()
	}
	sum := sha256.Sum256([]byte(room + "\x00" + sender + "\x00" + stanzaID))
	return "mxpp_" + base64.RawURLEncoding.EncodeToString(sum[:18])
}

// StanzaIDOf is the id the sender gave a stanza: its origin-id (XEP-0359)
// if it has one, else its id.
func StanzaIDOf(msg *xmpp.Message) string {
	if msg.OriginID != nil && msg.OriginID.ID != "" {
		return msg.OriginID.ID
	}
	return msg.ID
}

// NickKey is how nicks compare: without case and Unicode form.
func NickKey(nick string) string {
	return strings.ToLower(norm.NFKC.String(nick))
}

// MessageKind names a Matrix message for metrics.
func MessageKind(c *event.MessageEventContent) string {
	switch {
	case c.RelatesTo.GetReplaceID() != "":
		return "edit"
	case c.RelatesTo.GetReplyTo() != "":
		return "reply"
	case IsMedia(c.MsgType):
		return "media"
	case c.MsgType == event.MsgText, c.MsgType == event.MsgEmote, c.MsgType == event.MsgNotice:
		return strings.TrimPrefix(string(c.MsgType), "m.")
	}
	// Senders choose msgtypes: a metric label from one would let them
	// grow the metrics without bound.
	return "other"
}

// ChatState returns the XEP-0085 state a message carries, or "".
func ChatState(m *xmpp.Message) string {
	switch {
	case m.Composing != nil:
		return "composing"
	case m.Paused != nil:
		return "paused"
	case m.Active != nil:
		return "active"
	case m.Inactive != nil:
		return "inactive"
	case m.Gone != nil:
		return "gone"
	}
	return ""
}

// WithChatState sets one chat state on a message: composing, paused, or
// active for anything else.
func WithChatState(m *xmpp.Message, state string) *xmpp.Message {
	e := &xmpp.Empty{}
	switch state {
	case "composing":
		m.Composing = e
	case "paused":
		m.Paused = e
	default:
		m.Active = e
	}
	return m
}
