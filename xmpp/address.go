package xmpp

import (
	"errors"
	"fmt"
	"strings"

	"mellium.im/xmpp/jid"
)

// The address scheme of the component. Every Matrix address the bridge shows
// to XMPP lives under the component's domain:
//
//	Matrix room alias #name:server  <->  MUC        #name#server@<domain>
//	Matrix user       @local:server <->  contact    local#server@<domain>
//
// Both halves of the localpart are escaped with XEP-0106, so a Matrix server
// name with a port (hs.example:8448) becomes hs.example\3a8448. JID localparts
// are case-folded by their PRECIS profile while Matrix aliases are not: the
// name a Parse function returns is the folded one, and callers that resolve it
// to a Matrix room must compare without regard to case.
//
// The leading '#' tells rooms from users; a Matrix user localpart may not
// begin with '#', so the two never collide. The server is split off at the last
// '#', since Matrix server names cannot contain one while alias names can.

// Errors returned by the Parse functions of Scheme.
var (
	ErrForeignDomain = errors.New("JID is not on the bridge's domain")
	ErrNotRoom       = errors.New("JID is not a bridged room")
	ErrNotUser       = errors.New("JID is not a bridged Matrix user")
)

// Scheme makes and parses the JIDs of the component's domain.
type Scheme struct {
	// Domain is the component's JID, e.g. matrix.example.org.
	Domain jid.JID
}

// RoomJID returns the MUC JID of the Matrix room alias #name:server.
func (s Scheme) RoomJID(name, server string) (jid.JID, error) {
	if name == "" || server == "" {
		return jid.JID{}, fmt.Errorf("room alias needs a name and a server")
	}
	return s.localJID("#", name, server)
}

// localJID makes the JID prefix+name#server@component, refusing names
// whose JID would not lead back to them: JID normalisation (PRECIS width
// mapping) can turn a character into one that escaping would have changed,
// such as a fullwidth '＠' into '@'.
func (s Scheme) localJID(prefix, name, server string) (jid.JID, error) {
	local, err := s.joinLocal(name, server)
	if err != nil {
		return jid.JID{}, err
	}
	j, err := newJID(prefix+local, s.Domain.Domainpart(), "")
	if err != nil {
		return jid.JID{}, err
	}
	n2, s2, ok := s.splitLocal(strings.TrimPrefix(j.Localpart(), prefix))
	if !ok {
		return jid.JID{}, fmt.Errorf("%q on %q has no stable JID", name, server)
	}
	again, err := s.joinLocal(n2, s2)
	if err != nil || prefix+again != j.Localpart() {
		return jid.JID{}, fmt.Errorf("%q on %q has no stable JID", name, server)
	}
	return j, nil
}

// ParseRoomJID returns the alias name and server of a MUC JID made by
// RoomJID. The resourcepart, if any, is ignored.
func (s Scheme) ParseRoomJID(j jid.JID) (name, server string, err error) {
	if j.Domainpart() != s.Domain.Domainpart() {
		return "", "", ErrForeignDomain
	}
	local, ok := strings.CutPrefix(j.Localpart(), "#")
	if !ok {
		return "", "", ErrNotRoom
	}
	name, server, ok = s.splitLocal(local)
	if !ok {
		return "", "", ErrNotRoom
	}
	return name, server, nil
}

// UserJID returns the contact JID of the Matrix user @local:server.
func (s Scheme) UserJID(local, server string) (jid.JID, error) {
	if local == "" || server == "" || strings.HasPrefix(local, "#") {
		return jid.JID{}, fmt.Errorf("%w: user ID needs a localpart not starting with '#' and a server", ErrNotUser)
	}
	return s.localJID("", local, server)
}

// ParseUserJID returns the localpart and server of a contact JID made by
// UserJID. The resourcepart, if any, is ignored.
func (s Scheme) ParseUserJID(j jid.JID) (local, server string, err error) {
	if j.Domainpart() != s.Domain.Domainpart() {
		return "", "", ErrForeignDomain
	}
	if strings.HasPrefix(j.Localpart(), "#") {
		return "", "", ErrNotUser
	}
	local, server, ok := s.splitLocal(j.Localpart())
	if !ok {
		return "", "", ErrNotUser
	}
	return local, server, nil
}

func (s Scheme) joinLocal(name, server string) (string, error) {
	if strings.Contains(server, "#") {
		return "", fmt.Errorf("server name %q contains '#'", server)
	}
	n, err := EscapeLocal(name)
	if err != nil {
		return "", err
	}
	srv, err := EscapeLocal(server)
	if err != nil {
		return "", err
	}
	return n + "#" + srv, nil
}

func (s Scheme) splitLocal(local string) (name, server string, ok bool) {
	i := strings.LastIndexByte(local, '#')
	if i <= 0 || i == len(local)-1 {
		return "", "", false
	}
	return UnescapeLocal(local[:i]), UnescapeLocal(local[i+1:]), true
}
