//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"mellium.im/xmpp/uri"

	"github.com/mxpp/mxpp/testenv"
	"github.com/mxpp/mxpp/xmpp"
)

// TestE2ERunLocal runs the README's first command, scripts/run-local, as a
// new user would, on ports of its own: the room it prints is bridged at
// once, an XMPP client joins it by the printed link, one message crosses
// each way, and a stop signal ends everything cleanly.
func TestE2ERunLocal(t *testing.T) {
	v := need(t)
	ports := map[string]int{}
	for _, k := range []string{"HS_PORT", "AS_PORT", "XMPP_C2S_PORT", "XMPP_COMPONENT_PORT", "XMPP_HTTP_PORT"} {
		ports[k] = testenv.FreePort()
	}
	dir := t.TempDir()
	cmd := exec.Command("bash", filepath.Join(v.Root, "scripts", "run-local"))
	cmd.Dir = v.Root
	cmd.Env = append(os.Environ(), "MXPP_LOCAL_DIR="+dir)
	for k, p := range ports {
		cmd.Env = append(cmd.Env, fmt.Sprintf("%s=%d", k, p))
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err = cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	var printed strings.Builder
	var mu sync.Mutex
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			mu.Lock()
			printed.WriteString(sc.Text() + "\n")
			mu.Unlock()
			if strings.Contains(sc.Text(), "Press Ctrl-C to stop") {
				close(ready)
			}
		}
		exited <- cmd.Wait()
	}()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
			<-exited
		}
		// Whatever the script left behind, by its pid files.
		_ = exec.Command(filepath.Join(v.Root, "testenv", "stop.sh"), filepath.Join(dir, "hs"), filepath.Join(dir, "xmpp")).Run()
	})
	select {
	case <-ready:
	case err := <-exited:
		stopped = true
		t.Fatalf("run-local exited before it was ready: %v\n%s", err, stderr.String())
	case <-time.After(4 * time.Minute):
		t.Fatalf("run-local not ready after 4 minutes:\n%s", stderr.String())
	}
	mu.Lock()
	out := printed.String()
	mu.Unlock()
	if strings.Contains(stderr.String()+out, "private key") {
		t.Errorf("stray key generation output:\n%s", stderr.String())
	}

	// The XMPP room, by the link the script printed, as a client parses it.
	m := regexp.MustCompile(`as a link: (xmpp:\S+)\)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no room link in the output:\n%s", out)
	}
	link, err := uri.Parse(m[1])
	if err != nil || link.Action != "join" {
		t.Fatalf("printed link %s: %+v, %v", m[1], link, err)
	}
	room := link.ToAddr
	if !strings.Contains(out, "room        "+room.String()) {
		t.Errorf("the printed room and its link differ: %s\n%s", room, out)
	}
	local := &env{Stack: &testenv.Stack{C2SAddr: net.JoinHostPort("127.0.0.1", fmt.Sprint(ports["XMPP_C2S_PORT"]))}}
	alice, err := local.tryXMPPClient(t, "alice", "xmpp.test", "runlocal")
	if err != nil {
		t.Fatal(err)
	}
	alice.mustJoin(room, "Alice")

	// The demo account the script printed, with a real Matrix client.
	hs := fmt.Sprintf("http://127.0.0.1:%d", ports["HS_PORT"])
	if !strings.Contains(out, hs) || !strings.Contains(out, "password demopassword") {
		t.Fatalf("the output does not give the demo login:\n%s", out)
	}
	c, err := mautrix.NewClient(hs, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err = c.Login(ctx(t), &mautrix.ReqLogin{Type: mautrix.AuthTypePassword, StoreCredentials: true,
		Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "demo"}, Password: "demopassword"}); err != nil {
		t.Fatal(err)
	}
	demo := startSync(t, c)
	lobby, err := c.ResolveAlias(ctx(t), "#lobby:hs.test")
	if err != nil {
		t.Fatal(err)
	}
	mark := alice.mark()
	demo.say(lobby.RoomID, "hello from the demo account")
	alice.waitFrom(mark, "the demo account's message", func(v any) bool {
		msg, ok := v.(*xmpp.Message)
		return ok && msg.Type == xmpp.TypeGroupchat && msg.From.Bare().Equal(room) && msg.Body == "hello from the demo account"
	})
	alice.groupchat(room, "hello from alice")
	demo.waitEvent("alice's message", isMessage(lobby.RoomID, id.UserID("@_xmpp_alice=40xmpp.test:hs.test"), "hello from alice"))
	// The room was announced once, with the link, and marked as bridged.
	var notices []string
	msgs, err := c.Messages(ctx(t), lobby.RoomID, "", "", mautrix.DirectionBackward, nil, 50)
	if err != nil {
		t.Fatal(err)
	}
	for _, evt := range msgs.Chunk {
		_ = evt.Content.ParseRaw(evt.Type)
		if evt.Type == event.EventMessage && evt.Sender == "@xmppbot:hs.test" && strings.Contains(evt.Content.AsMessage().Body, "reachable from XMPP") {
			notices = append(notices, evt.Content.AsMessage().Body)
		}
	}
	if len(notices) != 1 || !strings.Contains(notices[0], m[1]) || strings.Contains(notices[0], "could not mark") {
		t.Errorf("announcements of the room: %q; want one, with %s, and m.bridge set", notices, m[1])
	}

	// Stopped as a user does, by a signal to the script alone (SIGTERM:
	// Ctrl-C's SIGINT takes the same way out, but a shell started with
	// SIGINT ignored, as under some CI runners, cannot trap it): the
	// script stops everything it started, with exit status 0.
	alice.close()
	stopped = true
	if err = cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err = <-exited:
		if err != nil {
			t.Errorf("run-local after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(time.Minute):
		t.Fatalf("run-local still running a minute after SIGTERM")
	}
	for k, p := range ports {
		if conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", p), time.Second); err == nil {
			conn.Close()
			t.Errorf("%s %d still answers after the stop", k, p)
		}
	}
}

// lockedBuffer is a buffer a process writes to while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
