package bridge

import (
	"context"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"mellium.im/xmpp/stanza"

	"github.com/mxpp/mxpp/xmpp"
)

// Finding Matrix users from XMPP (bridge.user_search: local): XEP-0055
// Jabber Search on the component, with an extended form (XEP-0004). The
// answer comes from the homeserver's user directory, as the bot sees it,
// and names each user by their contact JID, through which XMPP users
// chat with them and ask to see their presence.

// maxSearchResults bounds one search's answer.
const maxSearchResults = 50

// searchField is the form's one field: a name or a Matrix ID, or a part.
const searchField = "search"

// handleUserSearch answers a search form request, or a submitted search.
func (b *Bridge) handleUserSearch(ctx context.Context, iq *xmpp.IQ) {
	switch iq.Type {
	case xmpp.TypeGet:
		b.XMPP.Reply(ctx, iq, &xmpp.SearchQuery{
			Instructions: "Find Matrix users of " + b.Config.Homeserver.Domain + " by name or Matrix ID.",
			Form: &xmpp.SearchForm{Type: "form", Title: "Matrix users", Fields: []xmpp.FormField{
				{Var: "FORM_TYPE", Type: "hidden", Values: []string{xmpp.NSSearch}},
				{Var: searchField, Type: "text-single", Label: "Name or Matrix ID"},
			}},
		}, nil)
	case xmpp.TypeSet:
		var q xmpp.SearchQuery
		if err := iq.Payload.Decode(&q); err != nil {
			b.XMPP.Reply(ctx, iq, nil, xmpp.StanzaError(stanza.BadRequest, ""))
			return
		}
		term := strings.TrimSpace(q.Form.Value(searchField))
		if term == "" {
			b.XMPP.Reply(ctx, iq, nil, xmpp.StanzaError(stanza.NotAcceptable, "Say whom to look for"))
			return
		}
		if !b.allowLookup(iq.From.JID) {
			b.XMPP.Reply(ctx, iq, nil, xmpp.StanzaError(stanza.ResourceConstraint, "Too many requests; try again later"))
			return
		}
		go b.answerUserSearch(iq, term)
	default:
		b.XMPP.Reply(ctx, iq, nil, xmpp.StanzaError(stanza.BadRequest, ""))
	}
}

// answerUserSearch asks the user directory and answers with the users an
// XMPP user may reach: of the bridged homeserver, at level user and up.
func (b *Bridge) answerUserSearch(iq *xmpp.IQ, term string) {
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	found, err := b.Matrix.SearchUsers(ctx, term, maxSearchResults)
	if err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Msg("User search failed")
		b.XMPP.Reply(ctx, iq, nil, xmpp.StanzaError(stanza.RemoteServerTimeout, "The Matrix homeserver did not answer"))
		return
	}
	form := &xmpp.SearchForm{Type: "result", Reported: &xmpp.SearchFields{Fields: []xmpp.FormField{
		{Var: "jid", Type: "jid-single", Label: "JID"},
		{Var: "name", Type: "text-single", Label: "Name"},
		{Var: "mxid", Type: "text-single", Label: "Matrix ID"},
	}}}
	form.Fields = []xmpp.FormField{{Var: "FORM_TYPE", Type: "hidden", Values: []string{xmpp.NSSearch}}}
	for _, u := range found {
		_, server, _ := u.UserID.Parse()
		if server != b.Config.Homeserver.Domain || !b.Config.hasLevel(u.UserID, LevelUser) {
			continue
		}
		userJID, err := b.userJID(u.UserID)
		if err != nil {
			continue
		}
		name := u.DisplayName
		if name == "" {
			name = u.UserID.Localpart()
		}
		form.Items = append(form.Items, xmpp.SearchFields{Fields: []xmpp.FormField{
			{Var: "jid", Values: []string{userJID.String()}},
			{Var: "name", Values: []string{name}},
			{Var: "mxid", Values: []string{u.UserID.String()}},
		}})
	}
	b.XMPP.Reply(ctx, iq, &xmpp.SearchQuery{Form: form}, nil)
}
