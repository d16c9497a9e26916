package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// stack is Dendrite, Prosody and the bridge on loopback, started with the
// repository's testenv scripts.
type stack struct {
	root, dir, hsDir, xmppDir string
	bin, cfg, reg             string

	hsURL, hsDomain        string
	hsPort, asPort         int
	c2sAddr                string
	compPort               int
	xmppDomain, compDomain string
	secret                 string

	bridge    *exec.Cmd
	bridgeLog *os.File
}

func freePort() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// newStack prepares directories and ports; fast is a directory on tmpfs
// for the homeserver's data, or "" to keep it with the rest.
func newStack(root, fast string) (*stack, error) {
	dir, err := os.MkdirTemp("", "mxpp-bench-")
	if err != nil {
		return nil, err
	}
	hsDir := filepath.Join(dir, "hs")
	if fast != "" {
		if hsDir, err = os.MkdirTemp(fast, "mxpp-bench-hs-"); err != nil {
			return nil, err
		}
	}
	s := &stack{
		root: root, dir: dir, hsDir: hsDir, xmppDir: filepath.Join(dir, "xmpp"),
		bin: filepath.Join(dir, "mxpp"), cfg: filepath.Join(dir, "config.yaml"), reg: filepath.Join(dir, "registration.yaml"),
		hsDomain: "hs.test", hsPort: freePort(), asPort: freePort(), c2sAddr: fmt.Sprintf("127.0.0.1:%d", freePort()),
		compPort: freePort(), xmppDomain: "xmpp.test", compDomain: "matrix.xmpp.test", secret: "benchsecret",
	}
	s.hsURL = fmt.Sprintf("http://127.0.0.1:%d", s.hsPort)
	return s, nil
}

func (s *stack) script(name string, envs ...string) error {
	cmd := exec.Command(filepath.Join(s.root, "testenv", name))
	cmd.Env = append(os.Environ(), envs...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %v\n%s", name, err, out.String())
	}
	return nil
}

// start builds the bridge, writes its config and registration, and starts
// the servers with users xmppUsers (password = name+"pw").
func (s *stack) start(xmppUsers []string) error {
	build := exec.Command("go", "build", "-tags", "goolm", "-o", s.bin, "./cmd/mxpp")
	build.Dir = s.root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("building the bridge: %v\n%s", err, out)
	}
	cfg := fmt.Sprintf(`homeserver:
  address: %s
  domain: %s
appservice:
  address: http://127.0.0.1:%d
  hostname: 127.0.0.1
  port: %d
xmpp:
  server: 127.0.0.1:%d
  domain: %s
  secret: %s
database:
  uri: file:%s
bridge:
  exposure: public
  history_messages: 0
logging:
  level: warn
  format: json
`, s.hsURL, s.hsDomain, s.asPort, s.asPort, s.compPort, s.compDomain, s.secret, filepath.Join(s.dir, "mxpp.db"))
	if err := os.WriteFile(s.cfg, []byte(cfg), 0o600); err != nil {
		return err
	}
	if out, err := exec.Command(s.bin, "-g", "-c", s.cfg, "-r", s.reg).CombinedOutput(); err != nil {
		return fmt.Errorf("generating the registration: %v\n%s", err, out)
	}
	var users []string
	for _, u := range xmppUsers {
		users = append(users, u+":"+u+"pw")
	}
	if err := s.script("start-prosody.sh", "XMPP_DIR="+s.xmppDir, "XMPP_DOMAIN="+s.xmppDomain,
		"XMPP_COMPONENT_DOMAIN="+s.compDomain, "XMPP_COMPONENT_SECRET="+s.secret,
		"XMPP_C2S_PORT="+strings.TrimPrefix(s.c2sAddr, "127.0.0.1:"), "XMPP_COMPONENT_PORT="+strconv.Itoa(s.compPort),
		"XMPP_USERS="+strings.Join(users, " ")); err != nil {
		return err
	}
	return s.script("start-homeserver.sh", "HS_DIR="+s.hsDir, "HS_PORT="+strconv.Itoa(s.hsPort),
		"HS_SERVER_NAME="+s.hsDomain, "AS_REGISTRATION="+s.reg)
}

// startBridge runs the bridge and returns how long it took to be ready.
func (s *stack) startBridge() (time.Duration, error) {
	var err error
	if s.bridgeLog, err = os.OpenFile(filepath.Join(s.dir, "bridge.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err != nil {
		return 0, err
	}
	s.bridge = exec.Command(s.bin, "-c", s.cfg)
	s.bridge.Dir = s.dir
	s.bridge.Stdout, s.bridge.Stderr = s.bridgeLog, s.bridgeLog
	start := time.Now()
	if err = s.bridge.Start(); err != nil {
		return 0, err
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/ready", s.asPort)
	for time.Since(start) < time.Minute {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(start), nil
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	return 0, fmt.Errorf("bridge not ready after a minute; see %s", s.bridgeLog.Name())
}

func (s *stack) stopBridge() {
	if s.bridge == nil {
		return
	}
	_ = s.bridge.Process.Signal(syscall.SIGTERM)
	_ = s.bridge.Wait()
	_ = s.bridgeLog.Close()
	s.bridge = nil
}

func (s *stack) stop(keep bool) {
	s.stopBridge()
	_ = exec.Command(filepath.Join(s.root, "testenv", "stop.sh"), s.hsDir, s.xmppDir).Run()
	if keep {
		fmt.Fprintln(os.Stderr, "kept", s.dir, s.hsDir)
		return
	}
	_ = os.RemoveAll(s.dir)
	_ = os.RemoveAll(s.hsDir)
}

// proc is what /proc says of the bridge process.
type proc struct {
	cpu    time.Duration // user + system
	rss    int64         // bytes
	peak   int64         // bytes, VmHWM
	exists bool
}

func (s *stack) proc() proc {
	if s.bridge == nil {
		return proc{}
	}
	pid := s.bridge.Process.Pid
	var p proc
	if stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		// Fields after the command name, which is in parentheses.
		f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+2:]))
		utime, _ := strconv.ParseInt(f[11], 10, 64)
		stime, _ := strconv.ParseInt(f[12], 10, 64)
		p.cpu = time.Duration(utime+stime) * time.Second / 100 // USER_HZ
		p.exists = true
	}
	if status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for _, line := range strings.Split(string(status), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			switch f[0] {
			case "VmRSS:":
				p.rss = kb << 10
			case "VmHWM:":
				p.peak = kb << 10
			}
		}
	}
	return p
}

func waitCtx(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}
