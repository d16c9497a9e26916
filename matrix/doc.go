// Package matrix is the bridge's Matrix side: the application service that the
// homeserver pushes transactions to, the registration it is known by, and the
// calls the bridge makes as its bot and as the puppets of XMPP users.
//
// It knows nothing of XMPP and imports neither the xmpp nor the database
// package of this module. Events go up through Handler; a puppet is named by
// an opaque remote ID string that the caller chooses (the XMPP user's bare JID).
package matrix
