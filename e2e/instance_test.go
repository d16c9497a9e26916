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
	"syscall"
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
	port := testenv.FreePort()
	exited, secondLog, _ := v.startSecond(t, "second",
		[2]string{`(?m)^  address: http://127\.0\.0\.1:\d+\n  hostname`, fmt.Sprintf("  address: http://127.0.0.1:%d\n  hostname", port)},
		[2]string{`(?m)^  port: \d+$`, fmt.Sprintf("  port: %d", port)},
		[2]string{`(?m)^  server: .*$`, fmt.Sprintf("  server: 127.0.0.1:%d", v.CompPort)},
		[2]string{`(?ms)^encryption:\n.*?^database:`, "encryption:\n  allow: false\ndatabase:"},
		[2]string{`(?m)^  uri: file:.*$`, "  uri: file:" + filepath.Join(v.Dir, "second.db")},
		[2]string{`(?m)^  audit_file: .*$`, "  audit_file: " + filepath.Join(v.Dir, "second-audit.log")},
	)
	var err error

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

// startSecond starts another bridge process with the main config edited
// by edits (pattern → replacement); it is killed when the test ends. It
// returns the process's exit, its log, and the process.
func (v *env) startSecond(t *testing.T, name string, edits ...[2]string) (exited chan error, log func() string, cmd *exec.Cmd) {
	t.Helper()
	cfg, err := os.ReadFile(v.Config)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range edits {
		re := regexp.MustCompile(e[0])
		if !re.Match(cfg) {
			t.Fatalf("nothing in the config matches %s", e[0])
		}
		cfg = re.ReplaceAll(cfg, []byte(e[1]))
	}
	cfgPath, logPath := filepath.Join(v.Dir, name+".yaml"), filepath.Join(v.Dir, name+".log")
	if err = os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd = exec.Command(v.Bin, "-c", cfgPath)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err = cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited = make(chan error, 1)
	go func() { err := cmd.Wait(); logFile.Close(); exited <- err; close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	return exited, func() string { b, _ := os.ReadFile(logPath); return string(b) }, cmd
}

// TestE2EOneProcessPerSQLite: a second bridge process on the same SQLite
// file refuses to start, saying why, and the first bridges on.
func TestE2EOneProcessPerSQLite(t *testing.T) {
	v := need(t)
	if v.postgres() {
		t.Skip("on PostgreSQL a second process is a standby (TestE2EStandby)")
	}
	exited, log, _ := v.startSecond(t, "same-file")
	select {
	case err := <-exited:
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(log(), "another mxpp process is using this database") {
			t.Fatalf("the second process ended with %v; want exit status 1 saying another process uses the database; its log:\n%s", err, log())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the second process on the same SQLite file still runs; its log:\n%s", log())
	}
	if r := getReady(v.ASPort); !r.OK {
		t.Errorf("the first process /ready = %+v after the second was refused", r)
	}
}

// TestE2EStandby: a second process with the same config on PostgreSQL
// waits as a standby, connected to nothing (/health 200, /ready 503);
// when the active process is killed it takes over within seconds, and the
// numbered stream both ways shows nothing lost or doubled through the
// failover; stopped gracefully, it hands back to a waiting standby at once.
func TestE2EStandby(t *testing.T) {
	v := need(t)
	if !v.postgres() {
		t.Skip("a standby needs PostgreSQL; on SQLite a second process is refused (TestE2EOneProcessPerSQLite)")
	}
	metrics := testenv.FreePort()
	exited, log, second := v.startSecond(t, "standby", [2]string{`(?m)^logging:$`, fmt.Sprintf("metrics:\n  listen: 127.0.0.1:%d\nlogging:", metrics)})
	get := func(path string) int {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d%s", metrics, path))
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	waitFor(t, "the second process waiting as a standby", func() bool {
		return strings.Contains(log(), "waiting as its standby") && get("/health") == http.StatusOK
	})
	if code := get("/ready"); code != http.StatusServiceUnavailable {
		t.Errorf("the standby's /ready answered %d; want 503", code)
	}
	if strings.Contains(log(), "XMPP component connected") {
		t.Error("the standby connected to the XMPP server")
	}

	var killed time.Time
	faultStream(t, "standby", true, func() {
		killed = time.Now()
		v.StopBridge(true)
	}, func() {
		if err := v.WaitReady(30 * time.Second); err != nil {
			t.Fatalf("the standby did not take over: %v; its log:\n%s", err, log())
		}
		t.Logf("the standby took over %s after the active process was killed", time.Since(killed).Round(time.Millisecond))
	})
	if !strings.Contains(log(), "taking over") {
		t.Error("the standby's log does not say it took over")
	}

	// The first process comes back as the standby; the second stops
	// gracefully and hands over at once.
	before := strings.Count(readFile(t, v.LogPath()), "waiting as its standby")
	if err := v.StartBridgeProcess(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the restarted first process waiting as a standby", func() bool {
		return strings.Count(readFile(t, v.LogPath()), "waiting as its standby") > before
	})
	stopped := time.Now()
	_ = second.Process.Signal(syscall.SIGTERM)
	if err := <-exited; err != nil {
		t.Errorf("the second process stopped with %v", err)
	}
	if err := v.WaitReady(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("after a graceful stop the standby was ready in %s", time.Since(stopped).Round(time.Millisecond))
	mary, room, muc := v.newRoom(t, "Mary", "handback", "Handback", "")
	alice := v.newXMPPClient(t, "alice", "handback")
	alice.mustJoin(muc, "Alice")
	mark := alice.mark()
	mary.say(room, "after the handback")
	alice.waitFrom(mark, "a message after the handback", isGroupchat(occ(muc, "Mary"), "after the handback"))
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
