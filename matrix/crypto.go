package matrix

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/lib/pq"
	"go.mau.fi/util/dbutil"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// EncryptionConfig is the encryption section of the bridge config.
type EncryptionConfig struct {
	// Allow lets the bridge join encrypted rooms: the bot's device decrypts
	// what Matrix members send and encrypts what XMPP users send.
	Allow bool `yaml:"allow"`
	// Default turns encryption on in the rooms the bridge creates (the
	// direct chats XMPP users open).
	Default bool `yaml:"default"`
	// Require refuses to bridge rooms that are not encrypted; rooms the
	// bridge creates are encrypted then too.
	Require bool `yaml:"require"`
	// PickleKey encrypts the bot device's keys in the database. Generated
	// with -g when empty; changing it later means a new device.
	PickleKey string `yaml:"pickle_key"`
	// VerifiedOnly shares room keys only with devices their owners
	// verified (cross-signed), and bridges only messages from such devices.
	VerifiedOnly bool `yaml:"verified_only"`
	// SelfSign cross-signs the bot's device at start, so that clients do
	// not mark bridged messages as sent from an unverified device. It
	// needs a homeserver that lets appservice users upload cross-signing
	// keys without a password (Synapse does; Dendrite does not).
	SelfSign bool `yaml:"self_sign"`
}

// keyWait is how long decryption waits for a room key that has not
// arrived (keywait.go).
var keyWait = 10 * time.Second

// Crypto is the bridge bot's encryption device: end-to-bridge encryption,
// one device (the bot's) decrypting for the bridge and encrypting for
// every puppet.
type Crypto struct {
	c      *Connector
	mach   *crypto.OlmMachine
	client *mautrix.Client // the bot as a device
	store  *crypto.SQLCryptoStore

	roomLocks sync.Map // id.RoomID → *sync.Mutex: one encryption at a time per room
}

// ErrUndecryptable wraps a failure to decrypt an event.
var ErrUndecryptable = errors.New("the bridge could not decrypt the event")

// InitCrypto sets up the bot's device in db (mautrix's crypto store): it
// logs the bot in as a device, reusing the stored device ID, and uploads
// its keys when they are new. If the homeserver lost the device's keys,
// they are uploaded again; if it holds other keys for it, the bot starts
// over with a new device. Encrypted rooms are bridged afterwards.
func (c *Connector) InitCrypto(ctx context.Context, db *dbutil.Database, log dbutil.DatabaseLogger) error {
	err := c.initCrypto(ctx, db, log)
	if errors.Is(err, errDeviceKeysChanged) {
		c.log.Warn().Err(err).Msg("Starting over with a new encryption device")
		if _, derr := db.Exec(ctx, `DELETE FROM crypto_account WHERE account_id=$1`, c.BotID().String()); derr != nil {
			return fmt.Errorf("failed to drop the old device: %w", derr)
		}
		err = c.initCrypto(ctx, db, log)
	}
	return err
}

// errDeviceKeysChanged means the homeserver holds other keys for the
// device than the bridge does.
var errDeviceKeysChanged = errors.New("the homeserver holds other keys for the bot's device")

func (c *Connector) initCrypto(ctx context.Context, db *dbutil.Database, log dbutil.DatabaseLogger) error {
	cfg := c.Encryption
	if db.Dialect == dbutil.Postgres {
		// The store's queries over many IDs pass one array on PostgreSQL.
		crypto.PostgresArrayWrapper = pq.Array
	}
	store := crypto.NewSQLCryptoStore(db, log, c.BotID().String(), "", []byte(cfg.PickleKey))
	upgrade := store.DB.Upgrade
	if c.UpgradeLock != nil {
		upgrade = func(ctx context.Context) error { return c.UpgradeLock(ctx, store.DB.Upgrade) }
	}
	if err := upgrade(ctx); err != nil {
		return fmt.Errorf("failed to upgrade the crypto store: %w", err)
	}
	deviceID, err := store.FindDeviceID(ctx)
	if err != nil {
		return fmt.Errorf("failed to read the bot's device: %w", err)
	}
	client := c.AS.NewMautrixClient(c.BotID())
	resp, err := client.Login(ctx, &mautrix.ReqLogin{
		Type:                     mautrix.AuthTypeAppservice,
		Identifier:               mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: c.BotID().String()},
		DeviceID:                 deviceID,
		StoreCredentials:         true,
		InitialDeviceDisplayName: "XMPP bridge",
	})
	if err != nil {
		return fmt.Errorf("failed to log the bot in as a device: %w", err)
	}
	store.DeviceID = resp.DeviceID
	client.Store = store // keeps the device sync position
	stateStore, ok := c.AS.StateStore.(crypto.StateStore)
	if !ok {
		return errors.New("the state store cannot serve encryption")
	}
	mlog := c.log.With().Str("component", "crypto").Logger()
	mach := crypto.NewOlmMachine(client, &mlog, store, stateStore)
	// Bridges share one session per room with every member's devices;
	// DisableSharedGroupSessionTracking as mautrix bridges do.
	mach.DisableSharedGroupSessionTracking = true
	mach.SendKeysMinTrust = id.TrustStateUnset
	if cfg.VerifiedOnly {
		mach.SendKeysMinTrust = id.TrustStateCrossSignedTOFU
	}
	if err = mach.Load(ctx); err != nil {
		return fmt.Errorf("failed to load the bot's device: %w", err)
	}
	keys, err := client.QueryKeys(ctx, &mautrix.ReqQueryKeys{DeviceKeys: map[id.UserID]mautrix.DeviceIDList{c.BotID(): {resp.DeviceID}}})
	if err != nil {
		return fmt.Errorf("failed to check the bot device's keys: %w", err)
	}
	device, onServer := keys.DeviceKeys[c.BotID()][resp.DeviceID]
	switch {
	case !onServer || len(device.Keys) == 0:
		if mach.GetAccount().Shared {
			c.log.Warn().Msg("The bot device's keys vanished from the homeserver; uploading them again")
			mach.GetAccount().Shared = false
		}
		if err = mach.ShareKeys(ctx, -1); err != nil {
			return fmt.Errorf("failed to upload the bot device's keys: %w", err)
		}
	case device.Keys.GetEd25519(resp.DeviceID) != mach.OwnIdentity().SigningKey:
		return errDeviceKeysChanged
	}
	c.crypto = &Crypto{c: c, mach: mach, client: client, store: store}
	c.log.Info().Stringer("device_id", resp.DeviceID).Msg("Bridge bot's encryption device ready")
	if cfg.SelfSign {
		if err := c.crypto.selfSign(ctx); err != nil {
			c.log.Warn().Err(err).Msg("Could not cross-sign the bot's device; clients will mark bridged messages as unverified")
		}
	}
	return nil
}

// recoveryKeySecret names the recovery key of the bot's cross-signing keys
// in the crypto store, where it is encrypted with the pickle key.
const recoveryKeySecret id.Secret = "net.mxpp.recovery_key"

// selfSignRefusedSecret notes when the homeserver refused the bot's
// cross-signing keys because it wants a password (Dendrite does). Until
// selfSignRetry has passed, the bridge does not make new keys at every
// start, each leaving secret storage data behind in the bot's account.
const selfSignRefusedSecret id.Secret = "net.mxpp.self_sign_refused"

var selfSignRetry = 7 * 24 * time.Hour

// selfSign cross-signs the bot's device. The first time, it makes the
// bot's cross-signing keys, stores them on the homeserver (secret storage,
// under a recovery key the bridge keeps) and signs the device; a new device
// later is signed with the keys fetched back with the recovery key.
func (k *Crypto) selfSign(ctx context.Context) error {
	// The homeserver says whether the keys exist: the store also holds
	// the keys of an attempt whose upload was refused.
	bot := k.mach.Client.UserID
	resp, err := k.mach.Client.QueryKeys(ctx, &mautrix.ReqQueryKeys{DeviceKeys: mautrix.DeviceKeysRequest{bot: {}}})
	if err != nil {
		return fmt.Errorf("failed to look up the bot's cross-signing keys: %w", err)
	}
	recoveryKey, err := k.store.GetSecret(ctx, recoveryKeySecret)
	if err != nil {
		return fmt.Errorf("failed to read the recovery key: %w", err)
	}
	if _, hasKeys := resp.MasterKeys[bot]; hasKeys {
		if _, verified, err := k.mach.GetOwnVerificationStatus(ctx); err == nil && verified {
			return nil
		}
		if recoveryKey == "" {
			return errors.New("the homeserver holds cross-signing keys of the bot that this bridge has no recovery key for")
		}
		if err = k.mach.VerifyWithRecoveryKey(ctx, recoveryKey); err != nil {
			return fmt.Errorf("failed to sign the device with the stored keys: %w", err)
		}
		k.c.log.Info().Msg("Cross-signed the bot's device with its existing keys")
		return nil
	}
	if refused, _ := k.store.GetSecret(ctx, selfSignRefusedSecret); refused != "" {
		if at, perr := time.Parse(time.RFC3339, refused); perr == nil && time.Since(at) < selfSignRetry {
			return fmt.Errorf("the homeserver refused the bot's cross-signing keys on %s (it asks for a password); "+
				"trying again after %s", at.Format(time.DateOnly), at.Add(selfSignRetry).Format(time.DateOnly))
		}
	}
	recoveryKey, err = k.mach.GenerateAndVerifyWithRecoveryKey(ctx)
	if recoveryKey != "" {
		if serr := k.store.PutSecret(ctx, recoveryKeySecret, recoveryKey); serr != nil {
			return fmt.Errorf("failed to store the recovery key: %w", serr)
		}
	}
	var he mautrix.HTTPError
	if errors.As(err, &he) && he.Response != nil && he.Response.StatusCode == http.StatusUnauthorized {
		if serr := k.store.PutSecret(ctx, selfSignRefusedSecret, time.Now().UTC().Format(time.RFC3339)); serr != nil {
			k.c.log.Warn().Err(serr).Msg("Failed to note that the homeserver refused the cross-signing keys")
		}
	}
	if err != nil {
		return err
	}
	_ = k.store.DeleteSecret(ctx, selfSignRefusedSecret)
	k.c.log.Info().Msg("Made cross-signing keys for the bot and signed its device")
	return nil
}

// EncryptionOn reports whether the bridge bridges encrypted rooms.
func (c *Connector) EncryptionOn() bool { return c.crypto != nil }

// IsEncrypted reports whether a room has encryption on.
func (c *Connector) IsEncrypted(ctx context.Context, roomID id.RoomID) bool {
	on, err := c.AS.StateStore.IsEncrypted(ctx, roomID)
	return err == nil && on
}

// handleCryptoEvent lets the device follow what changes who gets keys, and
// decrypts encrypted events. It returns the event to hand on, or an error
// for an event that could not be decrypted.
//
// A missing room key is waited for up to wait; with no wait, the error
// says errNoKeyYet (see keywait.go).
func (k *Crypto) handleCryptoEvent(ctx context.Context, evt *event.Event, wait time.Duration) (*event.Event, error) {
	switch evt.Type {
	case event.StateMember:
		k.mach.HandleMemberEvent(ctx, evt)
	case event.StateHistoryVisibility:
		k.mach.HandleHistoryVisibility(ctx, evt)
	case event.EventEncrypted:
		return k.decrypt(ctx, evt, wait)
	}
	return evt, nil
}

func (k *Crypto) decrypt(ctx context.Context, evt *event.Event, wait time.Duration) (*event.Event, error) {
	decrypted, err := k.mach.DecryptMegolmEvent(ctx, evt)
	if errors.Is(err, crypto.ErrNoSessionFound) {
		if wait <= 0 {
			return nil, errNoKeyYet
		}
		content := evt.Content.AsEncrypted()
		if k.mach.WaitForSession(ctx, evt.RoomID, content.SenderKey, content.SessionID, wait) {
			decrypted, err = k.mach.DecryptMegolmEvent(ctx, evt)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUndecryptable, err)
	}
	if k.c.Encryption.VerifiedOnly && decrypted.Mautrix.TrustState < id.TrustStateCrossSignedTOFU {
		return nil, fmt.Errorf("%w: sent from a device its owner did not verify", ErrUndecryptable)
	}
	decrypted.Mautrix.EventSource = evt.Mautrix.EventSource
	return decrypted, nil
}

// encrypt returns what to send for an event in room: the event encrypted
// by the bot's device if the room is encrypted, else the event as it is.
func (c *Connector) encrypt(ctx context.Context, roomID id.RoomID, evtType event.Type, content any) (event.Type, any, error) {
	if c.crypto == nil || !c.IsEncrypted(ctx, roomID) {
		return evtType, content, nil
	}
	k := c.crypto
	lock, _ := k.roomLocks.LoadOrStore(roomID, &sync.Mutex{})
	lock.(*sync.Mutex).Lock()
	defer lock.(*sync.Mutex).Unlock()
	encrypted, err := k.mach.EncryptMegolmEvent(ctx, roomID, evtType, content)
	if errors.Is(err, crypto.ErrNoGroupSession) || errors.Is(err, crypto.ErrSessionNotShared) || errors.Is(err, crypto.ErrSessionExpired) {
		if err = k.share(ctx, roomID); err != nil {
			return event.Type{}, nil, err
		}
		encrypted, err = k.mach.EncryptMegolmEvent(ctx, roomID, evtType, content)
	}
	if err != nil {
		return event.Type{}, nil, fmt.Errorf("failed to encrypt for %s: %w", roomID, err)
	}
	return event.EventEncrypted, encrypted, nil
}

// share sends the room's megolm session to the devices of its real members:
// never to puppets or the bot, whose messages the bot encrypts itself.
func (k *Crypto) share(ctx context.Context, roomID id.RoomID) error {
	members, err := k.c.AS.StateStore.GetRoomJoinedOrInvitedMembers(ctx, roomID)
	if err != nil {
		return fmt.Errorf("failed to list the members of %s: %w", roomID, err)
	}
	real := members[:0]
	for _, m := range members {
		if !k.c.IsBridgeUser(m) {
			real = append(real, m)
		}
	}
	if err = k.mach.ShareGroupSession(ctx, roomID, real); err != nil {
		return fmt.Errorf("failed to share the room key of %s: %w", roomID, err)
	}
	return nil
}

// DeleteExpiredKeys drops the room keys received more than twice their
// room's rotation period ago (rotation_period_ms of m.room.encryption, a
// week by default): messages that old can then no longer be decrypted
// with what the bridge's database holds. It returns how many it dropped.
func (c *Connector) DeleteExpiredKeys(ctx context.Context) (int, error) {
	if c.crypto == nil {
		return 0, nil
	}
	if err := c.crypto.normalizeKeyTimes(ctx); err != nil {
		return 0, err
	}
	ids, err := c.crypto.store.RedactExpiredGroupSessions(ctx)
	if err != nil {
		return 0, fmt.Errorf("failed to delete expired room keys: %w", err)
	}
	return len(ids), nil
}

// goTimeFormat is how the SQLite driver wrote times before the bridge
// asked it for SQLite's format (_time_format=sqlite); SQLite's date
// functions cannot read it, so such keys never looked expired.
const goTimeFormat = "2006-01-02 15:04:05.999999999 -0700 MST"

// normalizeKeyTimes rewrites room keys' receipt times that are in Go's
// format into SQLite's, in UTC.
func (k *Crypto) normalizeKeyTimes(ctx context.Context) error {
	if k.store.DB.Dialect != dbutil.SQLite {
		return nil // a timestamp column elsewhere: no format to repair
	}
	rows, err := k.store.DB.Query(ctx, `SELECT session_id, received_at FROM crypto_megolm_inbound_session WHERE received_at LIKE '% % %'`)
	if err != nil {
		return fmt.Errorf("failed to read room key times: %w", err)
	}
	fixed := map[string]time.Time{}
	for rows.Next() {
		// Only Go's format has spaces beyond the one after the date; the
		// driver may hand it over parsed already.
		var sessionID string
		var received any
		if err = rows.Scan(&sessionID, &received); err != nil {
			_ = rows.Close()
			return fmt.Errorf("failed to read room key times: %w", err)
		}
		switch v := received.(type) {
		case time.Time:
			fixed[sessionID] = v
		case string:
			if t, perr := time.Parse(goTimeFormat, v); perr == nil {
				fixed[sessionID] = t
			}
		}
	}
	if err = rows.Close(); err != nil {
		return fmt.Errorf("failed to read room key times: %w", err)
	}
	for sessionID, t := range fixed {
		_, err = k.store.DB.Exec(ctx, `UPDATE crypto_megolm_inbound_session SET received_at=$1 WHERE session_id=$2`,
			t.UTC().Format("2006-01-02 15:04:05.000"), sessionID)
		if err != nil {
			return fmt.Errorf("failed to rewrite a room key's time: %w", err)
		}
	}
	return nil
}

// UpgradeCryptoStore brings the crypto store's tables in db to the latest
// schema without logging a device in: for copying a database (migrate-db),
// whose both sides must be at the same version.
func UpgradeCryptoStore(ctx context.Context, db *dbutil.Database, log dbutil.DatabaseLogger) error {
	return crypto.NewSQLCryptoStore(db, log, "", "", nil).DB.Upgrade(ctx)
}
