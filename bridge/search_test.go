package bridge

import (
	"slices"
	"testing"

	"mellium.im/xmpp/stanza"

	"github.com/mxpp/mxpp/xmpp"
)

// TestUserSearch: with bridge.user_search off the component neither
// advertises nor answers XEP-0055; with local it offers the form and
// answers a search with the users of the bridged homeserver who may use
// the bridge, by their contact JIDs: not the bridge's own users, not
// other servers' users, not those of level none.
func TestUserSearch(t *testing.T) {
	for _, mode := range []string{UserSearchOff, UserSearchLocal} {
		t.Run(mode, func(t *testing.T) {
			rb, srv := adhocBridge(t)
			rb.Config.Bridge.UserSearch = mode
			rb.Config.Bridge.Permissions = map[string]string{"*": LevelUser, "@muted:hs.test": LevelNone}
			from := "alice@xmpp.test/pc"
			srv.Send(`<iq type='get' id='d' from='` + from + `' to='matrix.xmpp.test'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
			var info struct {
				Features []xmpp.DiscoFeature `xml:"http://jabber.org/protocol/disco#info query>feature"`
			}
			srv.Next(&info)
			if advertised := slices.ContainsFunc(info.Features, func(f xmpp.DiscoFeature) bool { return f.Var == xmpp.NSSearch }); advertised != (mode == UserSearchLocal) {
				t.Errorf("search advertised: %v", advertised)
			}
			srv.Send(`<iq type='set' id='s' from='` + from + `' to='matrix.xmpp.test'><query xmlns='jabber:iq:search'>` +
				`<x xmlns='jabber:x:data' type='submit'><field var='search'><value>mary</value></field></x></query></iq>`)
			var answer struct {
				Type  string            `xml:"type,attr"`
				Query *xmpp.SearchQuery `xml:"jabber:iq:search query"`
				Error *stanza.Error     `xml:"error"`
			}
			srv.Next(&answer)
			if mode == UserSearchOff {
				if answer.Error == nil || answer.Error.Condition != stanza.ServiceUnavailable {
					t.Errorf("a search with user_search off: %+v; want service-unavailable", answer)
				}
				return
			}
			if answer.Query == nil || answer.Query.Form == nil || len(answer.Query.Form.Items) != 1 {
				t.Fatalf("search answer %+v; want one item", answer)
			}
			item := answer.Query.Form.Items[0].Fields
			if item[0].Values[0] != "mary#hs.test@matrix.xmpp.test" || item[1].Values[0] != "Mary Q" {
				t.Errorf("the item %+v; want Mary's contact JID and name", item)
			}
			srv.Send(`<iq type='get' id='f' from='` + from + `' to='matrix.xmpp.test'><query xmlns='jabber:iq:search'/></iq>`)
			var form struct {
				Query *xmpp.SearchQuery `xml:"jabber:iq:search query"`
			}
			srv.Next(&form)
			if form.Query == nil || form.Query.Form == nil || form.Query.Form.Type != "form" ||
				!slices.ContainsFunc(form.Query.Form.Fields, func(f xmpp.FormField) bool { return f.Var == "search" }) {
				t.Errorf("the search form: %+v", form.Query)
			}
		})
	}
}
