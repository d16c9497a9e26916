// Package msgconv translates messages between Matrix and XMPP, for both
// kinds of portal: the rooms the component hosts as MUCs (package portal)
// and the MUCs hosted elsewhere that Matrix users join (package
// remotemuc). It owns what a message looks like on the other side:
// formatting (Matrix HTML and XEP-0393 styling, XEP-0071 XHTML-IM),
// mentions (Matrix pills and XEP-0372 references), the parts of replies and
// corrections that do not depend on the kind of room, files (signed links
// to Matrix media for XMPP, fetching what XMPP users share for Matrix), and
// the IDs that make sends idempotent.
//
// What differs between the kinds of room, such as who holds which nick or
// which stanza id names a Matrix event, comes in through Names or from the
// caller. The package imports only the leaf packages matrix-free: xmpp and
// mautrix's types; it never imports portal, remotemuc or bridge.
package msgconv
