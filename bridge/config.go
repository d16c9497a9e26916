package bridge

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"gopkg.in/yaml.v3"
	"maunium.net/go/mautrix/id"

	"github.com/mxpp/mxpp/database"
	"github.com/mxpp/mxpp/matrix"
	"github.com/mxpp/mxpp/xmpp"
)

// Config is the bridge's config file. Each leaf package owns its section.
type Config struct {
	Homeserver matrix.HomeserverConfig `yaml:"homeserver"`
	Bridge     BridgeConfig            `yaml:"bridge"`
	Appservice matrix.AppserviceConfig `yaml:"appservice"`
	Encryption matrix.EncryptionConfig `yaml:"encryption"`
	XMPP       xmpp.Config             `yaml:"xmpp"`
	Database   database.Config         `yaml:"database"`
	Metrics    MetricsConfig           `yaml:"metrics"`
	Logging    LoggingConfig           `yaml:"logging"`
}

// MetricsConfig is the metrics section.
type MetricsConfig struct {
	// Enabled serves Prometheus metrics at /metrics.
	Enabled bool `yaml:"enabled"`
	// Listen is a separate host:port for /metrics; empty serves it on the
	// appservice listener.
	Listen string `yaml:"listen"`
	// Profiling serves Go's profiler (/debug/pprof/) on Listen, which it
	// needs: never on the appservice listener, which the homeserver reaches.
	Profiling bool `yaml:"profiling"`
}

// BridgeConfig is the bridge section: how the bridge behaves.
type BridgeConfig struct {
	// HistoryMessages is how many recent messages a joining XMPP user gets,
	// where the room's history visibility lets them see any.
	HistoryMessages int `yaml:"history_messages"`
	// OccupantCheckInterval is how often occupants that were quiet that
	// long are pinged to find the ones that vanished. Zero turns it off.
	OccupantCheckInterval time.Duration `yaml:"occupant_check_interval"`
	// SyncFallback is how the bot's /sync stands in for what a homeserver
	// does not push to appservices (redactions, typing, receipts): auto uses
	// it for what is not pushed, on always, off never.
	SyncFallback string `yaml:"sync_fallback"`
	// Media is how files cross the bridge.
	Media MediaConfig `yaml:"media"`
	// Exposure decides which rooms XMPP users can reach: opt-in (only rooms
	// exposed with the bot's expose command), public (every room with a
	// canonical alias) or off.
	Exposure string `yaml:"exposure"`
	// DirectMessages lets XMPP users and Matrix users (of level user and
	// up) chat one to one: a chat message to a Matrix user's JID opens a
	// direct chat on Matrix, and a Matrix user who invites a puppet to a
	// direct chat reaches that XMPP user.
	DirectMessages bool `yaml:"direct_messages"`
	// Subscriptions is what happens when an XMPP user asks to see a
	// Matrix user's presence: ask (the bot asks the Matrix user, who
	// answers allow or deny), auto (approved) or deny (refused).
	Subscriptions string `yaml:"subscriptions"`
	// Presence carries presence both ways.
	Presence PresenceConfig `yaml:"presence"`
	// UserSearch answers XEP-0055 searches for Matrix users on the
	// component from the homeserver's user directory: off or local.
	UserSearch string `yaml:"user_search"`
	// Permissions gives Matrix users a level, keyed by "*", a server name
	// or a user ID (the most specific key wins): none, user or admin.
	Permissions map[string]string `yaml:"permissions"`
	// CommandPrefix starts bot commands in rooms other than the bot's DM.
	CommandPrefix string `yaml:"command_prefix"`
	// MessageRetention is how long message and reaction ID mappings are
	// kept; PuppetRetention how long a puppet is kept after its XMPP user
	// left the last room.
	MessageRetention time.Duration `yaml:"message_retention"`
	PuppetRetention  time.Duration `yaml:"puppet_retention"`
	// RemoteRooms is how Matrix users join MUCs hosted elsewhere.
	RemoteRooms RemoteRoomsConfig `yaml:"remote_rooms"`
}

// PresenceConfig is the bridge.presence section.
type PresenceConfig struct {
	// Enabled makes Matrix users' presence (online, unavailable, offline,
	// status message, last active) their XMPP presence, to their contacts
	// and in rooms, and XMPP occupants' presence their puppets' Matrix
	// presence.
	Enabled bool `yaml:"enabled"`
	// MinInterval is how often one user's presence may change on the
	// other side: a change within it waits until it ends, and only the
	// newest of those that waited goes.
	MinInterval time.Duration `yaml:"min_interval"`
}

// RemoteRoomsConfig is the bridge.remote_rooms section: portals into MUCs
// hosted elsewhere, which Matrix users join as occupants of their own.
type RemoteRoomsConfig struct {
	// UserDomains are the MUC services (domains or *.domain patterns)
	// whose rooms users of level user may open portals into; admins may
	// open any room xmpp.allowed_domains and denied_domains allow. Empty
	// lets users open any room those lists allow.
	UserDomains []string `yaml:"user_domains"`
	// Federate is the portal rooms' m.federate: false (the default) keeps
	// them on this homeserver even where it federates.
	Federate bool `yaml:"federate"`
}

// User search modes (bridge.user_search).
const (
	UserSearchOff   = "off"
	UserSearchLocal = "local"
)

// Subscription modes (bridge.subscriptions).
const (
	SubscriptionsAsk  = "ask"
	SubscriptionsAuto = "auto"
	SubscriptionsDeny = "deny"
)

// Exposure modes (bridge.exposure).
const (
	ExposureOptIn  = "opt-in"
	ExposurePublic = "public"
	ExposureOff    = "off"
)

// MediaConfig is the bridge.media section.
type MediaConfig struct {
	// PublicURL is where XMPP users reach the bridge's HTTP listener for
	// Matrix files; empty means appservice.address.
	PublicURL string `yaml:"public_url"`
	// LinkTTL is how long a link to a Matrix file stays valid.
	LinkTTL time.Duration `yaml:"link_ttl"`
	// MaxSize bounds files from XMPP, in bytes (the homeserver's upload
	// limit applies too).
	MaxSize int64 `yaml:"max_size"`
	// AllowPrivateNetworks lets the bridge fetch files from loopback,
	// private and link-local addresses. Off, so that XMPP users cannot make
	// the bridge reach internal services.
	AllowPrivateNetworks bool `yaml:"allow_private_networks"`
}

// LoggingConfig is the logging section.
type LoggingConfig struct {
	// Level is a zerolog level: trace, debug, info, warn or error.
	Level string `yaml:"level"`
	// Format is "pretty" for people or "json" for log collectors.
	Format string `yaml:"format"`
	// RedactBodies keeps message text out of the log even at trace level.
	RedactBodies bool `yaml:"redact_bodies"`
	// AuditFile, if set, also writes the audit events to this file, one JSON
	// object per line.
	AuditFile string `yaml:"audit_file"`
}

// DefaultConfig returns the values used for keys a config file leaves out.
func DefaultConfig() Config {
	return Config{
		Homeserver: matrix.DefaultHomeserverConfig(),
		Appservice: matrix.DefaultAppserviceConfig(),
		Bridge: BridgeConfig{HistoryMessages: 20, OccupantCheckInterval: 10 * time.Minute, SyncFallback: SyncAuto,
			Media:            MediaConfig{LinkTTL: 7 * 24 * time.Hour, MaxSize: 50 << 20},
			Exposure:         ExposureOptIn,
			DirectMessages:   true,
			Subscriptions:    SubscriptionsAsk,
			UserSearch:       UserSearchOff,
			Presence:         PresenceConfig{Enabled: true, MinInterval: 5 * time.Second},
			Permissions:      map[string]string{"*": LevelUser},
			CommandPrefix:    "!xmpp",
			MessageRetention: 30 * 24 * time.Hour,
			PuppetRetention:  7 * 24 * time.Hour,
		},
		Metrics:  MetricsConfig{Enabled: true},
		Database: database.DefaultConfig(),
		Logging:  LoggingConfig{Level: "info", Format: "pretty"},
	}
}

// ParseConfig decodes a config over the defaults. Unknown keys are errors,
// so that a typo does not silently leave a default in place.
func ParseConfig(data []byte) (*Config, error) {
	cfg := DefaultConfig()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("invalid config: %w", err)
	}
	return &cfg, nil
}

// LoadConfig reads and decodes a config file. It does not validate it.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("failed to read config: %w", err)
	}
	return ParseConfig(data)
}

// Validate reports the first problem, naming its key. Tokens may be empty
// only while generating the registration, which fills them in.
func (c *Config) Validate(allowEmptyTokens bool) error {
	if err := c.MatrixConfig().Validate(); err != nil {
		return err
	}
	if !allowEmptyTokens {
		if c.Appservice.ASToken == "" {
			return fmt.Errorf("appservice.as_token: is empty; generate the registration with -g first")
		}
		if c.Appservice.HSToken == "" {
			return fmt.Errorf("appservice.hs_token: is empty; generate the registration with -g first")
		}
	}
	if c.Encryption.Require && !c.Encryption.Allow {
		return fmt.Errorf("encryption.require: needs encryption.allow")
	}
	if c.Encryption.Default && !c.Encryption.Allow {
		return fmt.Errorf("encryption.default: needs encryption.allow")
	}
	if c.Encryption.SelfSign && !c.Encryption.Allow {
		return fmt.Errorf("encryption.self_sign: needs encryption.allow")
	}
	if c.Encryption.Allow && c.Encryption.PickleKey == "" && !allowEmptyTokens {
		return fmt.Errorf("encryption.pickle_key: is empty; generate it with -g first")
	}
	if c.Bridge.HistoryMessages < 0 || c.Bridge.HistoryMessages > 500 {
		return fmt.Errorf("bridge.history_messages: must be between 0 and 500, got %d", c.Bridge.HistoryMessages)
	}
	if c.Bridge.OccupantCheckInterval < 0 || (c.Bridge.OccupantCheckInterval > 0 && c.Bridge.OccupantCheckInterval < time.Second) {
		return fmt.Errorf("bridge.occupant_check_interval: must be 0 (off) or at least 1s, got %s", c.Bridge.OccupantCheckInterval)
	}
	switch c.Bridge.SyncFallback {
	case SyncAuto, SyncOn, SyncOff:
	default:
		return fmt.Errorf("bridge.sync_fallback: must be auto, on or off, got %q", c.Bridge.SyncFallback)
	}
	if m := c.Bridge.Media; m.PublicURL != "" {
		if u, err := url.Parse(m.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("bridge.media.public_url: must be an http:// or https:// URL, got %q", m.PublicURL)
		}
	}
	if c.Bridge.Media.LinkTTL < time.Minute {
		return fmt.Errorf("bridge.media.link_ttl: must be at least 1m, got %s", c.Bridge.Media.LinkTTL)
	}
	if c.Bridge.Media.MaxSize < 0 {
		return fmt.Errorf("bridge.media.max_size: must not be negative")
	}
	if err := c.XMPP.Validate(); err != nil {
		return err
	}
	if err := c.Database.Validate(); err != nil {
		return err
	}
	if _, err := zerolog.ParseLevel(c.Logging.Level); err != nil || c.Logging.Level == "" {
		return fmt.Errorf("logging.level: must be trace, debug, info, warn or error, got %q", c.Logging.Level)
	}
	if c.Logging.Format != "pretty" && c.Logging.Format != "json" {
		return fmt.Errorf("logging.format: must be pretty or json, got %q", c.Logging.Format)
	}
	switch c.Bridge.Exposure {
	case ExposureOptIn, ExposurePublic, ExposureOff:
	default:
		return fmt.Errorf("bridge.exposure: must be opt-in, public or off, got %q", c.Bridge.Exposure)
	}
	if c.Bridge.UserSearch != UserSearchOff && c.Bridge.UserSearch != UserSearchLocal {
		return fmt.Errorf("bridge.user_search: must be off or local, got %q", c.Bridge.UserSearch)
	}
	if c.Bridge.Presence.MinInterval < 0 {
		return fmt.Errorf("bridge.presence.min_interval: must not be negative")
	}
	switch c.Bridge.Subscriptions {
	case SubscriptionsAsk, SubscriptionsAuto, SubscriptionsDeny:
	default:
		return fmt.Errorf("bridge.subscriptions: must be ask, auto or deny, got %q", c.Bridge.Subscriptions)
	}
	for key, level := range c.Bridge.Permissions {
		if _, ok := levels[level]; !ok {
			return fmt.Errorf("bridge.permissions: %q: level must be none, user or admin, got %q", key, level)
		}
		if key != "*" && !strings.HasPrefix(key, "@") && !id.ValidateServerName(key) {
			return fmt.Errorf("bridge.permissions: %q is neither *, a server name nor a user ID", key)
		}
	}
	if strings.TrimSpace(c.Bridge.CommandPrefix) == "" || strings.ContainsAny(c.Bridge.CommandPrefix, " \n") {
		return fmt.Errorf("bridge.command_prefix: must be a word such as !xmpp")
	}
	if c.Bridge.MessageRetention < time.Hour {
		return fmt.Errorf("bridge.message_retention: must be at least 1h, got %s", c.Bridge.MessageRetention)
	}
	if c.Bridge.PuppetRetention < 0 {
		return fmt.Errorf("bridge.puppet_retention: must not be negative")
	}
	for _, d := range c.Bridge.RemoteRooms.UserDomains {
		if err := xmpp.CheckDomainPattern(d); err != nil {
			return fmt.Errorf("bridge.remote_rooms.user_domains: %w", err)
		}
	}
	if c.Metrics.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Metrics.Listen); err != nil {
			return fmt.Errorf("metrics.listen: must be host:port, got %q", c.Metrics.Listen)
		}
	}
	if c.Metrics.Profiling && (!c.Metrics.Enabled || c.Metrics.Listen == "") {
		return fmt.Errorf("metrics.profiling: needs metrics.enabled and a listener of its own (metrics.listen)")
	}
	if c.XMPP.Domain == c.Homeserver.Domain {
		return fmt.Errorf("xmpp.domain: must differ from homeserver.domain")
	}
	return nil
}

// MatrixConfig returns what the matrix package needs.
func (c *Config) MatrixConfig() matrix.Config {
	return matrix.Config{Homeserver: c.Homeserver, Appservice: c.Appservice, Encryption: c.Encryption}
}

// GenerateTokens fills in empty appservice tokens, and the pickle key when
// encryption is on, and reports whether it did.
func (c *Config) GenerateTokens() bool {
	changed := false
	secrets := []*string{&c.Appservice.ASToken, &c.Appservice.HSToken}
	if c.Encryption.Allow {
		secrets = append(secrets, &c.Encryption.PickleKey)
	}
	for _, tok := range secrets {
		if *tok == "" {
			*tok = randomToken()
			changed = true
		}
	}
	return changed
}

func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// WriteTokens stores the appservice tokens and the pickle key into the
// config file at path, keeping its comments and layout.
func WriteTokens(path string, c *Config) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("failed to read config: %w", err)
	}
	var doc yaml.Node
	if err = yaml.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("failed to parse config: %w", err)
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return fmt.Errorf("config is not a YAML mapping")
	}
	as := mappingChild(doc.Content[0], "appservice")
	setScalar(as, "as_token", c.Appservice.ASToken)
	setScalar(as, "hs_token", c.Appservice.HSToken)
	if c.Encryption.PickleKey != "" {
		setScalar(mappingChild(doc.Content[0], "encryption"), "pickle_key", c.Encryption.PickleKey)
	}
	var out strings.Builder
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err = enc.Encode(&doc); err != nil {
		return fmt.Errorf("failed to write config: %w", err)
	}
	return writeFileAtomic(path, []byte(out.String()), 0o600)
}

// mappingChild returns the mapping under key, adding it if missing.
func mappingChild(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			v := m.Content[i+1]
			if v.Kind != yaml.MappingNode {
				v.Kind, v.Tag, v.Value, v.Content = yaml.MappingNode, "!!map", "", nil
			}
			return v
		}
	}
	v := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}, v)
	return v
}

func setScalar(m *yaml.Node, key, value string) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content[i+1].Kind, m.Content[i+1].Tag, m.Content[i+1].Value = yaml.ScalarNode, "!!str", value
			m.Content[i+1].Style = 0
			return
		}
	}
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key},
		&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: value})
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
