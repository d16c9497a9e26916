package bridge

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"

	"github.com/mxpp/mxpp/database"
	"github.com/mxpp/mxpp/matrix"
	"github.com/rs/zerolog"
	"go.mau.fi/util/dbutil"
)

// GenerateRegistration writes the appservice registration for the
// homeserver, generating the tokens into the config first if it has none.
func GenerateRegistration(configPath, registrationPath string) error {
	cfg, err := LoadConfig(configPath)
	if err != nil {
		return fmt.Errorf("%s: %w", configPath, err)
	}
	if err = cfg.Validate(true); err != nil {
		return fmt.Errorf("%s: %w", configPath, err)
	}
	if cfg.GenerateTokens() {
		if err = WriteTokens(configPath, cfg); err != nil {
			return fmt.Errorf("failed to store generated tokens in %s: %w", configPath, err)
		}
	}
	if err = cfg.MatrixConfig().Registration().Save(registrationPath); err != nil {
		return fmt.Errorf("failed to write registration: %w", err)
	}
	return nil
}

// Run loads and checks the config, then runs the bridge until ctx ends.
func Run(ctx context.Context, configPath, version string) error {
	cfg, err := LoadConfig(configPath)
	if err != nil {
		return fmt.Errorf("%s: %w", configPath, err)
	}
	if err = cfg.Validate(false); err != nil {
		return fmt.Errorf("%s: %w", configPath, err)
	}
	b, err := New(cfg, NewLogger(cfg.Logging))
	if err != nil {
		return err
	}
	b.Version = version
	if err = b.Start(ctx); err != nil {
		b.Stop()
		if ctx.Err() != nil {
			return nil // stopped while on standby
		}
		return err
	}
	select {
	case <-ctx.Done():
		b.Log.Info().Msg("Shutting down")
	case err = <-b.Failed():
		b.Log.Error().Err(err).Msg("Shutting down")
	}
	b.Stop()
	return err
}

// MigrateDB copies the bridge's SQLite database, as the config names it,
// into an empty PostgreSQL database: portals, puppets, mappings, the state
// store and the encryption keys. The bridge must be stopped: while it holds
// the database, the copy is refused. Afterwards the config is to name the
// PostgreSQL database (database.type and uri).
func MigrateDB(ctx context.Context, configPath, targetURI string, out io.Writer) error {
	cfg, err := LoadConfig(configPath)
	if err != nil {
		return fmt.Errorf("%s: %w", configPath, err)
	}
	if cfg.Database.Type == database.TypePostgres {
		return fmt.Errorf("%s: the bridge already uses PostgreSQL", configPath)
	}
	target := database.Config{Type: database.TypePostgres, URI: targetURI}
	if err = target.Validate(); err != nil {
		return err
	}
	log := zerolog.Nop()
	from, err := openAllStores(ctx, cfg.Database, log)
	if err != nil {
		return fmt.Errorf("the SQLite database: %w", err)
	}
	defer from.Close()
	lock, err := from.AcquireInstance(ctx, "", 0, log, func() {})
	if err != nil {
		return fmt.Errorf("the SQLite database: %w; stop the bridge first", err)
	}
	defer lock.Release()
	to, err := openAllStores(ctx, target, log)
	if err != nil {
		return fmt.Errorf("the PostgreSQL database: %w", err)
	}
	defer to.Close()
	copied, err := database.Copy(ctx, from.Database, to.Database)
	if err != nil {
		return err
	}
	tables := slices.Sorted(maps.Keys(copied))
	total := 0
	for _, t := range tables {
		fmt.Fprintf(out, "%-32s %d rows\n", t, copied[t])
		total += copied[t]
	}
	fmt.Fprintf(out, "Copied %d rows in %d tables. Set database.type: postgres and database.uri in %s, then start the bridge.\n",
		total, len(tables), configPath)
	return nil
}

// openAllStores opens a database and brings every store in it (the
// bridge's, the state store, the crypto store) to the latest schema.
func openAllStores(ctx context.Context, cfg database.Config, log zerolog.Logger) (*database.Database, error) {
	db, err := database.Open(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	dblog := dbutil.ZeroLogger(log)
	if err = db.Locked(ctx, matrix.NewStateStore(db.Database, dblog).Upgrade); err == nil {
		err = db.Locked(ctx, func(ctx context.Context) error { return matrix.UpgradeCryptoStore(ctx, db.Database, dblog) })
	}
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("failed to upgrade the stores: %w", err)
	}
	return db, nil
}
