package database

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"errors"
)

// Keys of the kv table.
const (
	// KeyOccupantID keys the HMAC that derives XEP-0421 occupant ids.
	KeyOccupantID = "occupant_id_key"
	// KeyMediaLinks keys the HMAC that signs links to Matrix files.
	KeyMediaLinks = "media_link_key"
)

const (
	getKV    = `SELECT value FROM kv WHERE key=$1`
	insertKV = `INSERT INTO kv (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING`
)

// Secret returns the random secret stored under key, creating it on first
// use. Concurrent first uses agree on one value.
func (db *Database) Secret(ctx context.Context, key string) ([]byte, error) {
	var value string
	err := db.QueryRow(ctx, getKV, key).Scan(&value)
	if errors.Is(err, sql.ErrNoRows) {
		var b [32]byte
		_, _ = rand.Read(b[:])
		if _, err = db.Exec(ctx, insertKV, key, base64.StdEncoding.EncodeToString(b[:])); err != nil {
			return nil, err
		}
		err = db.QueryRow(ctx, getKV, key).Scan(&value)
	}
	if err != nil {
		return nil, err
	}
	return base64.StdEncoding.DecodeString(value)
}

// KeySyncNextBatch stores the bridge bot's sync position.
const KeySyncNextBatch = "sync_next_batch"

const upsertKV = `INSERT INTO kv (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value=excluded.value`

// GetValue returns the value stored under key, or "".
func (db *Database) GetValue(ctx context.Context, key string) (string, error) {
	var value string
	err := db.QueryRow(ctx, getKV, key).Scan(&value)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return value, err
}

// SetValue stores value under key.
func (db *Database) SetValue(ctx context.Context, key, value string) error {
	_, err := db.Exec(ctx, upsertKV, key, value)
	return err
}
