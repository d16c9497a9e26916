//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"mellium.im/xmpp/jid"
)

// mxUser is a Matrix user with a running sync loop.
type mxUser struct {
	t  *testing.T
	c  *mautrix.Client
	id id.UserID

	mu     sync.Mutex
	events []*event.Event
	wake   chan struct{}
}

var userSeq struct {
	sync.Mutex
	n int
}

// newMatrixUser registers a fresh user (the localpart gets a unique suffix)
// with a display name and starts syncing.
func (v *env) newMatrixUser(t *testing.T, localpart, displayname string) *mxUser {
	t.Helper()
	userSeq.Lock()
	userSeq.n++
	localpart = fmt.Sprintf("%s%d", localpart, userSeq.n)
	userSeq.Unlock()
	return v.matrixUser(t, localpart, displayname)
}

// matrixUser registers the user with exactly this localpart, or logs in if
// it exists, and starts syncing.
func (v *env) matrixUser(t *testing.T, localpart, displayname string) *mxUser {
	t.Helper()
	return startSync(t, v.loginMatrix(t, localpart, displayname))
}

// loginMatrix registers the user with exactly this localpart, or logs in
// if it exists, and returns its client, not syncing yet.
func (v *env) loginMatrix(t *testing.T, localpart, displayname string) *mautrix.Client {
	t.Helper()
	c, err := mautrix.NewClient(v.HSURL, "", "")
	if err != nil {
		t.Fatal(err)
	}
	password := "password_" + localpart
	resp, err := c.RegisterDummy(ctx(t), &mautrix.ReqRegister[any]{Username: localpart, Password: password})
	if errors.Is(err, mautrix.MUserInUse) {
		login, lerr := c.Login(ctx(t), &mautrix.ReqLogin{Type: mautrix.AuthTypePassword,
			Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: localpart}, Password: password})
		if lerr != nil {
			t.Fatalf("logging in as %s: %v", localpart, lerr)
		}
		resp, err = &mautrix.RespRegister{UserID: login.UserID, AccessToken: login.AccessToken, DeviceID: login.DeviceID}, nil
	}
	if err != nil {
		t.Fatalf("registering %s: %v", localpart, err)
	}
	c.SetCredentials(resp.UserID, resp.AccessToken)
	c.DeviceID = resp.DeviceID
	if displayname != "" {
		if err = c.SetDisplayName(ctx(t), displayname); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// startSync records what a client receives, from a sync loop that runs
// until the test ends.
func startSync(t *testing.T, c *mautrix.Client) *mxUser {
	u := &mxUser{t: t, c: c, id: c.UserID, wake: make(chan struct{}, 1)}
	syncer := c.Syncer.(*mautrix.DefaultSyncer)
	syncer.OnEvent(func(_ context.Context, evt *event.Event) {
		u.mu.Lock()
		u.events = append(u.events, evt)
		u.mu.Unlock()
		select {
		case u.wake <- struct{}{}:
		default:
		}
	})
	syncCtx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for syncCtx.Err() == nil {
			if err := c.SyncWithContext(syncCtx); err != nil && !errors.Is(err, context.Canceled) {
				time.Sleep(200 * time.Millisecond)
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return u
}

// createRoom makes a public room with an alias (localpart made unique) and
// returns its ID and alias.
func (u *mxUser) createRoom(aliasLocal, name, topic string) (id.RoomID, id.RoomAlias) {
	u.t.Helper()
	userSeq.Lock()
	userSeq.n++
	aliasLocal = fmt.Sprintf("%s%d", aliasLocal, userSeq.n)
	userSeq.Unlock()
	resp, err := u.c.CreateRoom(ctx(u.t), &mautrix.ReqCreateRoom{
		Visibility: "public", Preset: "public_chat", RoomAliasName: aliasLocal, Name: name, Topic: topic,
	})
	if err != nil {
		u.t.Fatalf("creating room: %v", err)
	}
	return resp.RoomID, id.RoomAlias("#" + aliasLocal + ":" + e.HSDomain)
}

// newRoom registers a Matrix user with a display name, who creates a public
// room; it returns the user, the room and the room's MUC JID.
func (v *env) newRoom(t *testing.T, displayname, aliasLocal, name, topic string) (*mxUser, id.RoomID, jid.JID) {
	t.Helper()
	u := v.newMatrixUser(t, "mary", displayname)
	room, alias := u.createRoom(aliasLocal, name, topic)
	u.expose(room)
	return u, room, mucJID(t, alias)
}

// botID is the bridge bot of the main environment.
func botID() id.UserID { return id.UserID("@xmppbot:" + e.HSDomain) }

// bot is the bridge bot of the user's homeserver.
func (u *mxUser) bot() id.UserID { return id.UserID("@xmppbot:" + u.id.Homeserver()) }

// expose opens a room to XMPP the way a room admin does: invite the bot,
// which joins, and run its expose command.
func (u *mxUser) expose(room id.RoomID) {
	u.t.Helper()
	if !u.seen(isMembership(room, u.bot(), event.MembershipJoin)) {
		if _, err := u.c.InviteUser(ctx(u.t), room, &mautrix.ReqInviteUser{UserID: u.bot()}); err != nil {
			u.t.Fatalf("inviting the bot: %v", err)
		}
		u.waitEvent("the bot joining", isMembership(room, u.bot(), event.MembershipJoin))
	}
	u.command(room, "expose", "now reachable")
}

// command runs a bot command in a room and waits for the bot's answer,
// which must contain want; it returns the answer.
func (u *mxUser) command(room id.RoomID, line, want string) string {
	u.t.Helper()
	return u.ask(room, "!xmpp "+line, want)
}

// ask sends a line to the bot, as is, and waits for the bot's answer,
// which must contain want; it returns the answer.
func (u *mxUser) ask(room id.RoomID, line, want string) string {
	u.t.Helper()
	cmd := u.say(room, line)
	evt := u.waitEvent("answer to "+line, func(evt *event.Event) bool {
		return evt.RoomID == room && evt.Sender == u.bot() && evt.Type == event.EventMessage &&
			evt.Content.AsMessage().RelatesTo.GetReplyTo() == cmd
	})
	answer := evt.Content.AsMessage().Body
	if !strings.Contains(answer, want) {
		u.t.Fatalf("answer to %q: %q; want it to contain %q", line, answer, want)
	}
	return answer
}

func (u *mxUser) join(room id.RoomID) {
	u.t.Helper()
	if _, err := u.c.JoinRoomByID(ctx(u.t), room); err != nil {
		u.t.Fatalf("%s joining %s: %v", u.id, room, err)
	}
}

func (u *mxUser) leave(room id.RoomID) {
	u.t.Helper()
	if _, err := u.c.LeaveRoom(ctx(u.t), room); err != nil {
		u.t.Fatalf("%s leaving %s: %v", u.id, room, err)
	}
}

func (u *mxUser) say(room id.RoomID, text string) id.EventID {
	u.t.Helper()
	resp, err := u.c.SendText(ctx(u.t), room, text)
	if err != nil {
		u.t.Fatalf("%s sending to %s: %v", u.id, room, err)
	}
	return resp.EventID
}

// waitEvent waits for an event that matches, seen since the user started
// syncing, and returns it.
func (u *mxUser) waitEvent(what string, match func(*event.Event) bool) *event.Event {
	u.t.Helper()
	// Generous: after fault tests the homeserver may still be backing off
	// its pushes to the bridge (Dendrite waits up to 64 s).
	deadline := time.After(45 * time.Second)
	seen := 0
	for {
		u.mu.Lock()
		for ; seen < len(u.events); seen++ {
			if match(u.events[seen]) {
				evt := u.events[seen]
				u.mu.Unlock()
				return evt
			}
		}
		u.mu.Unlock()
		select {
		case <-u.wake:
		case <-deadline:
			u.t.Fatalf("%s: timed out waiting for %s", u.id, what)
			return nil
		}
	}
}

// seen reports whether an event that matches has arrived.
func (u *mxUser) seen(match func(*event.Event) bool) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, evt := range u.events {
		if match(evt) {
			return true
		}
	}
	return false
}

// countSeen returns how many of the events that arrived match.
func (u *mxUser) countSeen(match func(*event.Event) bool) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	n := 0
	for _, evt := range u.events {
		if match(evt) {
			n++
		}
	}
	return n
}

// messagesFrom returns the bodies of the text messages sender sent to room,
// in the order they were received.
func (u *mxUser) messagesFrom(room id.RoomID, sender id.UserID) []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []string
	for _, evt := range u.events {
		if evt.RoomID == room && evt.Sender == sender && evt.Type == event.EventMessage {
			out = append(out, evt.Content.AsMessage().Body)
		}
	}
	return out
}

// timelineFrom returns the bodies of the text messages sender sent to
// room, read from the room's timeline (not from sync), oldest first.
func (u *mxUser) timelineFrom(room id.RoomID, sender id.UserID) []string {
	u.t.Helper()
	resp, err := u.c.Messages(ctx(u.t), room, "", "", mautrix.DirectionBackward, nil, 1000)
	if err != nil {
		u.t.Fatalf("reading the timeline of %s: %v", room, err)
	}
	var out []string
	for i := len(resp.Chunk) - 1; i >= 0; i-- {
		evt := resp.Chunk[i]
		if evt.Sender == sender && evt.Type == event.EventMessage {
			_ = evt.Content.ParseRaw(evt.Type)
			out = append(out, evt.Content.AsMessage().Body)
		}
	}
	return out
}

func isMessage(room id.RoomID, sender id.UserID, body string) func(*event.Event) bool {
	return func(evt *event.Event) bool {
		return evt.RoomID == room && evt.Sender == sender && evt.Type == event.EventMessage &&
			evt.Content.AsMessage().Body == body
	}
}

func isMembership(room id.RoomID, target id.UserID, m event.Membership) func(*event.Event) bool {
	return func(evt *event.Event) bool {
		return evt.RoomID == room && evt.Type == event.StateMember && evt.StateKey != nil &&
			*evt.StateKey == target.String() && evt.Content.AsMember().Membership == m
	}
}

// puppetOf is the Matrix ID of an XMPP user's puppet.
func puppetOf(bare string) id.UserID {
	return id.NewUserID("_xmpp_"+id.EncodeUserLocalpart(bare), e.HSDomain)
}
