// Package dbtest names a fresh database for a test: a SQLite file in the
// test's temporary directory, or, when MXPP_TEST_POSTGRES names a
// PostgreSQL server (an admin URI, as testenv/start-postgres.sh prints), a
// new database there, dropped when the test ends. It imports nothing of
// this module, so that the database package's own tests use it too.
package dbtest

import (
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	_ "github.com/lib/pq" // the "postgres" driver
)

// EnvPostgres is the environment variable naming the PostgreSQL server.
const EnvPostgres = "MXPP_TEST_POSTGRES"

// Postgres returns the admin URI of the PostgreSQL server the tests use,
// or "" for SQLite.
func Postgres(t testing.TB) string {
	t.Helper()
	return getenv(EnvPostgres)
}

// Fresh names a fresh, empty database for the test: its database.type
// and URI.
func Fresh(t testing.TB) (dbType, uri string) {
	t.Helper()
	admin := Postgres(t)
	if admin == "" {
		return "sqlite", "file:" + filepath.Join(t.TempDir(), "test.db")
	}
	uri, drop, err := NewPostgres(admin)
	if err != nil {
		t.Fatalf("%s: %v", EnvPostgres, err)
	}
	t.Cleanup(drop)
	return "postgres", uri
}

// NewPostgres creates an empty database on the PostgreSQL server of an
// admin URI, and returns its URI and a function that drops it.
func NewPostgres(admin string) (uri string, drop func(), err error) {
	u, err := url.Parse(admin)
	if err != nil {
		return "", nil, err
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "mxpp_test_" + hex.EncodeToString(b[:])
	adminDB, err := sql.Open("postgres", admin)
	if err != nil {
		return "", nil, err
	}
	if _, err = adminDB.Exec(`CREATE DATABASE ` + name); err != nil {
		_ = adminDB.Close()
		return "", nil, fmt.Errorf("creating a test database: %w", err)
	}
	drop = func() {
		_, _ = adminDB.Exec(`DROP DATABASE IF EXISTS ` + name + ` WITH (FORCE)`)
		_ = adminDB.Close()
	}
	u.Path = "/" + name
	return u.String(), drop, nil
}

var getenv = os.Getenv
