//go:build e2e

package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mxpp/mxpp/testenv"
)

// readiness is what a bridge's /ready answers.
type readiness struct {
	Status int
	OK     bool   `json:"ok"`
	Shared string `json:"xmpp_shared"`
	Error  string `json:"xmpp_error"`
}

func getReady(port int) readiness {
	var r readiness
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/ready", port))
	if err != nil {
		return r
	}
	defer resp.Body.Close()
	r.Status = resp.StatusCode
	_ = json.NewDecoder(resp.Body).Decode(&r)
	return r
}

// TestE2ESecondInstance: a second bridge started with the same component
// domain and secret never silently takes part of the first one's traffic.
// Prosody refuses its connection (conflict), which it reports in its log
// and /ready while it retries; ejabberd accepts it and splits the domain's
// stanzas between both, which the newcomer notices from its probes and
// refuses to run (exit status 1), while the first instance reports the
// other one in its log and /ready until it is gone. Either way the first
// instance bridges on.
func TestE2ESecondInstance(t *testing.T) {
	v := need(t)
	if v.postgres() {
		t.Skip("the second instance gets a SQLite file of its own; on PostgreSQL both would share the database")
	}
	mary, room, muc := v.newRoom(t, "Mary", "onlyone", "Only one", "")
	alice := v.newXMPPClient(t, "alice", "one")
	alice.mustJoin(muc, "Alice")

	// The second instance: the same config but its own listener and
	// database, no encryption (it would add a device to the bot), and
	// straight to the XMPP server's component port.
	cfg, err := os.ReadFile(v.Config)
	if err != nil {
		t.Fatal(err)
	}
	port := testenv.FreePort()
	for _, edit := range []struct{ pattern, with string }{
		{`(?m)^  address: http://127\.0\.0\.1:\d+\n  hostname`, fmt.Sprintf("  address: http://127.0.0.1:%d\n  hostname", port)},
		{`(?m)^  port: \d+$`, fmt.Sprintf("  port: %d", port)},
		{`(?m)^  server: .*$`, fmt.Sprintf("  server: 127.0.0.1:%d", v.CompPort)},
		{`(?ms)^encryption:\n.*?^database:`, "encryption:\n  allow: false\ndatabase:"},
		{`(?m)^  uri: file:.*$`, "  uri: file:" + filepath.Join(v.Dir, "second.db")},
		{`(?m)^  audit_file: .*$`, "  audit_file: " + filepath.Join(v.Dir, "second-audit.log")},
	} {
		re := regexp.MustCompile(edit.pattern)
		if !re.Match(cfg) {
			t.Fatalf("nothing in the config matches %s", edit.pattern)
		}
		cfg = re.ReplaceAll(cfg, []byte(edit.with))
	}
	cfgPath, logPath := filepath.Join(v.Dir, "second.yaml"), filepath.Join(v.Dir, "second.log")
	if err = os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	second := exec.Command(v.Bin, "-c", cfgPath)
	second.Stdout, second.Stderr = logFile, logFile
	if err = second.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- second.Wait() }()
	defer func() {
		_ = second.Process.Kill()
		<-exited
	}()
	secondLog := func() string { b, _ := os.ReadFile(logPath); return string(b) }

	switch v.XMPPServerName() {
	case "ejabberd":
		// The first instance sees the newcomer's probes and says so.
		waitFor(t, "the first instance's /ready naming the other connection", func() bool {
			r := getReady(v.ASPort)
			return r.Status == http.StatusServiceUnavailable && strings.Contains(r.Shared, "another bridge instance")
		})
		select {
		case err = <-exited:
		case <-time.After(30 * time.Second):
			t.Fatalf("the second instance did not refuse to run; its log:\n%s", secondLog())
		}
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(secondLog(), "Refusing to run as a second instance") {
			t.Fatalf("second instance ended with %v; want exit status 1 saying it refuses to run; its log:\n%s", err, secondLog())
		}
		exited <- err // for the deferred kill
		log, _ := os.ReadFile(v.LogPath())
		if !strings.Contains(string(log), "Another bridge instance connected to the XMPP server") {
			t.Error("the first instance's log does not mention the other instance")
		}
		waitFor(t, "the first instance ready again once the other is gone", func() bool { return getReady(v.ASPort).OK })
	default:
		waitFor(t, "the second instance's /ready reporting the refused connection", func() bool {
			r := getReady(port)
			return r.Status == http.StatusServiceUnavailable && strings.Contains(r.Error, "conflict")
		})
		if !strings.Contains(secondLog(), "another connection for its domain is open") {
			t.Errorf("the second instance's log does not say why it cannot connect:\n%s", secondLog())
		}
		if r := getReady(v.ASPort); !r.OK || r.Shared != "" {
			t.Errorf("first instance /ready = %+v; want ok and alone", r)
		}
	}

	// The first instance bridges on, both ways.
	mark := alice.mark()
	alice.groupchat(muc, "still one bridge")
	mary.waitEvent("alice's message", isMessage(room, puppetOf("alice@"+v.XMPPDomain), "still one bridge"))
	mary.say(room, "still here")
	alice.waitFrom(mark, "mary's message", isGroupchat(occ(muc, "Mary"), "still here"))
}
