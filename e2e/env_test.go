//go:build e2e

// Package e2e runs the bridge against a real Dendrite homeserver and a real
// Prosody server on loopback, with real clients on both sides: mautrix as a
// Matrix client and mellium as an XMPP client.
//
// The servers are started once for the package by the scripts in testenv/,
// which install them when missing. Locally a server that cannot be started
// skips the tests with the reason; under CI=true it fails them.
//
// Knobs: E2E_KEEP=1 keeps the temporary directory with every log.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// env is the shared test environment.
type env struct {
	dir        string
	root       string // repository root
	bin        string // the bridge binary
	hsURL      string
	hsDomain   string
	asPort     int
	c2sAddr    string
	compPort   int
	xmppDomain string
	compDomain string
	hsDir      string
	xmppDir    string
	bridgeCfg  string
	bridge     *exec.Cmd
	bridgeLog  *os.File
	users      []string
	exposure   string // bridge.exposure; the default (opt-in) when empty
	hsPort     int
	compProxy  *tcpProxy // between the bridge and Prosody's component port
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
		if e != nil {
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
		t.Skipf("end-to-end environment unavailable (install Prosody and a C compiler for Dendrite, or see testenv/): %v", setupErr)
	}
	return e
}

func freePort() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func newEnv() (*env, error) {
	dir, err := os.MkdirTemp("", "mxpp-e2e-")
	if err != nil {
		return nil, err
	}
	root, err := filepath.Abs("..")
	if err != nil {
		return nil, err
	}
	v := &env{
		dir:        dir,
		root:       root,
		bin:        filepath.Join(dir, "mxpp"),
		hsDomain:   "hs.test",
		asPort:     freePort(),
		compPort:   freePort(),
		xmppDomain: "xmpp.test",
		compDomain: "matrix.xmpp.test",
		hsDir:      filepath.Join(dir, "hs"),
		xmppDir:    filepath.Join(dir, "xmpp"),
		bridgeCfg:  filepath.Join(dir, "config.yaml"),
		users:      []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan"},
	}
	for i := range burstClients {
		v.users = append(v.users, fmt.Sprintf("load%d", i))
	}
	v.hsPort = freePort()
	v.hsURL = fmt.Sprintf("http://127.0.0.1:%d", v.hsPort)
	v.c2sAddr = fmt.Sprintf("127.0.0.1:%d", freePort())

	build := exec.Command("go", "build", "-tags", "goolm", "-o", v.bin, "./cmd/mxpp")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return v, fmt.Errorf("building the bridge: %v\n%s", err, out)
	}
	if v.compProxy, err = startProxy(fmt.Sprintf("127.0.0.1:%d", v.compPort)); err != nil {
		return v, err
	}
	if err = v.writeBridgeConfig(); err != nil {
		return v, err
	}
	gen := exec.Command(v.bin, "-g", "-c", v.bridgeCfg, "-r", filepath.Join(dir, "registration.yaml"))
	if out, err := gen.CombinedOutput(); err != nil {
		return v, fmt.Errorf("generating the registration: %v\n%s", err, out)
	}
	if err = v.startProsody(); err != nil {
		return v, err
	}
	if err = v.startHomeserver(); err != nil {
		return v, err
	}
	return v, v.startBridge()
}

func (v *env) startHomeserver() error {
	return v.script("start-homeserver.sh",
		"HS_DIR="+v.hsDir, "HS_PORT="+strconv.Itoa(v.hsPort), "HS_SERVER_NAME="+v.hsDomain,
		"AS_REGISTRATION="+filepath.Join(v.dir, "registration.yaml"))
}

func (v *env) writeBridgeConfig() error {
	exposure := v.exposure
	if exposure == "" {
		exposure = "opt-in"
	}
	cfg := fmt.Sprintf(`homeserver:
  address: %s
  domain: %s
appservice:
  address: http://127.0.0.1:%d
  hostname: 127.0.0.1
  port: %d
xmpp:
  server: %s
  domain: %s
  secret: componentsecret
  denied_domains: [denied.test]
  admins: [erin@xmpp.test]
encryption:
  allow: true
  # Direct chats XMPP users open are encrypted.
  default: true
  self_sign: true
database:
  uri: file:%s
bridge:
  exposure: %s
  occupant_check_interval: 1s
  # Clients that rejoin after a fault catch up from the room's history.
  history_messages: 100
  permissions:
    "*": user
    "@opsadmin:hs.test": admin
  media:
    # The test's HTTP upload server is on loopback.
    allow_private_networks: true
logging:
  level: debug
  format: pretty
  audit_file: %s
`, v.hsURL, v.hsDomain, v.asPort, v.asPort, v.compProxy.addr(), v.compDomain, filepath.Join(v.dir, "mxpp.db"), exposure, filepath.Join(v.dir, "audit.log"))
	return os.WriteFile(v.bridgeCfg, []byte(cfg), 0o600)
}

// script runs one of the testenv scripts with extra environment.
func (v *env) script(name string, envs ...string) error {
	cmd := exec.Command(filepath.Join(v.root, "testenv", name))
	cmd.Env = append(os.Environ(), envs...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %v\n%s", name, err, out.String())
	}
	return nil
}

// startBridge runs the bridge binary and waits until it is ready.
func (v *env) startBridge() error {
	var err error
	v.bridgeLog, err = os.OpenFile(filepath.Join(v.dir, "bridge.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	v.bridge = exec.Command(v.bin, "-c", v.bridgeCfg)
	v.bridge.Dir = v.dir
	v.bridge.Stdout, v.bridge.Stderr = v.bridgeLog, v.bridgeLog
	if err = v.bridge.Start(); err != nil {
		return err
	}
	return v.waitReady(30 * time.Second)
}

// waitReady polls the bridge's /ready endpoint.
func (v *env) waitReady(timeout time.Duration) error {
	url := fmt.Sprintf("http://127.0.0.1:%d/ready", v.asPort)
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("bridge not ready after %s; see %s", timeout, v.bridgeLog.Name())
}

// killBridge ends the bridge process: with SIGKILL when hard, so that it
// has no chance to clean up, else with SIGTERM.
func (v *env) killBridge(hard bool) {
	if v.bridge == nil || v.bridge.Process == nil {
		return
	}
	sig := syscall.SIGTERM
	if hard {
		sig = syscall.SIGKILL
	}
	_ = v.bridge.Process.Signal(sig)
	_ = v.bridge.Wait()
	v.bridge = nil
	_ = v.bridgeLog.Close()
}

// restartBridgeWith restarts the bridge with another exposure mode.
func (v *env) restartBridgeWith(t *testing.T, exposure string) {
	t.Helper()
	v.killBridge(false)
	// Edit the written config: it holds the generated tokens now.
	cfg, err := os.ReadFile(v.bridgeCfg)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^  exposure: .*$`)
	if !re.Match(cfg) {
		t.Fatal("no bridge.exposure in the config")
	}
	v.exposure = exposure
	if err = os.WriteFile(v.bridgeCfg, re.ReplaceAll(cfg, []byte("  exposure: "+exposure)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err = v.startBridge(); err != nil {
		t.Fatal(err)
	}
}

// restartProsody stops Prosody and starts it again with the same data.
func (v *env) restartProsody(t *testing.T) { v.restart(t, v.xmppDir, v.startProsody) }

// restartHomeserver stops Dendrite and starts it again with the same data.
func (v *env) restartHomeserver(t *testing.T) { v.restart(t, v.hsDir, v.startHomeserver) }

func (v *env) restart(t *testing.T, dir string, start func() error) {
	t.Helper()
	stop := exec.Command(filepath.Join(v.root, "testenv", "stop.sh"), dir)
	if out, err := stop.CombinedOutput(); err != nil {
		t.Fatalf("stopping the server in %s: %v\n%s", dir, err, out)
	}
	if err := start(); err != nil {
		t.Fatal(err)
	}
}

func (v *env) startProsody() error {
	var users []string
	for _, u := range v.users {
		users = append(users, u+":"+u+"pw")
	}
	return v.script("start-prosody.sh",
		"XMPP_DIR="+v.xmppDir, "XMPP_DOMAIN="+v.xmppDomain, "XMPP_COMPONENT_DOMAIN="+v.compDomain,
		"XMPP_C2S_PORT="+strings.TrimPrefix(v.c2sAddr, "127.0.0.1:"), "XMPP_COMPONENT_PORT="+strconv.Itoa(v.compPort),
		"XMPP_USERS="+strings.Join(users, " "), "XMPP_EXTRA_DOMAIN=denied.test", "XMPP_EXTRA_USERS=eve:evepw")
}

func (v *env) close(failed bool) {
	v.killBridge(false)
	if v.compProxy != nil {
		v.compProxy.close()
	}
	stop := exec.Command(filepath.Join(v.root, "testenv", "stop.sh"), v.hsDir, v.xmppDir)
	_ = stop.Run()
	if failed || os.Getenv("E2E_KEEP") == "1" {
		fmt.Fprintln(os.Stderr, "e2e: logs kept in", v.dir)
		if failed {
			if log, err := os.ReadFile(filepath.Join(v.dir, "bridge.log")); err == nil {
				tail := log
				if len(tail) > 20000 {
					tail = tail[len(tail)-20000:]
				}
				fmt.Fprintf(os.Stderr, "--- tail of bridge.log ---\n%s\n", tail)
			}
		}
		return
	}
	_ = os.RemoveAll(v.dir)
}

// ctx returns a context for one step of a test.
func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}
