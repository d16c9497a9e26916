package xmpp

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"sync"
	"time"
)

// An XMPP server may accept a second connection for a component domain
// while the first is open: ejabberd does, and then hands each stanza for
// the domain to one of the connections at random, so a second bridge
// instance (or a stale connection nobody reads) silently takes a share of
// the traffic. Prosody refuses the second connection with a conflict
// stream error instead. The component therefore checks, on every
// connection and before it calls HandleConnected, that it is alone: it
// sends itself probeCount probe messages through the server and expects
// every one back. A probe that does not come back, or one from another
// instance, means the domain is shared.

// NSProbe is the namespace of the probes. They go from the component's
// domain to itself and never leave the server.
const NSProbe = "urn:x-mxpp:probe:0"

// probeCount is how many probes one check sends: with two connections and
// random routing, all of them come back to the one that sent them with a
// chance of 2^-probeCount.
const probeCount = 24

// ErrDomainShared is returned by Run when the first connection of the
// component found another open connection for its domain: this instance
// refuses to run beside it.
var ErrDomainShared = errors.New("another connection for the component's domain is open at the XMPP server")

// Probe is the payload of a probe message.
type Probe struct {
	XMLName  xml.Name `xml:"urn:x-mxpp:probe:0 probe"`
	Instance string   `xml:"instance,attr"`
	Seq      int      `xml:"seq,attr"`
}

// prober tracks the probes of this instance and what the last check found.
type prober struct {
	instance string     // random per process
	checkMu  sync.Mutex // one check at a time

	mu      sync.Mutex
	round   int           // the running check's number; its probes carry it in the id
	missing map[int]bool  // probes of the running round not back yet
	back    chan struct{} // closed when missing is empty
	foreign map[string]bool
	shared  string // why the domain counts as shared; "" when alone
	recheck chan struct{}
}

func newProber() *prober {
	return &prober{instance: RandomID(), foreign: map[string]bool{}, recheck: make(chan struct{}, 1)}
}

// Shared says why the component is not the only connection for its domain
// at the XMPP server, or "" while it is.
func (c *Component) Shared() string {
	c.probe.mu.Lock()
	defer c.probe.mu.Unlock()
	return c.probe.shared
}

// checkAlone sends one round of probes and waits until all came back or
// ProbeTimeout passed. It returns "" when the component is alone, else why
// not, and records the answer for Shared.
func (c *Component) checkAlone(ctx context.Context) string {
	p := c.probe
	p.checkMu.Lock()
	defer p.checkMu.Unlock()
	p.mu.Lock()
	p.round++
	clear(p.foreign)
	round := p.round
	p.missing = make(map[int]bool, probeCount)
	for i := range probeCount {
		p.missing[i] = true
	}
	back := make(chan struct{})
	p.back = back
	p.mu.Unlock()

	for i := range probeCount {
		m := &Message{ID: fmt.Sprintf("probe-%s-%d-%d", p.instance, round, i), Type: TypeHeadline,
			From: A(c.domain), To: A(c.domain), Probe: &Probe{Instance: p.instance, Seq: i}}
		if err := c.Send(ctx, m); err != nil {
			return "" // the link is gone; the next connection checks again
		}
	}
	timer := time.NewTimer(c.ProbeTimeout)
	defer timer.Stop()
	select {
	case <-back:
	case <-timer.C:
	case <-ctx.Done():
		return ""
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	lost := len(p.missing)
	p.missing, p.back = nil, nil
	switch {
	case len(p.foreign) > 0:
		p.shared = fmt.Sprintf("%v: probes of %d other bridge instance(s) arrived here, so stanzas for %s are split between the connections", ErrDomainShared, len(p.foreign), c.domain)
	case lost > 0:
		p.shared = fmt.Sprintf("%v: %d of %d probes sent to %s through the server did not come back within %s, so stanzas for it are split between the connections", ErrDomainShared, lost, probeCount, c.domain, c.ProbeTimeout)
	default:
		p.shared = ""
	}
	return p.shared
}

// handleProbe takes a probe message that came back through the server.
func (c *Component) handleProbe(m *Message) {
	p := c.probe
	p.mu.Lock()
	defer p.mu.Unlock()
	if m.Probe.Instance != p.instance {
		if !p.foreign[m.Probe.Instance] {
			c.log.Error().Str("other_instance", m.Probe.Instance).Stringer("domain", c.domain).
				Msg("Another bridge instance connected to the XMPP server for this component's domain: the server splits the domain's stanzas between the connections until it is stopped")
		}
		p.foreign[m.Probe.Instance] = true
		if p.shared == "" {
			p.shared = fmt.Sprintf("%v: another bridge instance's probes arrived here", ErrDomainShared)
		}
		select {
		case p.recheck <- struct{}{}:
		default:
		}
		return
	}
	if p.missing == nil || m.ID != fmt.Sprintf("probe-%s-%d-%d", p.instance, p.round, m.Probe.Seq) {
		return // from an earlier round that timed out
	}
	delete(p.missing, m.Probe.Seq)
	if len(p.missing) == 0 && p.back != nil {
		close(p.back)
		p.back = nil
	}
}

// watchShared checks again while the domain is shared, every
// ProbeInterval, and after another instance's probe arrived once that
// instance had the time to finish its own check and refuse to run, so that
// Shared clears when the other connection is gone.
func (c *Component) watchShared(ctx context.Context) {
	t := time.NewTicker(c.ProbeInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.probe.recheck:
			select {
			case <-time.After(c.ProbeTimeout + time.Second):
			case <-ctx.Done():
				return
			}
		case <-t.C:
			if c.Shared() == "" {
				continue
			}
		}
		was := c.Shared()
		now := c.checkAlone(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case now != "" && was == "":
			c.log.Error().Str("reason", now).Msg("The XMPP server splits this component's stanzas with another connection")
		case now == "" && was != "":
			c.log.Info().Stringer("domain", c.domain).Msg("The component is again the only connection for its domain")
		}
	}
}
