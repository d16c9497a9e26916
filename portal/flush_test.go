package portal

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"mellium.im/xmpp/jid"

	"github.com/mxpp/mxpp/xmpp"
)

// slowXMPP is an XMPP server that takes a while for each stanza.
type slowXMPP struct {
	XMPPAPI
	sent atomic.Int64
}

func (s *slowXMPP) Send(context.Context, any) error {
	time.Sleep(20 * time.Millisecond)
	s.sent.Add(1)
	return nil
}

// TestFlushLeavesTheInbox: a transaction's Flush waits for the Matrix
// events queued before it, not for the room's whole XMPP inbox (a burst
// from XMPP would make every transaction time out); Drain, for shutdown,
// handles the inbox too.
func TestFlushLeavesTheInbox(t *testing.T) {
	out := &slowXMPP{}
	tp := testPortal()
	tp.deps.XMPP, tp.deps.Log = out, zerolog.Nop()
	p := newPortal(tp.Portal, tp.deps, tp.roomJID)
	p.roster, p.info, p.occupants = tp.roster, tp.info, tp.occupants
	p.loaded = true
	p.lastSeen, p.misses, p.pinging = map[string]time.Time{}, map[string]int{}, map[string]bool{}
	p.inboxPaused = false
	const n = 100 // each answered with an error after 20 ms: 2 s in all
	for i := range n {
		// A chat message to the room: refused, one stanza out each.
		p.inbox.push(&xmpp.Message{ID: "m" + string(rune('a'+i%26)), Type: xmpp.TypeChat, Body: "x",
			From: xmpp.A(jid.MustParse("zed@xmpp.test/r")), To: xmpp.A(p.roomJID)})
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p.Start(ctx)
	if _, err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if left := p.inbox.len(); left == 0 {
		t.Errorf("Flush returned after the whole XMPP inbox (%d stanzas answered)", out.sent.Load())
	}
	if _, err := p.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if left, sent := p.inbox.len(), out.sent.Load(); left != 0 || sent != n {
		t.Errorf("after Drain: %d stanzas left, %d answered; want 0 and %d", left, sent, n)
	}
	p.Stop()
}
