//go:build e2e

package e2e

import (
	"bytes"
	"database/sql"
	"encoding/base64"
	"fmt"
	"image/color"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.mau.fi/util/dbutil"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto/attachment"
	"maunium.net/go/mautrix/crypto/cryptohelper"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"mellium.im/xmpp/jid"

	"github.com/mxpp/mxpp/xmpp"
)

// withCrypto gives a client its own encryption device (mautrix crypto with
// goolm, keys in a SQLite file of the test), so that it encrypts in
// encrypted rooms and decrypts what it receives.
func withCrypto(t *testing.T, c *mautrix.Client) *mautrix.Client {
	t.Helper()
	raw, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "crypto.db")+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	db, err := dbutil.NewWithDB(raw, "sqlite")
	if err != nil {
		t.Fatal(err)
	}
	helper, err := cryptohelper.NewCryptoHelper(c, []byte("e2e pickle key"), db)
	if err != nil {
		t.Fatal(err)
	}
	if err = helper.Init(ctx(t)); err != nil {
		t.Fatalf("setting up encryption for %s: %v", c.UserID, err)
	}
	c.Crypto = helper
	t.Cleanup(func() { _ = helper.Close() })
	return c
}

// newEncryptedUser registers a user whose client encrypts.
func (v *env) newEncryptedUser(t *testing.T, localpart, displayname string) *mxUser {
	t.Helper()
	userSeq.Lock()
	userSeq.n++
	localpart = fmt.Sprintf("%s%d", localpart, userSeq.n)
	userSeq.Unlock()
	return startSync(t, withCrypto(t, v.loginMatrix(t, localpart, displayname)))
}

// secondDevice logs the user in again, as another encrypting device.
func (v *env) secondDevice(t *testing.T, u *mxUser) *mxUser {
	t.Helper()
	return startSync(t, withCrypto(t, v.loginMatrix(t, u.id.Localpart(), "")))
}

// botDevice is the bridge bot's device ID, from the bridge's database.
func botDevice(t *testing.T) string {
	t.Helper()
	for _, row := range dbRows(t) {
		if rest, ok := strings.CutPrefix(row, "crypto_account: "); ok {
			for _, f := range strings.Fields(rest) {
				if dev, ok := strings.CutPrefix(f, "device_id="); ok {
					return dev
				}
			}
		}
	}
	t.Fatal("the bridge has no encryption device")
	return ""
}

// wasEncrypted matches a message that arrived encrypted and was decrypted.
func wasEncrypted(room id.RoomID, sender id.UserID, body string) func(*event.Event) bool {
	return func(evt *event.Event) bool {
		return isMessage(room, sender, body)(evt) && evt.Mautrix.WasEncrypted
	}
}

// encryptedRoom makes a public room with an alias (made unique), with
// encryption on or off, where the bot may set state, and invites the bot.
func (u *mxUser) encryptedRoom(encrypted bool, aliasLocal string) (id.RoomID, jid.JID) {
	t := u.t
	t.Helper()
	userSeq.Lock()
	userSeq.n++
	local := fmt.Sprintf("%s%d", aliasLocal, userSeq.n)
	userSeq.Unlock()
	req := &mautrix.ReqCreateRoom{
		Visibility: "public", Preset: "public_chat", RoomAliasName: local, Name: local,
		PowerLevelOverride: &event.PowerLevelsEventContent{Users: map[id.UserID]int{u.id: 100, botID(): 50}},
	}
	if encrypted {
		req.InitialState = []*event.Event{{Type: event.StateEncryption, Content: event.Content{
			Parsed: &event.EncryptionEventContent{Algorithm: id.AlgorithmMegolmV1}}}}
	}
	resp, err := u.c.CreateRoom(ctx(t), req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err = u.c.InviteUser(ctx(t), resp.RoomID, &mautrix.ReqInviteUser{UserID: botID()}); err != nil {
		t.Fatal(err)
	}
	u.waitEvent("the bot joining", isMembership(resp.RoomID, botID(), event.MembershipJoin))
	return resp.RoomID, mucJID(t, id2alias(local, e.HSDomain))
}

// TestE2EEncryptionPolicies: with encryption.require an unencrypted room
// cannot be opened to XMPP; with encryption.verified_only a message from a
// device its owner did not verify does not reach XMPP, and its sender is
// told.
func TestE2EEncryptionPolicies(t *testing.T) {
	v := need(t)
	mary := v.newEncryptedUser(t, "mary", "Mary")
	// Opened before verified_only is on: the command comes from Mary's
	// unverified device too.
	room, muc := mary.encryptedRoom(true, "verified")
	mary.command(room, "expose", "the bridge decrypts its messages")
	alice := v.newXMPPClient(t, "alice", "policy")
	alice.mustJoin(muc, "Alice")

	v.restartBridgeEditing(t, `(?m)^  self_sign: true$`, "  self_sign: true\n  require: true\n  verified_only: true")
	defer v.restartBridgeEditing(t, `(?m)^  require: true\n  verified_only: true\n`, "")

	plain, _ := mary.encryptedRoom(false, "plain")
	mary.command(plain, "expose", "bridges only encrypted rooms")

	mark := alice.mark()
	sent := mary.say(room, "from an unverified device")
	// The bridge refuses it and says so in the room; the notice is itself
	// encrypted for verified devices only, so Mary's client cannot read
	// it: the bridge's log is where the test sees the refusal.
	waitFor(t, "the bridge refusing the message", func() bool {
		log, _ := os.ReadFile(v.LogPath())
		for _, line := range strings.Split(string(log), "\n") {
			if strings.Contains(line, sent.String()) && strings.Contains(line, "did not verify") {
				return true
			}
		}
		return false
	})
	// Whatever the bridge did with the message it has done, and what it
	// wrote for Alice has reached her.
	v.waitHandled(t, sent)
	alice.barrier()
	for _, st := range alice.since(mark) {
		if m, ok := st.(*xmpp.Message); ok && m.Body == "from an unverified device" {
			t.Error("a message from an unverified device reached XMPP")
		}
	}
}

// TestE2EEncryptedRoom: an encrypted room is bridged like any other; what
// Matrix members send reaches XMPP in the clear, what XMPP users send
// arrives encrypted; members are told; a second device and a bridge
// restart change nothing; an event the bridge cannot decrypt is reported.
func TestE2EEncryptedRoom(t *testing.T) {
	v := need(t)
	// self_sign is on, and Dendrite demands a password for cross-signing
	// keys: the bridge says so and encrypts unverified.
	if log, _ := os.ReadFile(filepath.Join(v.Dir, "bridge.log")); !bytes.Contains(log, []byte("Could not cross-sign the bot's device")) {
		t.Error("the bridge did not report that the homeserver refused its cross-signing keys")
	}
	mary := v.newEncryptedUser(t, "mary", "Mary")
	room, muc := mary.encryptedRoom(true, "secret")
	mary.command(room, "expose", "the bridge decrypts its messages")
	var state map[string]any
	err := mary.c.StateEvent(ctx(t), room, event.StateBridge, "xmpp://"+v.CompDomain+"/"+muc.Localpart(), &state)
	if err != nil {
		t.Fatal(err)
	}
	if state["net.mxpp.decrypts"] != true {
		t.Errorf("m.bridge of an encrypted room: %v; want it to say the bridge decrypts", state)
	}
	// The bot's answer arrived encrypted too.
	if !mary.seen(func(evt *event.Event) bool {
		return evt.RoomID == room && evt.Sender == botID() && evt.Mautrix.WasEncrypted
	}) {
		t.Error("the bot's messages in the encrypted room were not encrypted")
	}

	alice := v.newXMPPClient(t, "alice", "e2ee")
	alice.mustJoin(muc, "Alice")
	puppet := puppetOf("alice@" + v.XMPPDomain)
	mary.waitEvent("Alice's puppet", isMembership(room, puppet, event.MembershipJoin))

	exchange := func(step string, readers ...*mxUser) {
		t.Helper()
		mark := alice.mark()
		mary.say(room, "to XMPP "+step)
		alice.waitFrom(mark, "decrypted message "+step, isGroupchat(occ(muc, "Mary"), "to XMPP "+step))
		alice.groupchat(muc, "to Matrix "+step)
		for _, r := range readers {
			r.waitEvent("encrypted message "+step, wasEncrypted(room, puppet, "to Matrix "+step))
		}
	}
	exchange("1", mary)

	// A second device of Mary's, joining later, reads what XMPP sends next.
	logMark := v.logSize(t)
	laptop := v.secondDevice(t, mary)
	// The bridge's device learns of the new one from its sync: only then
	// does the room's next key go to it.
	change := v.waitLog(t, logMark, "the bridge seeing Mary's new device", "Device list changes in /sync", `"`+mary.id.String()+`"`)
	finished := []string{"Finished handling device list changes"}
	if _, trace, ok := strings.Cut(change, "trace_id="); ok && trace != "" {
		finished = append(finished, "trace_id="+strings.Fields(trace)[0])
	}
	v.waitLog(t, logMark, "the bridge handling Mary's new device", finished...)
	exchange("2", mary, laptop)

	// A restart keeps the bot's device and its keys.
	before := botDevice(t)
	v.StopBridge(false)
	if err = v.startBridge(); err != nil {
		t.Fatal(err)
	}
	if after := botDevice(t); after != before {
		t.Errorf("the bot's device changed across a restart: %s → %s", before, after)
	}
	exchange("3", mary, laptop)

	// Replies, edits and reactions cross as in any room.
	mark := alice.mark()
	question := mary.say(room, "sealed question?")
	st, _ := alice.waitFrom(mark, "the question", isGroupchat(occ(muc, "Mary"), "sealed question?"))
	alice.send(&xmpp.Message{ID: "sr1", Type: xmpp.TypeGroupchat, To: xmpp.A(muc), Body: "sealed answer",
		Reply: &xmpp.Reply{To: xmpp.A(occ(muc, "Mary")), ID: st.(*xmpp.Message).StanzaID.ID}})
	answer := mary.waitEvent("the encrypted reply", wasEncrypted(room, puppet, "sealed answer"))
	if got := answer.Content.AsMessage().RelatesTo.GetReplyTo(); got != question {
		t.Errorf("the reply points to %s; want %s", got, question)
	}
	alice.send(&xmpp.Message{Type: xmpp.TypeGroupchat, To: xmpp.A(muc), Body: "sealed answer, corrected", Replace: &xmpp.Replace{ID: "sr1"}})
	mary.waitEvent("the encrypted edit", func(evt *event.Event) bool {
		c := evt.Content.AsMessage()
		return evt.RoomID == room && evt.Sender == puppet && evt.Mautrix.WasEncrypted && c.RelatesTo.GetReplaceID() == answer.ID
	})
	if _, err = mary.c.SendReaction(ctx(t), room, answer.ID, "👍"); err != nil {
		t.Fatal(err)
	}
	alice.waitFrom(mark, "the reaction", func(v any) bool {
		m, ok := v.(*xmpp.Message)
		return ok && m.Reactions != nil && m.Reactions.ID == answer.ID.String() && len(m.Reactions.Reactions) == 1 && m.Reactions.Reactions[0] == "👍"
	})

	// A newcomer gets the room's history, decrypted by the bridge.
	bob := v.newXMPPClient(t, "bob", "e2ee")
	mark = bob.mark()
	bob.mustJoin(muc, "Bob")
	history := 0
	for _, st := range bob.since(mark) {
		if m, ok := st.(*xmpp.Message); ok && m.Delay != nil && strings.HasPrefix(m.Body, "to XMPP ") {
			history++
		}
	}
	if history != 3 {
		t.Errorf("history in the encrypted room: %d of Mary's 3 messages to XMPP", history)
	}

	// Files, both ways: the media repository only ever holds ciphertext.
	pic := testPNG(t, color.RGBA{1, 2, 3, 255})
	file := attachment.NewEncryptedFile()
	up, err := mary.c.UploadBytes(ctx(t), file.Encrypt(pic), "application/octet-stream")
	if err != nil {
		t.Fatal(err)
	}
	mark = alice.mark()
	_, err = mary.c.SendMessageEvent(ctx(t), room, event.EventMessage, &event.MessageEventContent{
		MsgType: event.MsgImage, Body: "sealed.png", FileName: "sealed.png",
		File: &event.EncryptedFileInfo{EncryptedFile: *file, URL: up.ContentURI.CUString()},
		Info: &event.FileInfo{MimeType: "image/png", Size: len(pic)},
	})
	if err != nil {
		t.Fatal(err)
	}
	st, _ = alice.waitFrom(mark, "the encrypted image's link", func(v any) bool {
		m, ok := v.(*xmpp.Message)
		return ok && m.From.Equal(occ(muc, "Mary")) && m.OOB != nil
	})
	fetched, err := http.Get(st.(*xmpp.Message).OOB.URL)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(fetched.Body)
	fetched.Body.Close()
	if fetched.StatusCode != http.StatusOK || !bytes.Equal(got, pic) || fetched.Header.Get("Content-Type") != "image/png" {
		t.Errorf("the encrypted image through the bridge: %s %q, %d bytes; want the decrypted PNG",
			fetched.Status, fetched.Header.Get("Content-Type"), len(got))
	}

	// A small file is uploaded whole, a large one as it downloads
	// (encrypted on the way): both decrypt to what was shared.
	for _, shared := range [][]byte{testPNG(t, color.RGBA{4, 5, 6, 255}), largePNG(t)} {
		name := fmt.Sprintf("shared-%d.png", len(shared))
		link := servePNG(t, shared, "/upload/x/"+name)
		alice.send(&xmpp.Message{Type: xmpp.TypeGroupchat, To: xmpp.A(muc), Body: link, OOB: &xmpp.OOB{URL: link}})
		evt := mary.waitEvent("the shared image, encrypted", func(evt *event.Event) bool {
			return evt.RoomID == room && evt.Sender == puppet && evt.Mautrix.WasEncrypted && evt.Type == event.EventMessage &&
				evt.Content.AsMessage().MsgType == event.MsgImage && evt.Content.AsMessage().Body == name
		})
		c := evt.Content.AsMessage()
		if c.File == nil || c.URL != "" {
			t.Fatalf("the shared image's content %+v: want an encrypted file, no plain URL", c)
		}
		mxc, err := c.File.URL.Parse()
		if err != nil {
			t.Fatal(err)
		}
		cipher, err := mary.c.DownloadBytes(ctx(t), mxc)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(cipher, shared) {
			t.Errorf("the media repository holds %s unencrypted", name)
		}
		if err = c.File.PrepareForDecryption(); err != nil {
			t.Fatal(err)
		}
		if plain, err := c.File.Decrypt(cipher); err != nil || !bytes.Equal(plain, shared) {
			t.Errorf("decrypting %s: %v", name, err)
		}
	}

	// Events the bridge cannot decrypt: a notice, and nothing to XMPP. Their
	// keys never come; the wait for them holds up neither another room
	// (its message reaches XMPP before the wait is over, when the notice
	// is sent) nor, for long, their own, and three of them make one notice.
	other, otherAlias := mary.createRoom("plain-beside", "Beside", "")
	mary.expose(other)
	otherMUC := mucJID(t, otherAlias)
	alice.mustJoin(otherMUC, "Alice")
	mark = alice.mark()
	var garbled []id.EventID
	for i := range 3 {
		fake := &event.EncryptedEventContent{Algorithm: id.AlgorithmMegolmV1, SenderKey: "dGhpcyBpcyBub3QgYSByZWFsIGtleSBhdCBhbGwgISEh",
			SessionID: id.SessionID(base64.RawStdEncoding.EncodeToString(bytes.Repeat([]byte{byte(i + 1)}, 32))), DeviceID: "FAKE",
			MegolmCiphertext: []byte(strings.Repeat("QUJD", 30))}
		resp, err := mary.c.SendMessageEvent(ctx(t), room, event.EventEncrypted, fake)
		if err != nil {
			t.Fatal(err)
		}
		garbled = append(garbled, resp.EventID)
	}
	isNotice := func(evt *event.Event) bool {
		msg := evt.Content.AsMessage()
		return evt.RoomID == room && evt.Sender == botID() && msg.MsgType == event.MsgNotice &&
			strings.Contains(msg.Body, "could not decrypt") && slices.Contains(garbled, msg.RelatesTo.GetReplyTo())
	}
	mary.say(other, "beside the wait")
	alice.waitFrom(mark, "the other room's message", isGroupchat(occ(otherMUC, "Mary"), "beside the wait"))
	if mary.seen(isNotice) {
		t.Error("the other room's message reached XMPP only after the wait for the missing keys was over")
	}
	mary.waitEvent("the undecryptable notice", isNotice)
	mary.say(room, "after the garbled ones")
	alice.waitFrom(mark, "the room's next message", isGroupchat(occ(muc, "Mary"), "after the garbled ones"))
	// Anything the bridge said before it bridged that message has reached
	// Mary once Alice's answer, sent after it, has.
	alice.groupchat(muc, "seen it")
	mary.waitEvent("Alice's answer", wasEncrypted(room, puppet, "seen it"))
	if n := mary.countSeen(isNotice); n != 1 {
		t.Errorf("%d notices for three undecryptable events; want one", n)
	}
	for _, st := range alice.since(mark) {
		if m, ok := st.(*xmpp.Message); ok && m.Type == xmpp.TypeGroupchat && m.From.Equal(occ(muc, "Mary")) && m.Body != "after the garbled ones" {
			t.Errorf("something reached XMPP from an undecryptable event: %q", m.Body)
		}
	}
}
