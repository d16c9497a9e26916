package database

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"go.mau.fi/util/dbutil"
)

// Copying a SQLite database into PostgreSQL (mxpp migrate-db). Both must
// be at the same schema version of every store in them (the bridge's,
// mautrix's state store and crypto store): the caller upgrades both first.
// The copy is driven by the target's tables and columns, so it covers the
// stores it does not know.

// ErrTargetNotEmpty says that the database to copy into holds data
// already: a copy would mix two bridges' state.
var ErrTargetNotEmpty = errors.New("the target database is not empty")

// copyBatch is how many rows go into the target per statement.
const copyBatch = 500

// Copy copies every row of every table of the PostgreSQL database to
// (except the stores' version and owner tables, which the upgrades wrote)
// from the SQLite database from, in one transaction, parents before the
// tables that refer to them. It returns the rows copied per table.
func Copy(ctx context.Context, from, to *dbutil.Database) (map[string]int, error) {
	if from.Dialect != dbutil.SQLite || to.Dialect != dbutil.Postgres {
		return nil, fmt.Errorf("copying goes from SQLite to PostgreSQL")
	}
	tables, err := copyOrder(ctx, to)
	if err != nil {
		return nil, err
	}
	for _, t := range tables {
		var n int
		if err = to.QueryRow(ctx, `SELECT COUNT(*) FROM `+quoteIdent(t)).Scan(&n); err != nil {
			return nil, fmt.Errorf("counting %s: %w", t, err)
		}
		if n > 0 {
			return nil, fmt.Errorf("%w: %s has %d rows", ErrTargetNotEmpty, t, n)
		}
	}
	copied := map[string]int{}
	// One read transaction on the source: a consistent picture of it.
	err = from.DoTxn(ctx, nil, func(ctx context.Context) error {
		return to.DoTxn(ctx, nil, func(ctx context.Context) error {
			for _, t := range tables {
				n, err := copyTable(ctx, from, to, t)
				if err != nil {
					return fmt.Errorf("copying %s: %w", t, err)
				}
				copied[t] = n
			}
			return nil
		})
	})
	return copied, err
}

// skipTable reports whether a table is a store's bookkeeping, written by
// its upgrade: versions and the database's owner.
func skipTable(name string) bool {
	return name == "database_owner" || name == "version" || strings.HasSuffix(name, "_version")
}

// copyOrder lists the target's tables so that every table comes after the
// tables its foreign keys refer to.
func copyOrder(ctx context.Context, db *dbutil.Database) ([]string, error) {
	tables, err := listTables(ctx, db)
	if err != nil {
		return nil, err
	}
	var all []string
	for _, name := range tables {
		if !skipTable(name) {
			all = append(all, name)
		}
	}
	rows, err := db.Query(ctx, `SELECT DISTINCT tc.table_name, ccu.table_name
		FROM information_schema.table_constraints tc
		JOIN information_schema.constraint_column_usage ccu
			ON tc.constraint_name = ccu.constraint_name AND tc.table_schema = ccu.table_schema
		WHERE tc.constraint_type = 'FOREIGN KEY' AND tc.table_schema = current_schema()`)
	if err != nil {
		return nil, fmt.Errorf("listing foreign keys: %w", err)
	}
	parents := map[string][]string{}
	for rows.Next() {
		var child, parent string
		if err = rows.Scan(&child, &parent); err != nil {
			rows.Close()
			return nil, err
		}
		if child != parent {
			parents[child] = append(parents[child], parent)
		}
	}
	if err = rows.Close(); err != nil {
		return nil, err
	}
	var order []string
	placed := map[string]bool{}
	for len(order) < len(all) {
		progress := false
		for _, t := range all {
			if placed[t] || slices.ContainsFunc(parents[t], func(p string) bool { return !placed[p] && slices.Contains(all, p) }) {
				continue
			}
			order, placed[t], progress = append(order, t), true, true
		}
		if !progress {
			return nil, fmt.Errorf("the tables' foreign keys form a cycle")
		}
	}
	return order, nil
}

// copyTable copies one table's rows. The SQLite driver answers each value
// as its column's declared type (a boolean for an integer in a BOOLEAN
// column, a string for bytes in a TEXT one), which PostgreSQL takes.
func copyTable(ctx context.Context, from, to *dbutil.Database, table string) (int, error) {
	var exists int
	if err := from.QueryRow(ctx, `SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = $1`, table).Scan(&exists); err != nil {
		return 0, err
	}
	if exists == 0 {
		return 0, nil // a store the source never used
	}
	cols, err := targetColumns(ctx, to, table)
	if err != nil {
		return 0, err
	}
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = quoteIdent(c)
	}
	list := strings.Join(names, ", ")
	rows, err := from.Query(ctx, `SELECT `+list+` FROM `+quoteIdent(table))
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	var batch []any
	n := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		var q strings.Builder
		q.WriteString(`INSERT INTO ` + quoteIdent(table) + ` (` + list + `) VALUES `)
		for r := 0; r < len(batch)/len(cols); r++ {
			if r > 0 {
				q.WriteString(", ")
			}
			q.WriteByte('(')
			for c := range cols {
				if c > 0 {
					q.WriteString(", ")
				}
				fmt.Fprintf(&q, "$%d", r*len(cols)+c+1)
			}
			q.WriteByte(')')
		}
		_, err := to.Exec(ctx, q.String(), batch...)
		batch = batch[:0]
		return err
	}
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err = rows.Scan(ptrs...); err != nil {
			return n, err
		}
		batch = append(batch, vals...)
		n++
		if n%copyBatch == 0 {
			if err = flush(); err != nil {
				return n, err
			}
		}
	}
	if err = rows.Err(); err != nil {
		return n, err
	}
	return n, flush()
}

// targetColumns lists a target table's columns.
func targetColumns(ctx context.Context, db *dbutil.Database, table string) ([]string, error) {
	return queryStrings(ctx, db, `SELECT column_name FROM information_schema.columns
		WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position`, table)
}

// quoteIdent quotes a table or column name for PostgreSQL and SQLite.
func quoteIdent(name string) string { return `"` + strings.ReplaceAll(name, `"`, `""`) + `"` }

// listTables lists a database's tables by name, on either dialect.
func listTables(ctx context.Context, db *dbutil.Database) ([]string, error) {
	q := `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`
	if db.Dialect == dbutil.Postgres {
		q = `SELECT table_name FROM information_schema.tables
			WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name`
	}
	names, err := queryStrings(ctx, db, q)
	if err != nil {
		return nil, fmt.Errorf("listing tables: %w", err)
	}
	return names, nil
}

// queryStrings runs a query of one text column and returns its values.
func queryStrings(ctx context.Context, db *dbutil.Database, q string, args ...any) ([]string, error) {
	rows, err := db.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err = rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// TableRows counts the rows of every table in the database but the
// stores' version and owner tables: for the privacy report.
func (db *Database) TableRows(ctx context.Context) (map[string]int, error) {
	tables, err := listTables(ctx, db.Database)
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, t := range tables {
		if skipTable(t) {
			continue
		}
		var n int
		if err = db.QueryRow(ctx, `SELECT COUNT(*) FROM `+quoteIdent(t)).Scan(&n); err != nil {
			return nil, fmt.Errorf("counting %s: %w", t, err)
		}
		out[t] = n
	}
	return out, nil
}
