//go:build e2e

// Package e2e runs the bridge against a real Dendrite homeserver and a real
// XMPP server on loopback (Prosody, or ejabberd with E2E_XMPP=ejabberd),
// with real clients on both sides: mautrix as a Matrix client and mellium
// as an XMPP client.
//
// The servers are started once for the package by the scripts in testenv/,
// which install them when missing. Locally a server that cannot be started
// skips the tests with the reason; under CI=true it fails them.
//
// Knobs: E2E_KEEP=1 keeps the temporary directory with every log;
// E2E_XMPP=ejabberd runs the suite against ejabberd instead of Prosody.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"
	"mellium.im/xmpp/jid"

	"github.com/mxpp/mxpp/database/dbtest"
	"github.com/mxpp/mxpp/testenv"
	"github.com/mxpp/mxpp/xmpp"
)

// env is the shared test environment: the servers and the bridge, and the
// TCP proxy the bridge reaches the XMPP server's component port through.
type env struct {
	*testenv.Stack
	exposure  string    // bridge.exposure; the default (opt-in) when empty
	compProxy *tcpProxy // between the bridge and the XMPP server's component port
	// peerS2S is the s2s port reserved for the second island's XMPP
	// server (islands_test.go); 0 when the main one has no s2s.
	peerS2S int
	// dbType and dbURI are the bridge's database: SQLite in Dir, or with
	// E2E_DATABASE=postgres a fresh database on the PostgreSQL server that
	// MXPP_TEST_POSTGRES names (dropDB drops it).
	dbType, dbURI string
	dropDB        func()
	// beforeServers, if set, runs once the bridge is configured and
	// before the servers start (shards_test.go adds a second bridge).
	beforeServers func() error
}

// postgres reports whether the bridge runs on PostgreSQL: the tests that
// read the SQLite file itself do not run then.
func (v *env) postgres() bool { return v.dbType == "postgres" }

// setupDatabase picks the bridge's database (see env.dbType).
func (v *env) setupDatabase() error {
	v.dbType, v.dbURI = "sqlite", "file:"+filepath.Join(v.Dir, "mxpp.db")
	if os.Getenv("E2E_DATABASE") != "postgres" {
		return nil
	}
	admin := os.Getenv(dbtest.EnvPostgres)
	if admin == "" {
		return fmt.Errorf("E2E_DATABASE=postgres needs %s (an admin URI, as testenv/start-postgres.sh prints)", dbtest.EnvPostgres)
	}
	uri, drop, err := dbtest.NewPostgres(admin)
	if err != nil {
		return err
	}
	v.dbType, v.dbURI, v.dropDB = "postgres", uri, drop
	return nil
}

var e *env

// setupErr is why the environment could not be set up; every test fails
// or skips with it.
var setupErr error

func TestMain(m *testing.M) {
	code := func() int {
		var err error
		e, err = newEnv()
		if err != nil {
			setupErr = err
			fmt.Fprintln(os.Stderr, "e2e: setup failed:", err)
		}
		code := m.Run()
		if b := islandB.v; b != nil {
			if log, err := os.ReadFile(b.LogPath()); err == nil && bytes.Contains(log, []byte("WARNING: DATA RACE")) {
				fmt.Fprintln(os.Stderr, "e2e: island B's bridge had a data race; see", b.LogPath())
				code = 1
			}
			b.close(code != 0)
		}
		if e != nil {
			// The bridge runs with the race detector: a race it found fails
			// the run, whichever test was running.
			if log, err := os.ReadFile(e.LogPath()); err == nil && bytes.Contains(log, []byte("WARNING: DATA RACE")) {
				i := bytes.Index(log, []byte("WARNING: DATA RACE"))
				fmt.Fprintf(os.Stderr, "e2e: the bridge had a data race:\n%s\n", log[i:min(len(log), i+6000)])
				code = 1
			}
			e.close(code != 0)
		}
		return code
	}()
	os.Exit(code)
}

// need is called first by every test.
func need(t *testing.T) *env {
	t.Helper()
	if setupErr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("end-to-end environment unavailable: %v", setupErr)
		}
		t.Skipf("end-to-end environment unavailable (install Prosody or ejabberd and a C compiler for Dendrite, or see testenv/): %v", setupErr)
	}
	return e
}

func newEnv() (*env, error) {
	root, err := filepath.Abs("..")
	if err != nil {
		return nil, err
	}
	stack, err := testenv.New(root, "mxpp-e2e-", "")
	if err != nil {
		return nil, err
	}
	v := &env{Stack: stack}
	v.Race = true
	v.Users = []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan"}
	for i := range burstClients {
		v.Users = append(v.Users, fmt.Sprintf("load%d", i))
	}
	v.XMPPServer = os.Getenv("E2E_XMPP")
	v.XMPPEnv = []string{"XMPP_EXTRA_DOMAIN=denied.test", "XMPP_EXTRA_USERS=eve:evepw"}
	if v.XMPPServerName() == "prosody" {
		// Island A of the two-island tests: s2s to island B, which starts
		// when a test needs it.
		v.S2SPort, v.peerS2S = testenv.FreePort(), testenv.FreePort()
		v.S2SRoutes = map[string]string{islandBDomain: fmt.Sprintf("127.0.0.1:%d", v.peerS2S)}
	}
	if err = v.Build(); err != nil {
		return v, err
	}
	return v, v.start()
}

// start configures the environment's bridge and starts its servers and
// the bridge, behind a proxy on the component link that tests can cut.
func (v *env) start() error {
	var err error
	if v.compProxy, err = startProxy(fmt.Sprintf("127.0.0.1:%d", v.CompPort)); err != nil {
		return err
	}
	if err = v.setupDatabase(); err != nil {
		return err
	}
	if err = v.Configure(v.bridgeConfig()); err != nil {
		return err
	}
	if v.beforeServers != nil {
		if err = v.beforeServers(); err != nil {
			return err
		}
	}
	if err = v.StartXMPP(); err != nil {
		return err
	}
	if err = v.StartHomeserver(); err != nil {
		return err
	}
	return v.startBridge()
}

// bridgeConfig is the bridge's config for the tests.
func (v *env) bridgeConfig() string {
	exposure := v.exposure
	if exposure == "" {
		exposure = "opt-in"
	}
	return fmt.Sprintf(`homeserver:
  address: %s
  domain: %s
appservice:
  address: http://127.0.0.1:%d
  hostname: 127.0.0.1
  port: %d
xmpp:
  server: %s
  domain: %s
  secret: %s
  denied_domains: [denied.test]
  admins: [erin@xmpp.test]
encryption:
  allow: true
  # Direct chats XMPP users open are encrypted.
  default: true
  self_sign: true
database:
  type: %s
  uri: %s
bridge:
  exposure: %s
  occupant_check_interval: 1s
  # Clients that rejoin after a fault catch up from the room's history.
  history_messages: 100
  permissions:
    "*": user
    "@opsadmin:hs.test": admin
    "@muted:hs.test": none
  media:
    # The test's HTTP upload server is on loopback.
    allow_private_networks: true
logging:
  level: debug
  format: pretty
  audit_file: %s
`, v.HSURL, v.HSDomain, v.ASPort, v.ASPort, v.compProxy.addr(), v.CompDomain, v.Secret, v.dbType, v.dbURI, exposure, filepath.Join(v.Dir, "audit.log"))
}

// startBridge runs the bridge binary and waits until it is ready.
func (v *env) startBridge() error {
	_, err := v.StartBridge(30 * time.Second)
	return err
}

// restartBridgeWith restarts the bridge with another exposure mode.
func (v *env) restartBridgeWith(t *testing.T, exposure string) {
	t.Helper()
	v.restartBridgeEditing(t, `(?m)^  exposure: .*$`, "  exposure: "+exposure)
	v.exposure = exposure
}

// restartBridgeEditing restarts the bridge with the written config (which
// holds the generated tokens) changed: what matches pattern is replaced.
func (v *env) restartBridgeEditing(t *testing.T, pattern, replacement string) {
	t.Helper()
	v.StopBridge(false)
	cfg, err := os.ReadFile(v.Config)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(pattern)
	if !re.Match(cfg) {
		t.Fatalf("nothing in the config matches %s", pattern)
	}
	if err = os.WriteFile(v.Config, re.ReplaceAll(cfg, []byte(replacement)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err = v.startBridge(); err != nil {
		t.Fatal(err)
	}
}

// restartXMPP stops the XMPP server and starts it again with the same data.
func (v *env) restartXMPP(t *testing.T) { v.restart(t, v.XMPPDir, v.StartXMPP) }

// restartHomeserver stops Dendrite and starts it again with the same data.
func (v *env) restartHomeserver(t *testing.T) { v.restart(t, v.HSDir, v.StartHomeserver) }

func (v *env) restart(t *testing.T, dir string, start func() error) {
	t.Helper()
	if err := v.StopServer(dir); err != nil {
		t.Fatal(err)
	}
	if err := start(); err != nil {
		t.Fatal(err)
	}
}

func (v *env) close(failed bool) {
	keep := failed || os.Getenv("E2E_KEEP") == "1"
	v.Stop(keep)
	if v.compProxy != nil {
		v.compProxy.close()
	}
	if v.dropDB != nil {
		v.dropDB()
	}
	if !keep {
		return
	}
	fmt.Fprintln(os.Stderr, "e2e: logs kept in", v.Dir)
	if failed {
		if log, err := os.ReadFile(v.LogPath()); err == nil {
			tail := log
			if len(tail) > 20000 {
				tail = tail[len(tail)-20000:]
			}
			fmt.Fprintf(os.Stderr, "--- tail of bridge.log ---\n%s\n", tail)
		}
	}
}

// ctx returns a context for one step of a test.
func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// barrier returns once everything the component wrote for this client
// before now has arrived: a ping to the component comes back on the same
// streams, after it.
func (c *xmppClient) barrier() {
	c.t.Helper()
	if r := c.iq(jid.MustParse(e.CompDomain), xmpp.TypeGet, &pingPayload{}); r.Type != xmpp.TypeResult {
		c.t.Fatalf("ping of the component: %v", r.Error)
	}
}

// waitHandled waits until the bridge has answered the appservice
// transaction that brought an event: whatever the bridge did with it, it
// has done, and written to XMPP.
func (v *env) waitHandled(t *testing.T, evt id.EventID) {
	t.Helper()
	txnOf := regexp.MustCompile(`transaction_id=(\S+)`)
	waitFor(t, "the bridge handling "+evt.String(), func() bool {
		log, _ := os.ReadFile(v.LogPath())
		txn := ""
		for _, line := range strings.Split(string(log), "\n") {
			if m := txnOf.FindStringSubmatch(line); m != nil {
				switch {
				case strings.Contains(line, "Appservice transaction ") && strings.Contains(line, `"`+evt.String()+`"`):
					txn = m[1]
				case txn != "" && m[1] == txn && strings.Contains(line, "Appservice transaction handled"):
					return true
				}
			}
		}
		return false
	})
}

// logSize returns how long the bridge log is now: a mark for waitLog.
func (v *env) logSize(t *testing.T) int64 {
	t.Helper()
	fi, err := os.Stat(v.LogPath())
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// waitLog waits until the bridge log, after mark, has a line with every
// one of parts in it, and returns that line.
func (v *env) waitLog(t *testing.T, mark int64, what string, parts ...string) string {
	t.Helper()
	var found string
	waitFor(t, what, func() bool {
		log, err := os.ReadFile(v.LogPath())
		if err != nil || int64(len(log)) < mark {
			return false
		}
		for _, line := range strings.Split(string(log[mark:]), "\n") {
			if containsAll(line, parts) {
				found = line
				return true
			}
		}
		return false
	})
	return found
}

func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
