package msgconv

import "testing"

func TestTxnID(t *testing.T) {
	a := TxnID("!r:hs", "alice@x", "s1", "m1")
	if a != TxnID("!r:hs", "alice@x", "s1", "other") {
		t.Error("txnID is not stable for the same stanza")
	}
	for _, other := range []string{TxnID("!r2:hs", "alice@x", "s1", ""), TxnID("!r:hs", "bob@x", "s1", ""), TxnID("!r:hs", "alice@x", "s2", "")} {
		if other == a {
			t.Error("txnID collides across rooms, senders or stanzas")
		}
	}
	if TxnID("!r:hs", "a", "", "") == TxnID("!r:hs", "a", "", "") {
		t.Error("stanzas without any id got the same transaction ID")
	}
}
