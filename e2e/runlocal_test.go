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
	"mellium.im/xmpp/jid"
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
	vars := []string{"MXPP_LOCAL_DIR=" + dir}
	for k, p := range ports {
		vars = append(vars, fmt.Sprintf("%s=%d", k, p))
	}
	sc := startScript(t, v, "run-local", vars, "Press Ctrl-C to stop", filepath.Join(dir, "hs"), filepath.Join(dir, "xmpp"))
	out, stderr := sc.printed(), sc.stderr
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
	demo := loginDemo(t, out, fmt.Sprint(ports["HS_PORT"]))
	c := demo.c
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
	sc.stop(t)
	for k, p := range ports {
		if conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", p), time.Second); err == nil {
			conn.Close()
			t.Errorf("%s %d still answers after the stop", k, p)
		}
	}
}

// loginDemo logs in, with a real Matrix client, as the demo account a
// script printed, on the homeserver at a loopback port.
func loginDemo(t *testing.T, printed, port string) *mxUser {
	t.Helper()
	hs := "http://127.0.0.1:" + port
	if !strings.Contains(printed, "homeserver  "+hs) || !strings.Contains(printed, "password demopassword") {
		t.Fatalf("the output does not give the demo login on %s:\n%s", hs, printed)
	}
	c, err := mautrix.NewClient(hs, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err = c.Login(ctx(t), &mautrix.ReqLogin{Type: mautrix.AuthTypePassword, StoreCredentials: true,
		Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "demo"}, Password: "demopassword"}); err != nil {
		t.Fatal(err)
	}
	return startSync(t, c)
}

// script is one of the scripts/ a user runs, running.
type script struct {
	name   string
	cmd    *exec.Cmd
	stderr *lockedBuffer
	out    *lockedBuffer
	exited chan error
	done   bool
}

// startScript runs scripts/name with env added, as a new user would, and
// waits until its output has the line ready. Whatever it leaves behind is
// stopped at the end of the test by testenv/stop.sh on dirs.
func startScript(t *testing.T, v *env, name string, env []string, ready string, dirs ...string) *script {
	t.Helper()
	s := &script{name: name, stderr: &lockedBuffer{}, out: &lockedBuffer{}, exited: make(chan error, 1)}
	s.cmd = exec.Command("bash", filepath.Join(v.Root, "scripts", name))
	s.cmd.Dir = v.Root
	s.cmd.Env = append(os.Environ(), env...)
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	s.cmd.Stderr = s.stderr
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err = s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	readyc := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		seen := false
		for sc.Scan() {
			_, _ = s.out.Write([]byte(sc.Text() + "\n"))
			if !seen && strings.Contains(sc.Text(), ready) {
				seen = true
				close(readyc)
			}
		}
		s.exited <- s.cmd.Wait()
	}()
	t.Cleanup(func() {
		if !s.done {
			_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
			<-s.exited
		}
		// Whatever the script left behind, by its pid files.
		_ = exec.Command(filepath.Join(v.Root, "testenv", "stop.sh"), dirs...).Run()
	})
	select {
	case <-readyc:
	case err := <-s.exited:
		s.done = true
		t.Fatalf("%s exited before it was ready: %v\n%s", name, err, s.stderr.String())
	case <-time.After(4 * time.Minute):
		t.Fatalf("%s not ready after 4 minutes:\n%s", name, s.stderr.String())
	}
	return s
}

// printed is what the script printed on its standard output so far.
func (s *script) printed() string { return s.out.String() }

// stop stops the script as a user does, by a signal to the script alone
// (SIGTERM: Ctrl-C's SIGINT takes the same way out, but a shell started
// with SIGINT ignored, as under some CI runners, cannot trap it): it stops
// everything it started, with exit status 0.
func (s *script) stop(t *testing.T) {
	t.Helper()
	s.done = true
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-s.exited:
		if err != nil {
			t.Errorf("%s after SIGTERM: %v\n%s", s.name, err, s.stderr.String())
		}
	case <-time.After(time.Minute):
		t.Fatalf("%s still running a minute after SIGTERM", s.name)
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

// TestE2EIslandsRunScript runs scripts/run-islands as its users would, on
// ports of its own: two islands come up, island A's demo account joins
// island B's lobby by the alias the script printed, its message arrives on
// island B from its puppet there, and a stop signal ends both islands.
func TestE2EIslandsRunScript(t *testing.T) {
	v := need(t)
	if v.peerS2S == 0 {
		t.Skipf("the islands run Prosody (E2E_XMPP=%s)", v.XMPPServerName())
	}
	var ports []string
	for range 12 {
		ports = append(ports, fmt.Sprint(testenv.FreePort()))
	}
	dir := t.TempDir()
	var dirs []string
	for _, i := range []string{"a", "b"} {
		dirs = append(dirs, filepath.Join(dir, "island-"+i, "hs"), filepath.Join(dir, "island-"+i, "xmpp"))
	}
	sc := startScript(t, v, "run-islands", []string{"MXPP_LOCAL_DIR=" + dir, "ISLAND_PORTS=" + strings.Join(ports, " ")},
		"Press Ctrl-C to stop both", dirs...)
	out := sc.printed()

	demoA, demoB := loginDemo(t, out, ports[0]), loginDemo(t, out, ports[6])
	m := regexp.MustCompile(`or join\s+(#_xmpp_\S+:hs-a\.test)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no alias of island B's lobby on island A in the output:\n%s", out)
	}
	joined, err := demoA.c.JoinRoom(ctx(t), m[1], nil)
	if err != nil {
		t.Fatalf("joining %s on island A: %v", m[1], err)
	}
	lobbyB, err := demoB.c.ResolveAlias(ctx(t), "#lobby:hs-b.test")
	if err != nil {
		t.Fatal(err)
	}
	demoOnB := id.NewUserID("_xmpp_"+id.EncodeUserLocalpart("demo#hs-a.test@matrix.xmpp-a.test"), "hs-b.test")
	demoB.waitEvent("island A's demo joining the lobby", isMembership(lobbyB.RoomID, demoOnB, event.MembershipJoin))
	demoA.say(joined.RoomID, "hello from island A")
	demoB.waitEvent("island A's message", isMessage(lobbyB.RoomID, demoOnB, "hello from island A"))
	// The direct-chat address printed is the puppet of island B's demo.
	if want := id.NewUserID("_xmpp_"+id.EncodeUserLocalpart("demo#hs-b.test@matrix.xmpp-b.test"), "hs-a.test"); !strings.Contains(out, want.String()) {
		t.Errorf("the output does not name %s:\n%s", want, out)
	}

	// An XMPP user of island A in island B's lobby, as the output says.
	lobbyJID := jid.MustParse("#lobby#hs-b.test@matrix.xmpp-b.test")
	if !strings.Contains(out, "alice@xmpp-a.test can join "+lobbyJID.String()) {
		t.Errorf("the output does not say how XMPP users reach the other island:\n%s", out)
	}
	local := &env{Stack: &testenv.Stack{C2SAddr: net.JoinHostPort("127.0.0.1", ports[2])}}
	alice, err := local.tryXMPPClient(t, "alice", "xmpp-a.test", "islands")
	if err != nil {
		t.Fatal(err)
	}
	mark := alice.mark()
	alice.mustJoin(lobbyJID, "Alice")
	demoB.say(lobbyB.RoomID, "hello XMPP of island A")
	alice.waitFrom(mark, "island B's message", isGroupchat(occ(lobbyJID, "demo"), "hello XMPP of island A"))
	alice.close()

	sc.stop(t)
	for _, p := range ports {
		if conn, err := net.DialTimeout("tcp", "127.0.0.1:"+p, time.Second); err == nil {
			conn.Close()
			t.Errorf("port %s still answers after the stop", p)
		}
	}
}
