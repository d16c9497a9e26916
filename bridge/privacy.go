package bridge

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/id"
	"mellium.im/xmpp/jid"

	"github.com/mxpp/mxpp/database"
	"github.com/mxpp/mxpp/database/upgrades"
	"github.com/mxpp/mxpp/portal"
	"github.com/mxpp/mxpp/xmpp"
)

// The privacy report: what leaves the Matrix side through this bridge, who
// takes part, and what is kept and logged, for an operator's
// data-protection assessment. Every line is read from the config and the
// database as they are, never written by hand: the table descriptions are
// the schema's own comments, the audit actions a list a test holds to the
// code.

// PrivacyReport is the report's content; its JSON form is -json's output.
type PrivacyReport struct {
	Generated     time.Time         `json:"generated"`
	Component     string            `json:"component"`
	Homeserver    string            `json:"homeserver"`
	Exposure      ReportExposure    `json:"exposure"`
	Rooms         []ReportRoom      `json:"rooms"`
	RemoteRooms   []string          `json:"remote_rooms"`
	DirectChats   ReportDirect      `json:"direct_chats"`
	Subscriptions string            `json:"subscriptions"`
	UserSearch    string            `json:"user_search"`
	Presence      bool              `json:"presence"`
	XMPPDomains   ReportDomains     `json:"xmpp_domains"`
	MatrixUsers   map[string]string `json:"matrix_users"`
	XMPPAdmins    []string          `json:"xmpp_admins"`
	Storage       ReportStorage     `json:"storage"`
	Logging       ReportLogging     `json:"logging"`
	Encryption    ReportEncryption  `json:"encryption"`
	Media         ReportMedia       `json:"media"`
	Audit         ReportAudit       `json:"audit"`
}

// ReportExposure is bridge.exposure and what it means.
type ReportExposure struct {
	Mode string `json:"mode"`
	Rule string `json:"rule"`
}

// ReportRoom is a Matrix room XMPP users can reach, or could, with its
// rule and its own domain lists.
type ReportRoom struct {
	RoomID         id.RoomID `json:"room_id"`
	Alias          string    `json:"alias,omitempty"`
	MUC            string    `json:"muc,omitempty"`
	Reachable      bool      `json:"reachable"`
	Rule           string    `json:"rule"`
	ExposedBy      id.UserID `json:"exposed_by,omitempty"`
	ExposedAt      time.Time `json:"exposed_at,omitzero"`
	AllowedDomains []string  `json:"allowed_domains,omitempty"`
	DeniedDomains  []string  `json:"denied_domains,omitempty"`
}

// ReportDirect is bridge.direct_messages and how many chats are open.
type ReportDirect struct {
	Enabled bool `json:"enabled"`
	Open    int  `json:"open"`
}

// ReportDomains are the bridge-wide XMPP domain lists.
type ReportDomains struct {
	Allowed []string `json:"allowed"`
	Denied  []string `json:"denied"`
}

// ReportStorage is the database and what each table holds.
type ReportStorage struct {
	Database         string        `json:"database"`
	Tables           []ReportTable `json:"tables"`
	MessageRetention string        `json:"message_retention"`
	PuppetRetention  string        `json:"puppet_retention"`
}

// ReportTable is one table: its rows now and what it holds.
type ReportTable struct {
	Name  string `json:"name"`
	Rows  int    `json:"rows"`
	Holds string `json:"holds"`
}

// ReportLogging is what the bridge log holds at the configured level.
type ReportLogging struct {
	Level        string `json:"level"`
	RedactBodies bool   `json:"redact_bodies"`
	Holds        string `json:"holds"`
}

// ReportEncryption is whether and how encrypted rooms are bridged.
type ReportEncryption struct {
	Decrypts     bool   `json:"decrypts"`
	Default      bool   `json:"default"`
	Require      bool   `json:"require"`
	VerifiedOnly bool   `json:"verified_only"`
	Meaning      string `json:"meaning"`
}

// ReportMedia is where the links to Matrix files point and what the
// bridge fetches.
type ReportMedia struct {
	LinkBase             string `json:"link_base"`
	LinkTTL              string `json:"link_ttl"`
	FetchesShared        bool   `json:"fetches_shared_files"`
	MaxSize              int64  `json:"max_size"`
	AllowPrivateNetworks bool   `json:"allow_private_networks"`
}

// ReportAudit is the audit log and what it records.
type ReportAudit struct {
	File    string            `json:"file"`
	Actions map[string]string `json:"actions"`
}

// auditActions are the actions the audit log records, by its action
// field. TestAuditActionsListed holds this list and the code's audit lines
// to each other.
var auditActions = map[string]string{
	"expose":      "a room exposed to XMPP: by whom, the room, its MUC address",
	"unexpose":    "a room closed to XMPP: by whom, the room",
	"close":       "a room the bridge closed itself (exposure mode, encryption policy)",
	"join":        "an XMPP user of another domain joining a room, or refused",
	"remove":      "an XMPP user removed from a room (kick, ban, a denied domain)",
	"stanza":      "a stanza refused by the domain lists: sender and address",
	"join_remote": "a Matrix user in a MUC hosted elsewhere: joined, refused or removed",
	"open_remote": "a portal into a MUC hosted elsewhere opened, or refused: by whom",
	"direct_chat": "a direct chat or private chat (from a room) opened, accepted or refused: both sides",
	"allow_pm":    "private messages in a room turned on or off: by whom, the room",
	"invite":      "invitations to XMPP users refused for their rate: by whom",
	"new_puppet":  "puppets for homeserver lookups refused for their rate: the JID",
	"command":     "bot and ad-hoc commands above user rights: who, which, the result",
	"erase":       "a Matrix user's mappings erased after they left every bridged room",
	"forget":      "an XMPP user's puppet and mappings erased (forget)",
}

// storeTables describes the tables of mautrix's stores, which the bridge's
// schema does not hold, by prefix.
var storeTables = map[string]string{
	"mx_":     "mautrix's state store: the membership, names, power levels and encryption settings of the bridged rooms, as the homeserver tells them",
	"crypto_": "mautrix's crypto store: the bot device's keys, sessions and the room keys it received (pickled with encryption.pickle_key)",
}

// BuildPrivacyReport reads the report from the config and the database.
func BuildPrivacyReport(ctx context.Context, cfg *Config, db *database.Database) (*PrivacyReport, error) {
	r := &PrivacyReport{
		Generated:  time.Now().UTC().Truncate(time.Second),
		Component:  cfg.XMPP.Domain,
		Homeserver: cfg.Homeserver.Domain,
		Exposure:   ReportExposure{Mode: cfg.Bridge.Exposure, Rule: exposureRule(cfg.Bridge.Exposure)},
		XMPPDomains: ReportDomains{Allowed: orNone(cfg.XMPP.AllowedDomains, "*"),
			Denied: orNone(cfg.XMPP.DeniedDomains)},
		MatrixUsers:   maps.Clone(cfg.Bridge.Permissions),
		XMPPAdmins:    orNone(cfg.XMPP.Admins),
		DirectChats:   ReportDirect{Enabled: cfg.Bridge.DirectMessages},
		Subscriptions: cfg.Bridge.Subscriptions,
		UserSearch:    cfg.Bridge.UserSearch,
		Presence:      cfg.Bridge.Presence.Enabled,
		Storage: ReportStorage{Database: describeDatabase(cfg.Database),
			MessageRetention: cfg.Bridge.MessageRetention.String(), PuppetRetention: cfg.Bridge.PuppetRetention.String()},
		Logging: ReportLogging{Level: cfg.Logging.Level, RedactBodies: cfg.Logging.RedactBodies,
			Holds: loggingHolds(cfg.Logging)},
		Encryption: ReportEncryption{Decrypts: cfg.Encryption.Allow, Default: cfg.Encryption.Default,
			Require: cfg.Encryption.Require, VerifiedOnly: cfg.Encryption.VerifiedOnly, Meaning: encryptionMeaning(cfg)},
		Media: ReportMedia{LinkBase: mediaBase(cfg), LinkTTL: cfg.Bridge.Media.LinkTTL.String(),
			FetchesShared: cfg.Bridge.Media.MaxSize > 0, MaxSize: cfg.Bridge.Media.MaxSize,
			AllowPrivateNetworks: cfg.Bridge.Media.AllowPrivateNetworks},
		Audit: ReportAudit{File: orDefault(cfg.Logging.AuditFile, "the bridge log (no audit_file)"), Actions: auditActions},
	}
	domain, err := jid.New("", cfg.XMPP.Domain, "")
	if err != nil {
		return nil, fmt.Errorf("xmpp.domain: %w", err)
	}
	scheme := xmpp.Scheme{Domain: domain}
	if err = r.readRooms(ctx, cfg, db, scheme); err != nil {
		return nil, err
	}
	rows, err := db.TableRows(ctx)
	if err != nil {
		return nil, err
	}
	comments := upgrades.TableComments()
	for _, name := range slices.Sorted(maps.Keys(rows)) {
		holds := comments[name]
		for prefix, what := range storeTables {
			if holds == "" && strings.HasPrefix(name, prefix) {
				holds = what
			}
		}
		r.Storage.Tables = append(r.Storage.Tables, ReportTable{Name: name, Rows: rows[name], Holds: holds})
	}
	return r, nil
}

// readRooms lists the rooms with a portal or settings of their own, the
// portals into MUCs elsewhere, and counts the direct chats.
func (r *PrivacyReport) readRooms(ctx context.Context, cfg *Config, db *database.Database, scheme xmpp.Scheme) error {
	portals, err := db.Portal.GetAll(ctx)
	if err != nil {
		return err
	}
	settings, err := db.Settings.GetAll(ctx)
	if err != nil {
		return err
	}
	rooms := map[id.RoomID]*ReportRoom{}
	room := func(roomID id.RoomID) *ReportRoom {
		if rooms[roomID] == nil {
			rooms[roomID] = &ReportRoom{RoomID: roomID}
		}
		return rooms[roomID]
	}
	for _, p := range portals { // the rooms the component hosts
		rr := room(p.RoomID)
		rr.Alias = p.Alias.String()
		if muc, err := portal.MUCJID(scheme, p.Alias); err == nil {
			rr.MUC = muc.String()
		}
	}
	remote, err := db.Portal.GetRemote(ctx)
	if err != nil {
		return err
	}
	for _, p := range remote {
		r.RemoteRooms = append(r.RemoteRooms, p.RemoteJID)
	}
	if r.DirectChats.Open, err = db.Portal.CountDirect(ctx); err != nil {
		return err
	}
	for _, s := range settings {
		rr := room(s.RoomID)
		if s.Exposed {
			rr.ExposedBy, rr.ExposedAt = s.ExposedBy, s.ExposedAt.UTC()
		}
		rr.AllowedDomains, rr.DeniedDomains = s.AllowedDomains, s.DeniedDomains
	}
	for _, rr := range rooms {
		switch {
		case cfg.Bridge.Exposure == ExposureOff:
			rr.Rule = "exposure is off"
		case !rr.ExposedAt.IsZero():
			rr.Reachable, rr.Rule = true, "exposed by "+rr.ExposedBy.String()
		case cfg.Bridge.Exposure == ExposurePublic:
			rr.Reachable, rr.Rule = true, "has a portal; reachable while it is in the public room directory"
		default:
			rr.Rule = "not exposed (opt-in)"
		}
		r.Rooms = append(r.Rooms, *rr)
	}
	slices.SortFunc(r.Rooms, func(a, b ReportRoom) int { return strings.Compare(string(a.RoomID), string(b.RoomID)) })
	return nil
}

func exposureRule(mode string) string {
	switch mode {
	case ExposureOptIn:
		return "a room is reachable from XMPP once a room admin exposes it (the expose command)"
	case ExposurePublic:
		return "every room in the homeserver's public room directory is reachable from XMPP, and rooms exposed explicitly"
	case ExposureOff:
		return "no room is reachable from XMPP"
	}
	return "unknown mode"
}

func loggingHolds(l LoggingConfig) string {
	switch {
	case l.Level == "trace" && !l.RedactBodies:
		return "at level trace: every request and stanza on the wire, message bodies included (logging.redact_bodies is off)"
	case l.Level == "trace":
		return "at level trace: every request and stanza on the wire, message bodies redacted"
	case l.Level == "debug":
		return "at level debug: every transaction's and message's IDs, JIDs, Matrix user IDs and request URLs; no message bodies"
	}
	return "at level " + l.Level + ": joins, leaves, errors and warnings with JIDs, Matrix user IDs and room IDs; no message bodies"
}

func encryptionMeaning(cfg *Config) string {
	switch {
	case !cfg.Encryption.Allow:
		return "encrypted rooms are not bridged"
	case cfg.Encryption.Require:
		return "only encrypted rooms are bridged; the bridge decrypts what Matrix members send (XMPP users read it unencrypted) and encrypts what XMPP users send"
	default:
		return "encrypted rooms are bridged: the bridge decrypts what Matrix members send (XMPP users read it unencrypted) and encrypts what XMPP users send"
	}
}

func mediaBase(cfg *Config) string {
	if cfg.Bridge.Media.PublicURL != "" {
		return cfg.Bridge.Media.PublicURL
	}
	return cfg.Appservice.Address
}

// describeDatabase names the database without its password.
func describeDatabase(c database.Config) string {
	if c.Type != database.TypePostgres {
		return "SQLite: " + c.URI
	}
	if u, err := url.Parse(c.URI); err == nil {
		if u.User != nil {
			u.User = url.User(u.User.Username())
		}
		return "PostgreSQL: " + u.Redacted()
	}
	return "PostgreSQL"
}

func orNone(list []string, none ...string) []string {
	if len(list) == 0 {
		return append([]string{}, none...)
	}
	return slices.Clone(list)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// WriteJSON writes the report as indented JSON.
func (r *PrivacyReport) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// Markdown renders the report for people.
func (r *PrivacyReport) Markdown() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	list := func(items []string) string {
		if len(items) == 0 {
			return "none"
		}
		return "`" + strings.Join(items, "`, `") + "`"
	}
	p("# Privacy report: %s ⇄ %s", r.Homeserver, r.Component)
	p("")
	p("Generated %s from the bridge's config and database.", r.Generated.Format(time.RFC3339))
	p("")
	p("## Who and what takes part")
	p("")
	p("- Exposure `%s`: %s.", r.Exposure.Mode, r.Exposure.Rule)
	reachable := 0
	for _, room := range r.Rooms {
		if room.Reachable {
			reachable++
		}
	}
	p("- Rooms with a portal or settings of their own: %d, of which reachable from XMPP: %d.", len(r.Rooms), reachable)
	for _, room := range r.Rooms {
		line := fmt.Sprintf("  - `%s`", room.RoomID)
		if room.Alias != "" {
			line += fmt.Sprintf(" (`%s`, MUC `%s`)", room.Alias, room.MUC)
		}
		line += ": " + room.Rule
		if len(room.AllowedDomains) > 0 {
			line += "; own allowed domains " + list(room.AllowedDomains)
		}
		if len(room.DeniedDomains) > 0 {
			line += "; own denied domains " + list(room.DeniedDomains)
		}
		p("%s", line)
	}
	p("- XMPP domains allowed: %s; denied: %s.", list(r.XMPPDomains.Allowed), list(r.XMPPDomains.Denied))
	users := make([]string, 0, len(r.MatrixUsers))
	for _, u := range slices.Sorted(maps.Keys(r.MatrixUsers)) {
		users = append(users, u+": "+r.MatrixUsers[u])
	}
	p("- Matrix users and their levels (`bridge.permissions`): %s.", list(users))
	p("- XMPP admins (ad-hoc commands): %s.", list(r.XMPPAdmins))
	p("- Portals into MUCs hosted elsewhere: %d %s.", len(r.RemoteRooms), list(r.RemoteRooms))
	p("- Direct chats: %s, %d open.", onOff(r.DirectChats.Enabled), r.DirectChats.Open)
	p("- Who sees a Matrix user's presence (`bridge.subscriptions`): `%s`; finding Matrix users by name from XMPP (`bridge.user_search`): `%s`.",
		r.Subscriptions, r.UserSearch)
	if r.Presence {
		p("- Presence (`bridge.presence`): on. Matrix users' presence (online, away, offline, status message, last active) goes to the XMPP contacts they allowed and to the hosted rooms they are members of; XMPP occupants' presence becomes their puppets' presence. Kept in memory only.")
	} else {
		p("- Presence (`bridge.presence`): off. Matrix users show as available; XMPP users' presence does not reach Matrix.")
	}
	p("")
	p("## What is stored")
	p("")
	p("Database: %s. Message bodies are never stored; message and reaction mappings are kept %s, the puppet of an XMPP user who left every room %s.",
		r.Storage.Database, r.Storage.MessageRetention, r.Storage.PuppetRetention)
	p("")
	p("| table | rows | holds |")
	p("|---|---|---|")
	for _, t := range r.Storage.Tables {
		p("| `%s` | %d | %s |", t.Name, t.Rows, strings.ReplaceAll(t.Holds, "|", "\\|"))
	}
	p("")
	p("## What is logged")
	p("")
	p("The bridge log %s.", r.Logging.Holds)
	p("")
	p("## Encryption")
	p("")
	p("%s (encryption.allow %v, default %v, require %v, verified_only %v).", capitalize(r.Encryption.Meaning),
		r.Encryption.Decrypts, r.Encryption.Default, r.Encryption.Require, r.Encryption.VerifiedOnly)
	p("")
	p("## Files")
	p("")
	p("Matrix files reach XMPP users as signed links to `%s`, valid %s; the bridge streams the file from the homeserver and keeps nothing.", r.Media.LinkBase, r.Media.LinkTTL)
	if r.Media.FetchesShared {
		p("Files XMPP users share are fetched (up to %d bytes; private networks %s) and uploaded to the homeserver as the sender's puppet.",
			r.Media.MaxSize, map[bool]string{true: "allowed", false: "refused"}[r.Media.AllowPrivateNetworks])
	} else {
		p("Files XMPP users share are not fetched: their links arrive as text.")
	}
	p("")
	p("## Audit log")
	p("")
	p("Written to %s; it records:", r.Audit.File)
	p("")
	for _, a := range slices.Sorted(maps.Keys(r.Audit.Actions)) {
		p("- `%s`: %s", a, r.Audit.Actions[a])
	}
	return b.String()
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// WritePrivacyReport reads the config and the database it names and writes
// the report, as Markdown or JSON.
func WritePrivacyReport(ctx context.Context, configPath string, asJSON bool, out io.Writer) error {
	cfg, err := LoadConfig(configPath)
	if err != nil {
		return fmt.Errorf("%s: %w", configPath, err)
	}
	db, err := database.Open(ctx, cfg.Database, zerolog.Nop())
	if err != nil {
		return err
	}
	defer db.Close()
	r, err := BuildPrivacyReport(ctx, cfg, db)
	if err != nil {
		return err
	}
	if asJSON {
		return r.WriteJSON(out)
	}
	_, err = io.WriteString(out, r.Markdown())
	return err
}
