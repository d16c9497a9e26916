//go:build e2e

package e2e

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"mellium.im/xmpp/jid"

	"github.com/mxpp/mxpp/xmpp"
)

func testPNG(t *testing.T, c color.Color) []byte {
	img := image.NewRGBA(image.Rect(0, 0, 8, 8))
	for x := range 8 {
		for y := range 8 {
			img.Set(x, y, c)
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func vcardOf(t *testing.T, c *xmppClient, to jid.JID) *xmpp.VCard {
	t.Helper()
	r := c.iq(to, xmpp.TypeGet, &xmpp.VCard{})
	if r.Type != xmpp.TypeResult {
		t.Fatalf("vCard of %s: %v", to, r.Error)
	}
	var card xmpp.VCard
	if err := r.Payload.Decode(&card); err != nil {
		t.Fatal(err)
	}
	return &card
}

// TestE2EAvatars: Matrix avatars reach XMPP as XEP-0153 hashes and vCards
// (members, contacts, the room); an XMPP user's vCard avatar becomes its
// puppet's avatar.
func TestE2EAvatars(t *testing.T) {
	v := need(t)
	mary, room, muc := v.newRoom(t, "Mary", "avatars", "Avatars", "")
	alice := v.newXMPPClient(t, "alice", "av")
	alice.mustJoin(muc, "Alice")

	// Mary sets an avatar: presence with its hash, and her vCards have it.
	face := testPNG(t, color.RGBA{200, 30, 30, 255})
	up, err := mary.c.UploadBytes(ctx(t), face, "image/png")
	if err != nil {
		t.Fatal(err)
	}
	mark := alice.mark()
	if err = mary.c.SetAvatarURL(ctx(t), up.ContentURI); err != nil {
		t.Fatal(err)
	}
	want := xmpp.PhotoHash(face)
	alice.waitFrom(mark, "Mary's avatar hash", func(v any) bool {
		p, ok := v.(*xmpp.Presence)
		return ok && p.From.Equal(occ(muc, "Mary")) && p.VCardUpdate != nil && p.VCardUpdate.Photo != nil && *p.VCardUpdate.Photo == want
	})
	for _, to := range []jid.JID{occ(muc, "Mary"), jid.MustParse(mary.id.Localpart() + "#" + v.HSDomain + "@" + v.CompDomain)} {
		card := vcardOf(t, alice, to)
		if card.Photo == nil {
			t.Errorf("vCard of %s has no photo", to)
			continue
		}
		if data, err := card.Photo.Data(); err != nil || !bytes.Equal(data, face) || card.Photo.Type != "image/png" {
			t.Errorf("vCard photo of %s: %d bytes, type %q, %v", to, len(data), card.Photo.Type, err)
		}
	}

	// The room's avatar is the MUC's vCard, and its hash is in disco#info.
	roomFace := testPNG(t, color.RGBA{30, 30, 200, 255})
	up, err = mary.c.UploadBytes(ctx(t), roomFace, "image/png")
	if err != nil {
		t.Fatal(err)
	}
	if _, err = mary.c.SendStateEvent(ctx(t), room, event.StateRoomAvatar, "", &event.RoomAvatarEventContent{URL: up.ContentURI.CUString()}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		info := decodeInfo(t, alice.iq(muc, xmpp.TypeGet, &xmpp.DiscoInfo{}))
		if slices.ContainsFunc(info.Forms[0].Fields, func(f xmpp.FormField) bool {
			return f.Var == "muc#roominfo_avatarhash" && slices.Contains(f.Values, xmpp.PhotoHash(roomFace))
		}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("disco#info never had the room's avatar hash: %+v", info.Forms)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if card := vcardOf(t, alice, muc); card.Photo == nil {
		t.Error("the room's vCard has no photo")
	} else if data, _ := card.Photo.Data(); !bytes.Equal(data, roomFace) {
		t.Error("the room's vCard photo is not the room avatar")
	}

	// Alice publishes a vCard avatar and advertises it: her puppet gets it.
	aliceFace := testPNG(t, color.RGBA{30, 200, 30, 255})
	if r := alice.iq(jid.JID{}, xmpp.TypeSet, &xmpp.VCard{FN: "Alice", Photo: xmpp.NewVCardPhoto(aliceFace, "image/png")}); r.Type != xmpp.TypeResult {
		t.Fatalf("publishing a vCard: %v", r.Error)
	}
	hash := xmpp.PhotoHash(aliceFace)
	alice.send(&xmpp.Presence{To: xmpp.A(occ(muc, "Alice")), VCardUpdate: &xmpp.VCardUpdate{Photo: &hash}})
	puppet := puppetOf("alice@" + v.XMPPDomain)
	deadline = time.Now().Add(15 * time.Second)
	for {
		resp, err := mary.c.GetAvatarURL(ctx(t), puppet)
		if err == nil && !resp.IsEmpty() {
			data, err := mary.c.DownloadBytes(ctx(t), resp)
			if err != nil {
				data, err = downloadLegacy(t, resp.String())
			}
			if err != nil || !bytes.Equal(data, aliceFace) {
				t.Errorf("puppet avatar: %d bytes, %v; want Alice's vCard photo", len(data), err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the puppet never got Alice's avatar")
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Another occupant asks for Alice's vCard by her occupant JID: the
	// room asks her server and passes the answer on (XEP-0054 §3.3).
	bob := v.newXMPPClient(t, "bob", "vcard")
	bob.mustJoin(muc, "Bob")
	card := vcardOf(t, bob, occ(muc, "Alice"))
	var data []byte
	if card.Photo != nil {
		data, _ = card.Photo.Data()
	}
	if card.FN != "Alice" || !bytes.Equal(data, aliceFace) {
		t.Errorf("Alice's vCard through the room: FN %q, %d bytes of photo; want hers", card.FN, len(data))
	}
}

// downloadLegacy fetches media from the unauthenticated endpoint, for
// homeservers without authenticated media.
func downloadLegacy(t *testing.T, mxc string) ([]byte, error) {
	uri, err := id.ParseContentURI(mxc)
	if err != nil {
		return nil, err
	}
	resp, err := http.Get(e.HSURL + "/_matrix/media/v3/download/" + uri.Homeserver + "/" + uri.FileID)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}
