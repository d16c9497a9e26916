package bridge

import (
	"context"
	"encoding/xml"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/paging"
	"mellium.im/xmpp/stanza"

	"github.com/mxpp/mxpp/matrix"
	"github.com/mxpp/mxpp/portal"
	"github.com/mxpp/mxpp/xmpp"
)

// directoryTTL is how long the room directory is cached for discovery.
const directoryTTL = 10 * time.Second

// maxItemsUnpaged bounds a disco#items answer without an RSM request.
const maxItemsUnpaged = 500

// roomListing is one room as disco#items lists it.
type roomListing struct {
	jid  jid.JID
	name string
}

type directoryCache struct {
	mu      sync.Mutex
	fetched time.Time
	rooms   []matrix.PublicRoom
}

// handleServiceStanza handles stanzas to the component's own domain. IQs
// that need the homeserver are answered off the XMPP read loop.
func (b *Bridge) handleServiceStanza(ctx context.Context, st any) {
	iq, ok := st.(*xmpp.IQ)
	if !ok {
		if m, isMsg := st.(*xmpp.Message); isMsg && m.Type != xmpp.TypeError && m.Body != "" {
			b.reject(ctx, st, stanza.ServiceUnavailable, "This is a Matrix bridge; join its rooms to chat")
		}
		return
	}
	switch {
	case iq.Type == xmpp.TypeGet && iq.Payload.XMLName.Space == xmpp.NSDiscoInfo:
		info := &xmpp.DiscoInfo{
			Identities: []xmpp.DiscoIdentity{
				{Category: "conference", Type: "text", Name: "Matrix rooms"},
				{Category: "gateway", Type: "matrix", Name: "Matrix bridge"},
			},
			Features: xmpp.Features(xmpp.NSDiscoInfo, xmpp.NSDiscoItems, xmpp.NSMUC, xmpp.NSPing, paging.NS, xmpp.NSCommands),
		}
		if b.Config.Bridge.UserSearch == UserSearchLocal {
			info.Identities = append(info.Identities, xmpp.DiscoIdentity{Category: "directory", Type: "user", Name: "Matrix users"})
			info.Features = append(info.Features, xmpp.Features(xmpp.NSSearch)...)
		}
		b.XMPP.Reply(ctx, iq, info, nil)
	case iq.Payload.XMLName.Space == xmpp.NSSearch && b.Config.Bridge.UserSearch == UserSearchLocal:
		b.handleUserSearch(ctx, iq)
	case iq.Type == xmpp.TypeGet && iq.Payload.XMLName.Space == xmpp.NSDiscoItems:
		var q itemsQuery
		if iq.Payload.Decode(&q) == nil && q.Node == xmpp.NSCommands {
			b.XMPP.Reply(ctx, iq, b.commandItems(iq.From.JID), nil)
			return
		}
		if !b.allowLookup(iq.From.JID) || !b.goListing(func() { b.answerRoomItems(ctx, iq) }) {
			b.XMPP.Reply(ctx, iq, nil, xmpp.StanzaError(stanza.ResourceConstraint, "Too many requests; try again later"))
		}
	case iq.Type == xmpp.TypeSet && iq.Payload.XMLName.Space == xmpp.NSCommands:
		b.handleAdhoc(ctx, iq)
	default:
		b.XMPP.Reply(ctx, iq, nil, xmpp.StanzaError(stanza.ServiceUnavailable, ""))
	}
}

// rsmRequest is an XEP-0059 request.
type rsmRequest struct {
	XMLName xml.Name `xml:"http://jabber.org/protocol/rsm set"`
	Max     *int     `xml:"max"`
	After   *string  `xml:"after"`
	Before  *string  `xml:"before"`
	Index   *int     `xml:"index"`
}

type itemsQuery struct {
	XMLName xml.Name    `xml:"http://jabber.org/protocol/disco#items query"`
	Node    string      `xml:"node,attr"`
	Set     *rsmRequest `xml:"http://jabber.org/protocol/rsm set"`
}

// itemsResult is disco#items with an RSM set.
type itemsResult struct {
	XMLName xml.Name         `xml:"http://jabber.org/protocol/disco#items query"`
	Items   []xmpp.DiscoItem `xml:"item"`
	Set     *paging.Set
}

// answerRoomItems lists the rooms reachable from XMPP (XEP-0045 §6.3),
// paged with XEP-0059 when asked or when the list is long.
func (b *Bridge) answerRoomItems(ctx context.Context, iq *xmpp.IQ) {
	var q itemsQuery
	if err := iq.Payload.Decode(&q); err != nil {
		b.XMPP.Reply(ctx, iq, nil, xmpp.StanzaError(stanza.BadRequest, ""))
		return
	}
	if q.Node != "" {
		b.XMPP.Reply(ctx, iq, &xmpp.DiscoItems{Node: q.Node}, nil)
		return
	}
	rooms := b.listRooms(ctx)
	page, set, serr := pageOf(rooms, q.Set)
	if serr != nil {
		b.XMPP.Reply(ctx, iq, nil, serr)
		return
	}
	res := &itemsResult{Set: set}
	for _, r := range page {
		res.Items = append(res.Items, xmpp.DiscoItem{JID: xmpp.A(r.jid), Name: r.name})
	}
	b.XMPP.Reply(ctx, iq, res, nil)
}

// pageOf cuts one XEP-0059 page out of rooms, which are sorted by JID. The
// JID is the page's item key for after and before.
func pageOf(rooms []roomListing, req *rsmRequest) ([]roomListing, *paging.Set, *stanza.Error) {
	if req == nil {
		if len(rooms) <= maxItemsUnpaged {
			return rooms, nil, nil
		}
		req = &rsmRequest{}
		m := maxItemsUnpaged
		req.Max = &m
	}
	maxN := len(rooms)
	if req.Max != nil {
		if *req.Max < 0 {
			return nil, nil, xmpp.StanzaError(stanza.BadRequest, "RSM max must not be negative")
		}
		maxN = *req.Max
	}
	count := uint64(len(rooms))
	start, end := 0, len(rooms)
	switch {
	case req.Index != nil:
		start = *req.Index
		if start < 0 || start > len(rooms) {
			return nil, nil, xmpp.StanzaError(stanza.ItemNotFound, "RSM index out of range")
		}
	case req.After != nil:
		i := slices.IndexFunc(rooms, func(r roomListing) bool { return r.jid.String() == *req.After })
		if i < 0 {
			return nil, nil, xmpp.StanzaError(stanza.ItemNotFound, "RSM after: no such item")
		}
		start = i + 1
	case req.Before != nil:
		if *req.Before != "" {
			end = slices.IndexFunc(rooms, func(r roomListing) bool { return r.jid.String() == *req.Before })
			if end < 0 {
				return nil, nil, xmpp.StanzaError(stanza.ItemNotFound, "RSM before: no such item")
			}
		}
		start = max(0, end-maxN)
	}
	end = min(end, start+maxN)
	page := rooms[start:end]
	set := &paging.Set{Count: &count}
	if len(page) > 0 {
		idx := uint64(start)
		set.First.ID, set.First.Index = page[0].jid.String(), &idx
		set.Last = page[len(page)-1].jid.String()
	}
	return page, set, nil
}

// listRooms returns the rooms XMPP users can reach: the bridged ones and
// the public rooms of the directory that have an alias here, sorted by JID.
func (b *Bridge) listRooms(ctx context.Context) []roomListing {
	byJID := map[string]roomListing{}
	mode := b.Config.Bridge.Exposure
	if mode == ExposureOff {
		return nil
	}
	names := map[id.RoomID]string{}
	for _, pub := range b.directory(ctx) {
		names[pub.RoomID] = pub.Name
		if mode != ExposurePublic || !b.directoryReachable(pub) {
			continue
		}
		if j, err := portal.MUCJID(b.scheme, pub.CanonicalAlias); err == nil {
			name := pub.Name
			if name == "" {
				name = pub.CanonicalAlias.String()
			}
			byJID[j.String()] = roomListing{jid: j, name: name}
		}
	}
	rows, err := b.DB.Portal.GetAll(ctx)
	if err != nil {
		zerolog.Ctx(ctx).Error().Err(err).Msg("Failed to list portals")
	}
	// One query for what opt-in opened, not one per portal.
	var exposed map[id.RoomID]bool
	if mode == ExposureOptIn {
		settings, err := b.DB.Settings.GetExposed(ctx)
		if err != nil {
			zerolog.Ctx(ctx).Error().Err(err).Msg("Failed to list the exposed rooms")
		}
		exposed = make(map[id.RoomID]bool, len(settings))
		for _, s := range settings {
			exposed[s.RoomID] = true
		}
	}
	for _, row := range rows {
		if mode == ExposureOptIn && !exposed[row.RoomID] {
			continue
		}
		j, err := portal.MUCJID(b.scheme, row.Alias)
		if _, listed := byJID[j.String()]; err == nil && !listed {
			name := names[row.RoomID]
			if name == "" {
				name = row.Alias.String()
			}
			byJID[j.String()] = roomListing{jid: j, name: name}
		}
	}
	out := make([]roomListing, 0, len(byJID))
	for _, r := range byJID {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, c roomListing) int { return strings.Compare(a.jid.String(), c.jid.String()) })
	return out
}

// directoryReachable reports whether a directory room can be joined from
// XMPP as it is listed.
func (b *Bridge) directoryReachable(pub matrix.PublicRoom) bool {
	_, server, ok := portal.SplitAlias(pub.CanonicalAlias)
	return ok && server == b.Config.Homeserver.Domain && (pub.JoinRule == "" || pub.JoinRule == event.JoinRulePublic)
}

// directory returns the homeserver's room directory, cached briefly.
func (b *Bridge) directory(ctx context.Context) []matrix.PublicRoom {
	b.dir.mu.Lock()
	defer b.dir.mu.Unlock()
	if time.Since(b.dir.fetched) < directoryTTL {
		return b.dir.rooms
	}
	rooms, err := b.Matrix.PublicRooms(ctx)
	if err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Msg("Failed to read the room directory")
		return b.dir.rooms
	}
	b.dir.rooms, b.dir.fetched = rooms, time.Now()
	return rooms
}

// roomInfoWithoutPortal answers disco#info for a room nobody joined yet:
// from the directory when it is listed there, else by looking it up, which
// makes it a portal.
func (b *Bridge) roomInfoWithoutPortal(ctx context.Context, iq *xmpp.IQ, local string) {
	for _, pub := range b.directory(ctx) {
		if b.Config.Bridge.Exposure != ExposurePublic {
			break
		}
		if !b.directoryReachable(pub) {
			continue
		}
		if j, err := portal.MUCJID(b.scheme, pub.CanonicalAlias); err == nil && j.Localpart() == local {
			b.XMPP.Reply(ctx, iq, portal.RoomDiscoInfo(portal.RoomSummary{
				Name: pub.Name, Alias: pub.CanonicalAlias, Topic: pub.Topic, Subject: firstNonEmpty(pub.Topic, pub.Name),
				Occupants: pub.Members, Listed: true, Open: true,
			}), nil)
			return
		}
	}
	b.lookupRoom(ctx, local, iq)
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
