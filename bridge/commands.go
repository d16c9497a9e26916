package bridge

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"mellium.im/xmpp/jid"

	"github.com/mxpp/mxpp/database"
	"github.com/mxpp/mxpp/portal"
	"github.com/mxpp/mxpp/xmpp"
)

// Who may run a command.
const (
	needUser      = "user"
	needMember    = "room member"
	needRoomAdmin = "room admin"
	needAdmin     = "admin"
)

// cmdEnv is one run of a command, from Matrix or from XMPP.
type cmdEnv struct {
	b      *Bridge
	sender id.UserID  // the Matrix user, "" for an XMPP admin
	xmpp   jid.JID    // the XMPP admin, zero for a Matrix user
	room   id.RoomID  // the room the command is about, "" if none
	event  id.EventID // the command's Matrix event, "" from XMPP
	args   []string
}

// who names the sender for logs and the audit trail.
func (e *cmdEnv) who() string {
	if e.sender != "" {
		return e.sender.String()
	}
	return e.xmpp.String()
}

// command is one bot command.
type command struct {
	name, usage, help string
	need              string
	room              bool // needs a room: the one it is sent in, or an alias argument
	xmpp              bool // offered to XMPP admins as an ad-hoc command (XEP-0050)
	arg               string
	run               func(ctx context.Context, e *cmdEnv) (string, error)
}

// errUsage makes a command answer with its usage.
var errUsage = errors.New("usage")

func (b *Bridge) commandList() []*command {
	return []*command{
		{name: "help", help: "list the commands you may run", need: needUser, run: b.cmdHelp},
		{name: "ping", help: "check the links to the XMPP server and the homeserver", need: needUser, xmpp: true, run: b.cmdPing},
		{name: "version", help: "show the bridge's version", need: needUser, xmpp: true, run: b.cmdVersion},
		{name: "rooms", help: "list the rooms XMPP users can reach, with their addresses", need: needUser, xmpp: true, run: b.cmdRooms},
		{name: "join", usage: "<room@service | xmpp:room@service?join> [password]", help: "join a groupchat on any XMPP service: the bot invites you to its portal room",
			need: needUser, run: b.cmdJoin},
		{name: "occupants", help: "list the XMPP users in this room", need: needMember, room: true, run: b.cmdOccupants},
		{name: "expose", help: "open this room to XMPP users", need: needRoomAdmin, room: true, run: b.cmdExpose},
		{name: "unexpose", help: "close this room to XMPP users, removing those in it", need: needRoomAdmin, room: true, run: b.cmdUnexpose},
		{name: "allow-domain", usage: "[domain | *.domain | -domain]", help: "show or change the XMPP domains allowed in this room",
			need: needRoomAdmin, room: true, run: b.cmdDomains(true)},
		{name: "deny-domain", usage: "[domain | *.domain | -domain]", help: "show or change the XMPP domains refused in this room",
			need: needRoomAdmin, room: true, run: b.cmdDomains(false)},
		{name: "allow-pm", usage: "[on | off]", help: "show or change whether XMPP occupants may send private messages in this room",
			need: needRoomAdmin, room: true, run: b.cmdAllowPM},
		{name: "status", help: "show uptime, rooms, puppets, occupants and queues", need: needAdmin, xmpp: true, run: b.cmdStatus},
		{name: "contacts", help: "list the XMPP users who see your presence, wait for your answer, or are denied or blocked", need: needUser, run: b.cmdContacts},
		{name: "allow", usage: "<jid>", help: "let an XMPP user see your presence", need: needUser, run: b.cmdContact(database.ContactAllowed)},
		{name: "deny", usage: "<jid>", help: "refuse an XMPP user your presence", need: needUser, run: b.cmdContact(database.ContactDenied)},
		{name: "block", usage: "<jid>", help: "refuse an XMPP user your presence and their messages", need: needUser, run: b.cmdContact(database.ContactBlocked)},
		{name: "unblock", usage: "<jid>", help: "lift a block", need: needUser, run: b.cmdContact("")},
		{name: "privacy", help: "show the privacy report: who takes part, what is stored and logged", need: needAdmin, xmpp: true, run: b.cmdPrivacy},
		{name: "kick", usage: "<jid>", help: "remove an XMPP user from every room", need: needAdmin, xmpp: true, arg: "jid", run: b.cmdKick(false)},
		{name: "ban", usage: "<jid>", help: "remove an XMPP user from every room and keep them out", need: needAdmin, xmpp: true, arg: "jid", run: b.cmdKick(true)},
		{name: "unban", usage: "<jid>", help: "let a banned XMPP user in again", need: needAdmin, xmpp: true, arg: "jid", run: b.cmdUnban},
		{name: "forget", usage: "<jid>", help: "remove an XMPP user everywhere and erase its puppet and mappings", need: needAdmin, xmpp: true, arg: "jid", run: b.cmdForget},
		{name: "reconnect", help: "reconnect the XMPP component", need: needAdmin, xmpp: true, run: b.cmdReconnect},
	}
}

func (b *Bridge) findCommand(name string) *command {
	for _, c := range b.commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

// allowed reports whether the sender may run a command.
func (b *Bridge) allowed(ctx context.Context, c *command, e *cmdEnv) bool {
	if e.sender == "" {
		return c.xmpp // XMPP admins, already checked
	}
	switch c.need {
	case needUser:
		return b.Config.hasLevel(e.sender, LevelUser)
	case needMember, needRoomAdmin:
		if b.Config.hasLevel(e.sender, LevelAdmin) {
			return true
		}
		if !b.Config.hasLevel(e.sender, LevelUser) || e.room == "" {
			return false
		}
		if c.need == needRoomAdmin {
			pl, err := b.Matrix.RoomPowerLevels(ctx, e.room)
			return err == nil && pl.GetUserLevel(e.sender) >= pl.GetEventLevel(event.StatePowerLevels)
		}
		// What a room holds (its XMPP users' addresses) is for its
		// members, and the bridge's admins.
		joined, err := b.Matrix.IsJoined(ctx, e.room, e.sender)
		if err != nil {
			zerolog.Ctx(ctx).Warn().Err(err).Msg("Failed to check a command sender's membership")
		}
		return joined
	}
	return b.Config.hasLevel(e.sender, LevelAdmin)
}

// runCommand runs a command line and returns the answer.
func (b *Bridge) runCommand(ctx context.Context, e *cmdEnv, line string) string {
	fields := strings.Fields(line)
	if len(fields) == 0 {
		return "Send `help` for the list of commands."
	}
	c := b.findCommand(strings.ToLower(fields[0]))
	if c == nil {
		return fmt.Sprintf("Unknown command %q. Send `help` for the list of commands.", fields[0])
	}
	e.args = fields[1:]
	if c.room && e.sender != "" && len(e.args) > 0 && strings.HasPrefix(e.args[0], "#") {
		// The room is named by alias: a command sent from the bot's direct
		// chat, or about another room.
		roomID, err := b.Matrix.ResolveAlias(ctx, id.RoomAlias(e.args[0]))
		if err != nil {
			return fmt.Sprintf("There is no room %s.", e.args[0])
		}
		e.room, e.args = roomID, e.args[1:]
	}
	if c.room && e.room == "" {
		return fmt.Sprintf("Usage: `%s #alias:%s %s`, or send it in the room", c.name, b.Config.Homeserver.Domain, c.usage)
	}
	log := b.Audit.With().Str("action", "command").Str("command", c.name).Str("by", e.who()).Stringer("room_id", e.room).Logger()
	if !b.allowed(ctx, c, e) {
		log.Info().Str("result", "denied").Msg("Refused a bot command")
		return fmt.Sprintf("You may not run `%s`: it needs %s rights.", c.name, c.need)
	}
	out, err := c.run(ctx, e)
	switch {
	case errors.Is(err, errUsage):
		return fmt.Sprintf("Usage: `%s %s` (%s)", c.name, c.usage, c.help)
	case err != nil:
		if c.need != needUser {
			log.Info().Err(err).Str("result", "failed").Msg("Bot command failed")
		}
		return "Failed: " + err.Error()
	}
	if c.need != needUser {
		log.Info().Str("result", "ok").Strs("args", e.args).Msg("Ran a bot command")
	}
	return out
}

func (b *Bridge) cmdHelp(ctx context.Context, e *cmdEnv) (string, error) {
	var lines []string
	for _, c := range b.commands {
		if b.allowed(ctx, c, e) || ((c.need == needRoomAdmin || c.need == needMember) && e.room == "" && b.Config.hasLevel(e.sender, LevelUser)) {
			lines = append(lines, strings.TrimSpace(fmt.Sprintf("%s %s", c.name, c.usage))+" — "+c.help)
		}
	}
	prefix := b.Config.Bridge.CommandPrefix
	return fmt.Sprintf("Commands (in a room, start them with %s):\n%s", prefix, strings.Join(lines, "\n")), nil
}

func (b *Bridge) cmdPing(ctx context.Context, _ *cmdEnv) (string, error) {
	xmppState := "not connected"
	if b.XMPP.Connected() {
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		rtt, err := b.XMPP.Ping(pctx)
		cancel()
		if err != nil {
			xmppState = "connected, but the XMPP server did not answer a ping: " + err.Error()
		} else {
			xmppState = fmt.Sprintf("connected, round trip %s", rtt.Round(10*time.Microsecond))
		}
	}
	hs := "reachable"
	if _, err := b.Matrix.Bot().Whoami(ctx); err != nil {
		hs = "not reachable: " + err.Error()
	}
	return fmt.Sprintf("XMPP component %s: %s. Homeserver: %s.", b.XMPP.Domain(), xmppState, hs), nil
}

func (b *Bridge) cmdVersion(context.Context, *cmdEnv) (string, error) {
	return "mxpp " + b.Version, nil
}

func (b *Bridge) cmdRooms(ctx context.Context, _ *cmdEnv) (string, error) {
	var out []string
	if rooms := b.listRooms(ctx); len(rooms) == 0 {
		out = append(out, "No room is reachable from XMPP.")
	} else {
		lines := []string{fmt.Sprintf("Rooms reachable from XMPP (%s):", b.Config.Bridge.Exposure)}
		for _, r := range rooms {
			lines = append(lines, fmt.Sprintf("%s — %s (%s)", r.name, r.jid, xmpp.URI(r.jid, "join")))
		}
		out = append(out, strings.Join(lines, "\n"))
	}
	remote, err := b.DB.Portal.GetRemote(ctx)
	if err != nil {
		return "", err
	}
	if len(remote) > 0 {
		lines := []string{"Groupchats hosted elsewhere with a portal room here:"}
		for _, row := range remote {
			lines = append(lines, fmt.Sprintf("%s — %s", row.RemoteJID, row.Alias))
		}
		out = append(out, strings.Join(lines, "\n"))
	}
	return strings.Join(out, "\n\n"), nil
}

func (b *Bridge) cmdOccupants(ctx context.Context, e *cmdEnv) (string, error) {
	rows, err := b.DB.Occupant.GetByRoom(ctx, e.room)
	if err != nil {
		return "", err
	}
	seen := map[string]string{}
	for _, o := range rows {
		seen[o.UserJID] = o.Nick
	}
	if len(seen) == 0 {
		return "No XMPP user is in this room.", nil
	}
	var lines []string
	for j, nick := range seen {
		lines = append(lines, fmt.Sprintf("%s (%s)", nick, j))
	}
	sort.Strings(lines)
	return fmt.Sprintf("XMPP users in this room:\n%s", strings.Join(lines, "\n")), nil
}

func (b *Bridge) cmdExpose(ctx context.Context, e *cmdEnv) (string, error) {
	if b.Config.Bridge.Exposure != ExposureOptIn {
		return fmt.Sprintf("This bridge runs with exposure %q: rooms are not exposed one by one.", b.Config.Bridge.Exposure), nil
	}
	muc, marked, encrypted, err := b.expose(ctx, e.room, e.sender)
	if err != nil {
		return "", err
	}
	text := fmt.Sprintf("This room is now reachable from XMPP as %s (%s). XMPP users who join see the messages "+
		"sent from now on, appear here as users of this homeserver, and their messages appear here.", muc, xmpp.URI(muc, "join"))
	if encrypted {
		text += decryptNotice
	}
	if !marked {
		text += " Note: the bot could not mark the room as bridged (m.bridge state event); " +
			"give it the power level to send state events and run expose again."
	}
	// The answer, in the room, is the announcement: one message for all.
	return text, nil
}

func (b *Bridge) cmdUnexpose(ctx context.Context, e *cmdEnv) (string, error) {
	if err := b.unexpose(ctx, e.room, e.sender); err != nil {
		return "", err
	}
	if _, err := b.Matrix.SendNotice(ctx, e.room, "This room is no longer reachable from XMPP.", ""); err != nil {
		b.Log.Warn().Err(err).Msg("Failed to announce the end of the exposure in the room")
	}
	return "Done: the room is closed to XMPP and its XMPP users were removed.", nil
}

// cmdDomains shows or changes a room's allowed or denied domains.
func (b *Bridge) cmdDomains(allow bool) func(ctx context.Context, e *cmdEnv) (string, error) {
	return func(ctx context.Context, e *cmdEnv) (string, error) {
		settings, err := b.DB.Settings.Get(ctx, e.room)
		if err != nil {
			return "", err
		}
		list := &settings.DeniedDomains
		what := "refused"
		if allow {
			list, what = &settings.AllowedDomains, "allowed"
		}
		if len(e.args) == 0 {
			if len(*list) == 0 {
				return fmt.Sprintf("This room has no domains of its own %s (the bridge's lists apply).", what), nil
			}
			return fmt.Sprintf("Domains %s in this room: %s", what, strings.Join(*list, ", ")), nil
		}
		if len(e.args) != 1 {
			return "", errUsage
		}
		pattern, remove := strings.CutPrefix(strings.ToLower(e.args[0]), "-")
		if err := xmpp.CheckDomainPattern(pattern); err != nil {
			return "", err
		}
		var out []string
		for _, d := range *list {
			if d != pattern {
				out = append(out, d)
			}
		}
		if !remove {
			out = append(out, pattern)
		}
		*list = out
		if err = b.DB.Settings.Put(ctx, settings); err != nil {
			return "", err
		}
		b.settingsChanged(ctx, e.room)
		if len(out) == 0 {
			return fmt.Sprintf("This room has no domains of its own %s now.", what), nil
		}
		return fmt.Sprintf("Domains %s in this room: %s", what, strings.Join(out, ", ")), nil
	}
}

// cmdAllowPM shows or turns private messages in a room on or off.
func (b *Bridge) cmdAllowPM(ctx context.Context, e *cmdEnv) (string, error) {
	settings, err := b.DB.Settings.Get(ctx, e.room)
	if err != nil {
		return "", err
	}
	say := func() string {
		if settings.PMOff {
			return "Private messages in this room: off (XMPP occupants may not send them)."
		}
		return "Private messages in this room: on (an XMPP occupant's private message to a Matrix member opens a private chat with them)."
	}
	switch {
	case len(e.args) == 0:
		return say(), nil
	case len(e.args) == 1 && (e.args[0] == "on" || e.args[0] == "off"):
		settings.PMOff = e.args[0] == "off"
	default:
		return "", errUsage
	}
	if err = b.DB.Settings.Put(ctx, settings); err != nil {
		return "", err
	}
	b.Audit.Info().Str("action", "allow_pm").Stringer("by", e.sender).Stringer("room_id", e.room).
		Str("result", e.args[0]).Msg("Private messages in a room turned " + e.args[0])
	b.settingsChanged(ctx, e.room)
	return say(), nil
}

// settingsChanged makes a room's running portal apply its new settings.
func (b *Bridge) settingsChanged(ctx context.Context, roomID id.RoomID) {
	p, err := b.hostedByRoom(ctx, roomID)
	if err != nil || p == nil {
		return
	}
	done := make(chan struct{})
	if p.Queue(ctx, portal.SettingsChanged{Done: done}) {
		select {
		case <-done:
		case <-ctx.Done():
		}
	}
}

// cmdPrivacy answers the privacy report, as mxpp privacy-report prints it.
func (b *Bridge) cmdPrivacy(ctx context.Context, _ *cmdEnv) (string, error) {
	r, err := BuildPrivacyReport(ctx, b.Config, b.DB)
	if err != nil {
		return "", err
	}
	return r.Markdown(), nil
}

func (b *Bridge) cmdStatus(ctx context.Context, _ *cmdEnv) (string, error) {
	portals, err := b.DB.Portal.GetAll(ctx)
	if err != nil {
		return "", err
	}
	puppets, err := b.DB.Puppet.Count(ctx)
	if err != nil {
		return "", err
	}
	occupants, err := b.DB.Occupant.Count(ctx)
	if err != nil {
		return "", err
	}
	directs, err := b.DB.Portal.CountDirect(ctx)
	if err != nil {
		return "", err
	}
	remote, err := b.DB.Portal.CountRemote(ctx)
	if err != nil {
		return "", err
	}
	remoteOccupants, err := b.DB.RemoteOccupant.CountActive(ctx)
	if err != nil {
		return "", err
	}
	b.mu.Lock()
	running, remoteRunning, queued := 0, 0, 0
	for _, p := range b.byRoom {
		switch row := p.Row(); {
		case row.IsRemote():
			remoteRunning++
		case !row.IsDirect():
			running++
		}
		queued += p.QueueLen()
	}
	b.mu.Unlock()
	link := "connected"
	if !b.XMPP.Connected() {
		link = "not connected"
	}
	return fmt.Sprintf("mxpp %s, up %s. Exposure: %s. XMPP component: %s.\nPortals: %d (%d running). "+
		"Portals into MUCs hosted elsewhere: %d (%d running), Matrix users in them: %d. Direct chats: %d. "+
		"Puppets: %d. Occupant sessions: %d. Queued events: %d.", b.Version, time.Since(b.started).Round(time.Second),
		b.Config.Bridge.Exposure, link, len(portals), running, remote, remoteRunning, remoteOccupants, directs, puppets, occupants, queued), nil
}

// argJID parses the JID argument of an admin command.
func argJID(e *cmdEnv) (jid.JID, error) {
	if len(e.args) != 1 {
		return jid.JID{}, errUsage
	}
	var j jid.JID
	var err error
	if strings.HasPrefix(strings.ToLower(e.args[0]), "xmpp:") {
		j, _, err = xmpp.ParseURI(e.args[0])
	} else {
		j, err = xmpp.ParseJID(e.args[0])
	}
	if err != nil || j.Localpart() == "" {
		return jid.JID{}, fmt.Errorf("%q is not a JID such as user@example.org", e.args[0])
	}
	return j.Bare(), nil
}

// removeEverywhere takes an XMPP user out of every room it is in.
func (b *Bridge) removeEverywhere(ctx context.Context, bare jid.JID, reason string, ban bool) (int, error) {
	rows, err := b.DB.Occupant.GetByUser(ctx, bare.String())
	if err != nil {
		return 0, err
	}
	rooms := map[id.RoomID]bool{}
	for _, r := range rows {
		rooms[r.RoomID] = true
	}
	directs, err := b.DB.Portal.GetDirectByJID(ctx, bare.String())
	if err != nil {
		return 0, err
	}
	for _, r := range directs {
		rooms[r.RoomID] = true
	}
	n := 0
	for roomID := range rooms {
		p, err := b.hostedByRoom(ctx, roomID)
		if err != nil || p == nil {
			continue
		}
		done := make(chan bool, 1)
		if p.Queue(ctx, portal.Remove{Bare: bare, Reason: reason, Ban: ban, Done: done}) {
			select {
			case in := <-done:
				if in {
					n++
				}
			case <-ctx.Done():
				return n, ctx.Err()
			}
		}
	}
	return n, nil
}

func (b *Bridge) cmdKick(ban bool) func(ctx context.Context, e *cmdEnv) (string, error) {
	return func(ctx context.Context, e *cmdEnv) (string, error) {
		bare, err := argJID(e)
		if err != nil {
			return "", err
		}
		if ban {
			if err = b.setBanned(ctx, bare.String(), true); err != nil {
				return "", err
			}
		}
		n, err := b.removeEverywhere(ctx, bare, "Removed by a bridge admin", ban)
		if err != nil {
			return "", err
		}
		if ban {
			return fmt.Sprintf("Banned %s from the bridge; removed from %d room(s).", bare, n), nil
		}
		return fmt.Sprintf("Removed %s from %d room(s).", bare, n), nil
	}
}

func (b *Bridge) cmdUnban(ctx context.Context, e *cmdEnv) (string, error) {
	bare, err := argJID(e)
	if err != nil {
		return "", err
	}
	if err = b.setBanned(ctx, bare.String(), false); err != nil {
		return "", err
	}
	return fmt.Sprintf("%s may use the bridge again.", bare), nil
}

// cmdForget removes an XMPP user everywhere and erases its puppet and
// every mapping that names it.
func (b *Bridge) cmdForget(ctx context.Context, e *cmdEnv) (string, error) {
	bare, err := argJID(e)
	if err != nil {
		return "", err
	}
	n, err := b.forget(ctx, bare)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("Forgot %s: removed from %d room(s), puppet and mappings erased.", bare, n), nil
}

func (b *Bridge) cmdReconnect(context.Context, *cmdEnv) (string, error) {
	b.XMPP.Reconnect()
	return "Reconnecting the XMPP component.", nil
}
