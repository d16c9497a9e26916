package portal

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/id"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/mxpp/mxpp/database"
	"github.com/mxpp/mxpp/xmpp"
)

// MaxAvatarBytes bounds avatars copied in either direction.
const MaxAvatarBytes = 1 << 20

// Avatars knows the XEP-0153 hashes of Matrix avatars, and keeps the
// images lately asked for by vCards (avatarCacheBytes in all, each for
// avatarCacheTTL), so that a burst of vCard requests costs one download per
// image. A hash not yet known is fetched in the background, and Ready is
// called with the URI when it is, so that presence can be sent again with
// it. At most four downloads run at once; requests for an image already
// being downloaded wait for that download.
type Avatars struct {
	Download func(ctx context.Context, uri id.ContentURIString, maxBytes int64) ([]byte, string, error)
	Ready    func(uri id.ContentURIString)
	Log      zerolog.Logger

	mu      sync.Mutex
	hashes  map[id.ContentURIString]string
	pending map[id.ContentURIString]bool
	slots   chan struct{}

	images  map[id.ContentURIString]*avatarImage
	stored  int // bytes of the images kept
	loading map[id.ContentURIString]*avatarLoad
}

// Bounds of the images kept for vCards.
const (
	avatarCacheBytes = 16 << 20
	avatarCacheTTL   = 10 * time.Minute
)

// avatarImage is an image kept for vCards.
type avatarImage struct {
	data        []byte
	contentType string
	at          time.Time
}

// avatarLoad is a download of an image that vCard requests wait for.
type avatarLoad struct {
	done chan struct{}
	img  *avatarImage
	err  error
}

// NewAvatars returns an avatar cache that fetches at most four at once.
func NewAvatars(download func(context.Context, id.ContentURIString, int64) ([]byte, string, error), log zerolog.Logger) *Avatars {
	return &Avatars{Download: download, Log: log, hashes: map[id.ContentURIString]string{},
		pending: map[id.ContentURIString]bool{}, slots: make(chan struct{}, 4),
		images: map[id.ContentURIString]*avatarImage{}, loading: map[id.ContentURIString]*avatarLoad{}}
}

// Hash returns the hash of an avatar, "" for no avatar. ok is false while
// the hash is not known yet.
func (a *Avatars) Hash(uri id.ContentURIString) (hash string, ok bool) {
	if uri == "" {
		return "", true
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if h, ok := a.hashes[uri]; ok {
		return h, true
	}
	if !a.pending[uri] {
		a.pending[uri] = true
		go a.fetch(uri)
	}
	return "", false
}

func (a *Avatars) fetch(uri id.ContentURIString) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := a.image(ctx, uri)
	a.mu.Lock()
	delete(a.pending, uri)
	a.mu.Unlock()
	if err != nil {
		a.Log.Warn().Err(err).Str("avatar", string(uri)).Msg("Failed to fetch a Matrix avatar")
		return
	}
	if a.Ready != nil {
		a.Ready(uri)
	}
}

// Photo returns an avatar for a vCard, kept or downloaded, and remembers
// its hash.
func (a *Avatars) Photo(ctx context.Context, uri id.ContentURIString) (*xmpp.VCardPhoto, error) {
	if uri == "" {
		return nil, nil
	}
	img, err := a.image(ctx, uri)
	if err != nil {
		return nil, err
	}
	return xmpp.NewVCardPhoto(img.data, img.contentType), nil
}

// image returns an avatar's image: kept, being downloaded (waiting for
// that), or downloaded now.
func (a *Avatars) image(ctx context.Context, uri id.ContentURIString) (*avatarImage, error) {
	a.mu.Lock()
	if img := a.images[uri]; img != nil && time.Since(img.at) < avatarCacheTTL {
		a.mu.Unlock()
		return img, nil
	}
	l := a.loading[uri]
	if l == nil {
		l = &avatarLoad{done: make(chan struct{})}
		a.loading[uri] = l
		go a.load(uri, l)
	}
	a.mu.Unlock()
	select {
	case <-l.done:
		return l.img, l.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// load downloads an image for those waiting on l, and keeps it.
func (a *Avatars) load(uri id.ContentURIString, l *avatarLoad) {
	a.slots <- struct{}{}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	data, contentType, err := a.Download(ctx, uri, MaxAvatarBytes)
	cancel()
	<-a.slots
	if err == nil && (contentType == "" || contentType == "application/octet-stream") {
		contentType = http.DetectContentType(data)
	}
	a.mu.Lock()
	delete(a.loading, uri)
	if err == nil {
		l.img = &avatarImage{data: data, contentType: contentType, at: time.Now()}
		a.hashes[uri] = xmpp.PhotoHash(data)
		a.keep(uri, l.img)
	}
	l.err = err
	a.mu.Unlock()
	close(l.done)
}

// keep stores an image, dropping the oldest ones beyond avatarCacheBytes.
// Called with a.mu held.
func (a *Avatars) keep(uri id.ContentURIString, img *avatarImage) {
	if old := a.images[uri]; old != nil {
		a.stored -= len(old.data)
	}
	a.images[uri] = img
	a.stored += len(img.data)
	for a.stored > avatarCacheBytes {
		var oldest id.ContentURIString
		for u, i := range a.images {
			if oldest == "" || i.at.Before(a.images[oldest].at) {
				oldest = u
			}
		}
		a.stored -= len(a.images[oldest].data)
		delete(a.images, oldest)
	}
}

// vcardUpdate is the XEP-0153 element for a presence: the hash if known,
// an empty photo for no avatar, nothing while the hash is being fetched.
func (a *Avatars) vcardUpdate(uri id.ContentURIString) *xmpp.VCardUpdate {
	if a == nil {
		return nil
	}
	hash, ok := a.Hash(uri)
	if !ok {
		return nil
	}
	return &xmpp.VCardUpdate{Photo: &hash}
}

// AvatarReady tells a portal that the hash of an avatar became known.
type AvatarReady struct{ URI id.ContentURIString }

// handleAvatarReady sends again the presence of members with that avatar.
func (p *Portal) handleAvatarReady(ctx context.Context, uri id.ContentURIString) {
	for _, m := range p.roster.members {
		if p.info.Members[m.userID].AvatarURL == uri {
			p.broadcast(ctx, nil, func(to jid.JID) any { return p.availablePresence(m.userID, m.nick, to, p.memberItem(m)) })
		}
	}
}

// handleVCard answers vCard requests (XEP-0054) to the room, whose photo is
// the room's avatar, and to occupants: Matrix members get their avatar from
// the bridge, XMPP occupants' requests go on to their own server.
func (p *Portal) handleVCard(ctx context.Context, iq *xmpp.IQ) {
	if iq.Type != xmpp.TypeGet {
		p.deps.XMPP.Reply(ctx, iq, nil, xmpp.StanzaError(stanza.NotAllowed, "vCards here are read-only"))
		return
	}
	nick := iq.To.Resourcepart()
	if nick == "" {
		name := p.info.Name
		if name == "" {
			name = p.Alias.String()
		}
		p.replyVCard(ctx, iq, &xmpp.VCard{FN: name}, p.info.Avatar)
		return
	}
	owner, ok := p.userOfNick(nick)
	if !ok {
		p.deps.XMPP.Reply(ctx, iq, nil, xmpp.StanzaError(stanza.ItemNotFound, "No such occupant"))
		return
	}
	if m := p.roster.members[owner]; m != nil {
		p.replyVCard(ctx, iq, &xmpp.VCard{FN: m.displayname, Nickname: m.nick}, p.info.Members[owner].AvatarURL)
		return
	}
	if o := p.occupantOf(owner); o != nil {
		// Asked off the portal's loop: the answer may take a while. On the
		// loop's context, not this event's, which ends when we return.
		go p.forwardVCard(zerolog.Ctx(ctx).WithContext(p.Context()), iq, o.bare)
		return
	}
	p.deps.XMPP.Reply(ctx, iq, nil, xmpp.StanzaError(stanza.ItemNotFound, ""))
}

// replyVCard answers a vCard request with card and the avatar's image.
// The image may take a download: that happens beside the portal's loop
// (on the loop's context, not this event's), which goes on meanwhile.
func (p *Portal) replyVCard(ctx context.Context, iq *xmpp.IQ, card *xmpp.VCard, avatar id.ContentURIString) {
	if p.deps.Avatars == nil || avatar == "" {
		p.deps.XMPP.Reply(ctx, iq, card, nil)
		return
	}
	ctx = zerolog.Ctx(ctx).WithContext(p.Context())
	go func() {
		photo, err := p.deps.Avatars.Photo(ctx, avatar)
		if err != nil {
			p.log.Warn().Err(err).Msg("Failed to fetch an avatar for a vCard")
		}
		card.Photo = photo
		p.deps.XMPP.Reply(ctx, iq, card, nil)
	}()
}

// forwardVCard asks an XMPP occupant's server for its vCard and passes the
// answer on.
func (p *Portal) forwardVCard(ctx context.Context, iq *xmpp.IQ, bare jid.JID) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	reply, err := p.deps.XMPP.SendIQ(ctx, &xmpp.IQ{Type: xmpp.TypeGet, From: xmpp.A(p.roomJID), To: xmpp.A(bare), Body: &xmpp.VCard{}})
	var serr stanza.Error
	switch {
	case errors.As(err, &serr):
		p.deps.XMPP.Reply(ctx, iq, nil, &serr)
	case err != nil:
		p.deps.XMPP.Reply(ctx, iq, nil, xmpp.StanzaError(stanza.RemoteServerTimeout, ""))
	default:
		var card xmpp.VCard
		if derr := reply.Payload.Decode(&card); derr != nil {
			card = xmpp.VCard{}
		}
		p.deps.XMPP.Reply(ctx, iq, &card, nil)
	}
}

// PuppetAvatars copies XMPP users' vCard avatars to their puppets, when the
// XEP-0153 hash in their presence differs from the one copied last.
type PuppetAvatars struct {
	Matrix interface {
		UploadMedia(ctx context.Context, asUser id.UserID, data []byte, contentType, fileName string) (id.ContentURI, error)
		SetPuppetAvatar(ctx context.Context, puppet id.UserID, uri id.ContentURI) error
	}
	XMPP   XMPPAPI
	DB     *database.Database
	From   jid.JID // the component's domain
	Log    zerolog.Logger
	mu     sync.Mutex
	active map[string]bool
}

// Update starts copying the avatar of an XMPP user if hash is new. It
// returns at once.
func (pa *PuppetAvatars) Update(bare jid.JID, puppet id.UserID, hash string) {
	pa.mu.Lock()
	if pa.active == nil {
		pa.active = map[string]bool{}
	}
	if pa.active[bare.String()] {
		pa.mu.Unlock()
		return
	}
	pa.active[bare.String()] = true
	pa.mu.Unlock()
	go func() {
		defer func() {
			pa.mu.Lock()
			delete(pa.active, bare.String())
			pa.mu.Unlock()
		}()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := pa.copy(ctx, bare, puppet, hash); err != nil {
			pa.Log.Warn().Err(err).Stringer("jid", bare).Msg("Failed to copy an XMPP avatar to Matrix")
		}
	}()
}

func (pa *PuppetAvatars) copy(ctx context.Context, bare jid.JID, puppet id.UserID, hash string) error {
	row, err := pa.DB.Puppet.GetByJID(ctx, bare.String())
	if err != nil || row == nil || row.AvatarHash == hash {
		return err
	}
	var uri id.ContentURI
	if hash != "" {
		reply, err := pa.XMPP.SendIQ(ctx, &xmpp.IQ{Type: xmpp.TypeGet, From: xmpp.A(pa.From), To: xmpp.A(bare), Body: &xmpp.VCard{}})
		if err != nil {
			return err
		}
		var card xmpp.VCard
		if err = reply.Payload.Decode(&card); err != nil || card.Photo == nil {
			return errors.New("the vCard has no photo")
		}
		data, err := card.Photo.Data()
		if err != nil {
			return err
		}
		if len(data) > MaxAvatarBytes {
			return errors.New("the avatar is too large")
		}
		contentType := card.Photo.Type
		if contentType == "" {
			contentType = http.DetectContentType(data)
		}
		if uri, err = pa.Matrix.UploadMedia(ctx, puppet, data, contentType, "avatar"); err != nil {
			return err
		}
	}
	if err = pa.Matrix.SetPuppetAvatar(ctx, puppet, uri); err != nil {
		return err
	}
	pa.Log.Info().Stringer("jid", bare).Msg("Copied XMPP avatar to the puppet")
	// The advertised hash is kept, so that the next presence with it does
	// not copy the avatar again.
	return pa.DB.Puppet.SetAvatarHash(ctx, bare.String(), hash)
}
