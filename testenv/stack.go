// Package testenv runs Dendrite, an XMPP server (Prosody or ejabberd) and
// the bridge on loopback with the scripts beside it (start-homeserver.sh,
// start-prosody.sh, start-ejabberd.sh, stop.sh), for the end-to-end tests
// and the benchmark harness. The scripts install what is missing and
// document their variables at the top.
package testenv

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Stack is one set of servers and the bridge, in a temporary directory.
type Stack struct {
	Root string // repository root
	Dir  string // temporary directory: bridge binary, config, database, log

	HSDir, XMPPDir string // the servers' data and logs

	Bin, Config, Registration string
	// ExtraRegistrations and ExtraComponents ("domain:secret") let more
	// bridges (shards) use the same servers (Prosody only).
	ExtraRegistrations, ExtraComponents []string

	HSURL, HSDomain string
	// HSDatabase, if set, is a PostgreSQL URI Dendrite keeps its tables
	// at (else SQLite files in HSDir).
	HSDatabase     string
	HSPort, ASPort int
	// XMPPServer is "prosody" (the default) or "ejabberd".
	XMPPServer string
	// C2SAddr is the XMPP server's client port; CompPort its component port.
	C2SAddr                string
	CompPort               int
	XMPPDomain, CompDomain string
	// MUCDomain is the XMPP server's own MUC service.
	MUCDomain string
	// S2SPort, if set, opens server-to-server connections (Prosody only)
	// on that port; S2SRoutes sends those to a domain (and its subdomains)
	// to a peer's address instead of looking it up in DNS.
	S2SPort   int
	S2SRoutes map[string]string
	Secret    string // the component secret
	// Users are the XMPP accounts the start script creates, each with the
	// password name+"pw"; XMPPEnv is more of its environment.
	Users   []string
	XMPPEnv []string
	// Race builds the bridge with the race detector (the end-to-end
	// tests do; the benchmark measures the binary as shipped).
	Race bool

	bridge    *exec.Cmd
	bridgeLog *os.File
}

// FreePort returns a TCP port on loopback that was free a moment ago.
func FreePort() int {
	portsMu.Lock()
	defer portsMu.Unlock()
	lo, hi := listenPortRange()
	for range 1000 {
		port := lo + rand.IntN(hi-lo)
		if portsGiven[port] {
			continue
		}
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			continue
		}
		_ = ln.Close()
		portsGiven[port] = true
		return port
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

var (
	portsMu    sync.Mutex
	portsGiven = map[int]bool{} // never handed out twice by this process
)

// listenPortRange is where FreePort picks: below the kernel's ephemeral
// range, so that no outgoing connection (the tests make thousands) takes a
// port between the moment it was picked and the moment a server listens
// on it; ports the OS picks (":0") come from that range, which is why a
// server once failed to start in a full run.
func listenPortRange() (lo, hi int) {
	lo, hi = 10000, 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if start, err := strconv.Atoi(f[0]); err == nil && start > lo+1000 {
				hi = start
			}
		}
	}
	return lo, hi
}

// New makes the temporary directory (named after prefix) and picks ports.
// hsDir is where the homeserver keeps its data ("" for a directory in the
// temporary one), e.g. on tmpfs for a benchmark.
func New(root, prefix, hsDir string) (*Stack, error) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return nil, err
	}
	if hsDir == "" {
		hsDir = filepath.Join(dir, "hs")
	}
	s := &Stack{
		Root: root, Dir: dir, HSDir: hsDir, XMPPDir: filepath.Join(dir, "xmpp"),
		Bin: filepath.Join(dir, "mxpp"), Config: filepath.Join(dir, "config.yaml"), Registration: filepath.Join(dir, "registration.yaml"),
		HSDomain: "hs.test", HSPort: FreePort(), ASPort: FreePort(), C2SAddr: fmt.Sprintf("127.0.0.1:%d", FreePort()),
		CompPort: FreePort(), XMPPDomain: "xmpp.test", CompDomain: "matrix.xmpp.test", Secret: "componentsecret",
		MUCDomain: "conference.xmpp.test",
	}
	s.HSURL = fmt.Sprintf("http://127.0.0.1:%d", s.HSPort)
	return s, nil
}

// Script runs one of the scripts with extra environment.
func (s *Stack) Script(name string, env ...string) error {
	cmd := exec.Command(filepath.Join(s.Root, "testenv", name))
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %v\n%s", name, err, out.String())
	}
	return nil
}

// Build builds the bridge binary as the README says: static, pure-Go
// Olm/Megolm; with Race, with the race detector (which needs cgo).
func (s *Stack) Build() error {
	args, cgo := []string{"build", "-tags", "goolm", "-o", s.Bin}, "CGO_ENABLED=0"
	if s.Race {
		args, cgo = append(args, "-race"), "CGO_ENABLED=1"
	}
	build := exec.Command("go", append(args, "./cmd/mxpp")...)
	build.Dir = s.Root
	build.Env = append(os.Environ(), cgo)
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("building the bridge: %v\n%s", err, out)
	}
	return nil
}

// Configure writes the bridge's config and lets the bridge generate its
// tokens and the registration (-g).
func (s *Stack) Configure(config string) error {
	if err := os.WriteFile(s.Config, []byte(config), 0o600); err != nil {
		return err
	}
	if out, err := exec.Command(s.Bin, "-g", "-c", s.Config, "-r", s.Registration).CombinedOutput(); err != nil {
		return fmt.Errorf("generating the registration: %v\n%s", err, out)
	}
	return nil
}

// XMPPServerName is the XMPP server the stack runs: "prosody" unless
// XMPPServer says "ejabberd".
func (s *Stack) XMPPServerName() string {
	if s.XMPPServer == "" {
		return "prosody"
	}
	return s.XMPPServer
}

// StartXMPP starts the XMPP server with the stack's users.
func (s *Stack) StartXMPP() error {
	users := make([]string, 0, len(s.Users))
	for _, u := range s.Users {
		users = append(users, u+":"+u+"pw")
	}
	var script string
	switch name := s.XMPPServerName(); name {
	case "prosody", "ejabberd":
		script = "start-" + name + ".sh"
	default:
		return fmt.Errorf("unknown XMPP server %q (prosody or ejabberd)", name)
	}
	env := []string{
		"XMPP_DIR=" + s.XMPPDir, "XMPP_DOMAIN=" + s.XMPPDomain, "XMPP_COMPONENT_DOMAIN=" + s.CompDomain,
		"XMPP_COMPONENT_SECRET=" + s.Secret, "XMPP_C2S_PORT=" + strings.TrimPrefix(s.C2SAddr, "127.0.0.1:"),
		"XMPP_COMPONENT_PORT=" + strconv.Itoa(s.CompPort), "XMPP_USERS=" + strings.Join(users, " "),
		"XMPP_MUC_DOMAIN=" + s.MUCDomain, "XMPP_EXTRA_COMPONENTS=" + strings.Join(s.ExtraComponents, " "),
	}
	if s.S2SPort != 0 {
		var routes []string
		for domain, addr := range s.S2SRoutes {
			routes = append(routes, domain+"="+addr)
		}
		env = append(env, "XMPP_S2S_PORT="+strconv.Itoa(s.S2SPort), "XMPP_S2S_ROUTES="+strings.Join(routes, " "))
	}
	return s.Script(script, append(env, s.XMPPEnv...)...)
}

// StartHomeserver starts Dendrite with the bridge's registration.
func (s *Stack) StartHomeserver() error {
	return s.Script("start-homeserver.sh", "HS_DIR="+s.HSDir, "HS_PORT="+strconv.Itoa(s.HSPort),
		"HS_SERVER_NAME="+s.HSDomain, "HS_DATABASE="+s.HSDatabase,
		"AS_REGISTRATION="+strings.Join(append([]string{s.Registration}, s.ExtraRegistrations...), " "))
}

// StopServer stops the server whose data is in dir (HSDir or XMPPDir).
func (s *Stack) StopServer(dir string) error {
	if out, err := exec.Command(filepath.Join(s.Root, "testenv", "stop.sh"), dir).CombinedOutput(); err != nil {
		return fmt.Errorf("stopping the server in %s: %v\n%s", dir, err, out)
	}
	return nil
}

// StartBridge runs the bridge, its output appended to LogPath, and
// returns how long it took to answer /ready.
func (s *Stack) StartBridge(timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	if err := s.StartBridgeProcess(); err != nil {
		return 0, err
	}
	if err := s.WaitReady(timeout); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// StartBridgeProcess runs the bridge binary without waiting for it.
func (s *Stack) StartBridgeProcess() error {
	var err error
	if s.bridgeLog, err = os.OpenFile(s.LogPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err != nil {
		return err
	}
	s.bridge = exec.Command(s.Bin, "-c", s.Config)
	s.bridge.Dir = s.Dir
	s.bridge.Stdout, s.bridge.Stderr = s.bridgeLog, s.bridgeLog
	return s.bridge.Start()
}

// WaitReady polls the bridge's /ready until it answers 200.
func (s *Stack) WaitReady(timeout time.Duration) error {
	url := fmt.Sprintf("http://127.0.0.1:%d/ready", s.ASPort)
	for start := time.Now(); time.Since(start) < timeout; time.Sleep(5 * time.Millisecond) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	return fmt.Errorf("bridge not ready after %s; see %s", timeout, s.LogPath())
}

// LogPath is the bridge's log file.
func (s *Stack) LogPath() string { return filepath.Join(s.Dir, "bridge.log") }

// BridgePID is the running bridge's process ID, 0 if none runs.
func (s *Stack) BridgePID() int {
	if s.bridge == nil || s.bridge.Process == nil {
		return 0
	}
	return s.bridge.Process.Pid
}

// StopBridge ends the bridge: with SIGKILL when hard, so that it has no
// chance to clean up, else with SIGTERM.
func (s *Stack) StopBridge(hard bool) {
	if s.bridge == nil || s.bridge.Process == nil {
		return
	}
	sig := syscall.SIGTERM
	if hard {
		sig = syscall.SIGKILL
	}
	_ = s.bridge.Process.Signal(sig)
	_ = s.bridge.Wait()
	_ = s.bridgeLog.Close()
	s.bridge = nil
}

// Stop ends the bridge and both servers, and removes the directories
// unless keep.
func (s *Stack) Stop(keep bool) {
	s.StopBridge(false)
	_ = exec.Command(filepath.Join(s.Root, "testenv", "stop.sh"), s.HSDir, s.XMPPDir).Run()
	if keep {
		return
	}
	_ = os.RemoveAll(s.Dir)
	_ = os.RemoveAll(s.HSDir)
}
