//go:build e2e

package e2e

import (
	"bytes"
	"image/color"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"maunium.net/go/mautrix/event"

	"github.com/mxpp/mxpp/xmpp"
)

// TestE2EMedia: Matrix files reach XMPP as signed links through the bridge
// (XEP-0066 and XEP-0447 metadata); files XMPP users share by link arrive
// on Matrix as uploads; what cannot be fetched arrives as a link.
func TestE2EMedia(t *testing.T) {
	v := need(t)
	mary, room, muc := v.newRoom(t, "Mary", "media", "Media", "")
	alice := v.newXMPPClient(t, "alice", "media")
	alice.mustJoin(muc, "Alice")
	puppet := puppetOf("alice@" + v.XMPPDomain)

	// Matrix -> XMPP.
	pic := testPNG(t, color.RGBA{10, 20, 30, 255})
	up, err := mary.c.UploadBytes(ctx(t), pic, "image/png")
	if err != nil {
		t.Fatal(err)
	}
	mark := alice.mark()
	_, err = mary.c.SendMessageEvent(ctx(t), room, event.EventMessage, &event.MessageEventContent{
		MsgType: event.MsgImage, Body: "look at this", FileName: "pic.png", URL: up.ContentURI.CUString(),
		Info: &event.FileInfo{MimeType: "image/png", Size: len(pic), Width: 8, Height: 8},
	})
	if err != nil {
		t.Fatal(err)
	}
	st, _ := alice.waitFrom(mark, "image link", func(v any) bool {
		m, ok := v.(*xmpp.Message)
		return ok && m.From.Equal(occ(muc, "Mary")) && m.OOB != nil
	})
	m := st.(*xmpp.Message)
	if m.Body != m.OOB.URL || m.FileSharing == nil || m.FileSharing.File.MediaType != "image/png" || m.FileSharing.File.Name != "pic.png" {
		t.Errorf("image message body %q oob %+v files %+v", m.Body, m.OOB, m.FileSharing)
	}
	alice.waitFrom(mark, "caption", isGroupchat(occ(muc, "Mary"), "look at this"))
	resp, err := http.Get(m.OOB.URL)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, pic) || resp.Header.Get("Content-Type") != "image/png" {
		t.Errorf("fetching the link: %s, %d bytes, %q", resp.Status, len(got), resp.Header.Get("Content-Type"))
	}
	tampered := strings.Replace(m.OOB.URL, up.ContentURI.FileID, up.ContentURI.FileID+"x", 1)
	if resp, err := http.Get(tampered); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("a tampered link: %v %v; want 404", resp.Status, err)
	}

	// XMPP -> Matrix: a file on an HTTP upload server, shared by link.
	shared := testPNG(t, color.RGBA{200, 100, 0, 255})
	link := servePNG(t, shared, "/upload/abc/holiday.png")
	alice.send(&xmpp.Message{Type: xmpp.TypeGroupchat, To: xmpp.A(muc), Body: link, OOB: &xmpp.OOB{URL: link}})
	evt := mary.waitEvent("uploaded image", func(evt *event.Event) bool {
		return evt.RoomID == room && evt.Sender == puppet && evt.Type == event.EventMessage && evt.Content.AsMessage().MsgType == event.MsgImage
	})
	c := evt.Content.AsMessage()
	if c.Body != "holiday.png" || c.Info == nil || c.Info.MimeType != "image/png" || c.Info.Width != 8 || c.Info.Size != len(shared) {
		t.Errorf("image content %+v info %+v", c, c.Info)
	}
	mxc, err := c.URL.Parse()
	if err != nil {
		t.Fatal(err)
	}
	data, err := mary.c.DownloadBytes(ctx(t), mxc)
	if err != nil || !bytes.Equal(data, shared) {
		t.Errorf("downloaded %d bytes, %v; want the shared file", len(data), err)
	}

	// A large file whose size the server gives goes into the upload as it
	// downloads (msgconv.StreamAbove): the same bytes arrive.
	large := largePNG(t)
	largeLink := servePNG(t, large, "/upload/ghi/large.png")
	alice.send(&xmpp.Message{Type: xmpp.TypeGroupchat, To: xmpp.A(muc), Body: largeLink, OOB: &xmpp.OOB{URL: largeLink}})
	evt = mary.waitEvent("uploaded large image", func(evt *event.Event) bool {
		return evt.RoomID == room && evt.Sender == puppet && evt.Type == event.EventMessage && evt.Content.AsMessage().Body == "large.png"
	})
	if c = evt.Content.AsMessage(); c.Info == nil || c.Info.Size != len(large) || c.Info.Width != 8 {
		t.Errorf("large image info %+v; want %d bytes, 8 wide", c.Info, len(large))
	}
	if mxc, err = c.URL.Parse(); err != nil {
		t.Fatal(err)
	}
	if data, err = mary.c.DownloadBytes(ctx(t), mxc); err != nil || !bytes.Equal(data, large) {
		t.Errorf("downloaded %d bytes, %v; want the large file's %d", len(data), err, len(large))
	}

	// A slow download holds up neither Matrix → XMPP nor the order of the
	// sharer's later messages.
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		w.Header().Set("Content-Type", "image/png")
		w.Write(shared)
	}))
	defer slow.Close()
	defer close(release)
	slowLink := slow.URL + "/upload/def/slow.png"
	mark = alice.mark()
	alice.send(&xmpp.Message{Type: xmpp.TypeGroupchat, To: xmpp.A(muc), Body: slowLink, OOB: &xmpp.OOB{URL: slowLink}})
	alice.groupchat(muc, "after the slow file")
	mary.say(room, "while it downloads")
	alice.waitFrom(mark, "a Matrix message during the download", isGroupchat(occ(muc, "Mary"), "while it downloads"))
	if mary.seen(isMessage(room, puppet, "after the slow file")) {
		t.Error("a message overtook the file shared before it")
	}
	release <- struct{}{}
	mary.waitEvent("the message after the file", isMessage(room, puppet, "after the slow file"))
	var order []string
	for _, b := range mary.messagesFrom(room, puppet) {
		if b == "slow.png" || b == "after the slow file" {
			order = append(order, b)
		}
	}
	if strings.Join(order, ",") != "slow.png,after the slow file" {
		t.Errorf("order on Matrix: %q; want the file first", order)
	}

	// A link that is not http(s) is not fetched: it arrives as text.
	bad := "ftp://files.example/x.png"
	alice.send(&xmpp.Message{Type: xmpp.TypeGroupchat, To: xmpp.A(muc), Body: bad, OOB: &xmpp.OOB{URL: bad}})
	mary.waitEvent("link as text", isMessage(room, puppet, bad))
}

// servePNG serves a PNG on loopback, as an XMPP upload service would, for
// the rest of the test, and returns its URL at path.
func servePNG(t *testing.T, png []byte, path string) string {
	t.Helper()
	upload := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/png")
		w.Header().Set("Content-Length", strconv.Itoa(len(png)))
		w.Write(png)
	}))
	t.Cleanup(upload.Close)
	return upload.URL + path
}

// largePNG is a PNG of 8×8 pixels padded past 2 MiB: larger than
// msgconv.StreamAbove, so that it goes into the upload as it downloads.
func largePNG(t *testing.T) []byte {
	return append(testPNG(t, color.RGBA{0, 100, 200, 255}), bytes.Repeat([]byte{0}, 2<<20)...)
}
