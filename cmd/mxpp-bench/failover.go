package main

// Failover, on PostgreSQL: a second bridge process waits as the standby,
// the active one is killed with SIGKILL, and an XMPP client keeps sending
// to a bridged room until a message reaches Matrix through the standby.

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/mxpp/mxpp/testenv"
	"github.com/mxpp/mxpp/xmpp"
)

// failoverResult is what the failover measured, from the kill.
type failoverResult struct {
	ReadySeconds        float64 `json:"ready_seconds"`
	FirstMessageSeconds float64 `json:"first_message_seconds"`
	// Sent is how many probe messages went out before the first arrived
	// (those sent while no process was connected bounce at the XMPP
	// server, as to any unreachable service).
	Sent int `json:"probes_sent"`
}

// startStandby runs a second bridge process with the same config but its
// own metrics address, and waits until it says it is the standby. It
// returns the process and a function that ends it.
func (b *bench) startStandby() (*exec.Cmd, func(), error) {
	cfg, err := os.ReadFile(b.s.Config)
	if err != nil {
		return nil, nil, err
	}
	metrics := testenv.FreePort()
	old := fmt.Sprintf("listen: 127.0.0.1:%d", b.s.MetricsPort)
	if !strings.Contains(string(cfg), old) {
		return nil, nil, fmt.Errorf("no %q in the bridge's config", old)
	}
	cfg = []byte(strings.Replace(string(cfg), old, fmt.Sprintf("listen: 127.0.0.1:%d", metrics), 1))
	cfgPath, logPath := filepath.Join(b.s.Dir, "standby.yaml"), filepath.Join(b.s.Dir, "standby.log")
	if err = os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		return nil, nil, err
	}
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, nil, err
	}
	cmd := exec.Command(b.s.Bin, "-c", cfgPath)
	cmd.Dir, cmd.Stdout, cmd.Stderr = b.s.Dir, logFile, logFile
	if err = cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, nil, err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); _ = logFile.Close(); close(exited) }()
	stop := func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(time.Minute):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	health := fmt.Sprintf("http://127.0.0.1:%d/health", metrics)
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		log, _ := os.ReadFile(logPath)
		if strings.Contains(string(log), "waiting as its standby") && status(health) == http.StatusOK {
			return cmd, stop, nil
		}
		select {
		case <-exited:
			return nil, nil, fmt.Errorf("the standby exited; see %s", logPath)
		default:
		}
		if time.Now().After(deadline) {
			stop()
			return nil, nil, fmt.Errorf("no standby after a minute; see %s", logPath)
		}
	}
}

// status is the HTTP status of a GET of url, 0 if it failed.
func status(url string) int {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

// failover kills the active process and measures the standby's takeover:
// to its /ready on the appservice address, and to the first message from
// XMPP that reaches the Matrix observer through it. The standby is left
// stopped, as the bridge would be after StopBridge.
func (b *bench) failover() (failoverResult, error) {
	var r failoverResult
	_, stop, err := b.startStandby()
	if err != nil {
		return r, err
	}
	defer stop()

	killed := time.Now()
	b.s.StopBridge(true)
	ready := fmt.Sprintf("http://127.0.0.1:%d/ready", b.s.ASPort)
	deadline := killed.Add(2 * time.Minute)
	next := killed
	for {
		now := time.Now()
		if r.ReadySeconds == 0 && status(ready) == http.StatusOK {
			r.ReadySeconds = time.Since(killed).Seconds()
		}
		if at, ok := b.rec.first("fo-", "@observer:"); ok {
			r.FirstMessageSeconds = at.Sub(killed).Seconds()
			return r, nil
		}
		if now.After(deadline) {
			return r, fmt.Errorf("no message bridged within %s of killing the active process", deadline.Sub(killed))
		}
		if !now.Before(next) {
			body := fmt.Sprintf("fo-0-%d", r.Sent)
			if err := b.clients[0].send(&xmpp.Message{ID: body, Type: xmpp.TypeGroupchat, To: xmpp.A(b.mucs[0]), Body: body,
				OriginID: &xmpp.OriginID{ID: body}}); err != nil {
				return r, err
			}
			r.Sent++
			next = now.Add(50 * time.Millisecond)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
