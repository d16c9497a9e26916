package database

import (
	"context"
	"database/sql"
	"errors"
	"sync"

	"go.mau.fi/util/dbutil"
)

// stmtCache keeps prepared statements for the queries every bridged message
// runs: SQLite parses a statement on every unprepared execution, which was
// a tenth of the bridge's CPU time under load. Inside a transaction the
// statements are not used (they belong to the pool, not the transaction).
type stmtCache struct {
	db *dbutil.Database

	mu sync.Mutex
	m  map[string]*sql.Stmt
}

// get returns the prepared statement of a query, or nil if ctx carries a
// transaction or preparing failed; callers then run the query as usual.
func (c *stmtCache) get(ctx context.Context, query string) *sql.Stmt {
	if c == nil || c.db.Execable(ctx) != &c.db.LoggingDB {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if st := c.m[query]; st != nil {
		return st
	}
	st, err := c.db.RawDB.PrepareContext(context.WithoutCancel(ctx), query)
	if err != nil {
		return nil
	}
	if c.m == nil {
		c.m = map[string]*sql.Stmt{}
	}
	c.m[query] = st
	return st
}

// exec runs a statement, prepared when possible.
func (c *stmtCache) exec(ctx context.Context, query string, args ...any) error {
	if st := c.get(ctx, query); st != nil {
		_, err := st.ExecContext(ctx, args...)
		return err
	}
	_, err := c.db.Exec(ctx, query, args...)
	return err
}

// statement is a query with its arguments, for execAll.
type statement struct {
	query string
	args  []any
}

// execAll runs statements in one transaction, each prepared when possible:
// one commit instead of one for each. Inside a transaction already, they
// run in it.
func (c *stmtCache) execAll(ctx context.Context, stmts ...statement) error {
	if c.db.Execable(ctx) != &c.db.LoggingDB {
		for _, s := range stmts {
			if _, err := c.db.Exec(ctx, s.query, s.args...); err != nil {
				return err
			}
		}
		return nil
	}
	// Prepared before the transaction takes its connection: preparing
	// takes one too, and the pool may have no other.
	prepared := make([]*sql.Stmt, len(stmts))
	for i, s := range stmts {
		prepared[i] = c.get(ctx, s.query)
	}
	tx, err := c.db.RawDB.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for i, s := range stmts {
		if prepared[i] != nil {
			_, err = tx.StmtContext(ctx, prepared[i]).ExecContext(ctx, s.args...)
		} else {
			_, err = tx.ExecContext(ctx, s.query, s.args...)
		}
		if err != nil {
			return err
		}
	}
	return tx.Commit()
}

// execN runs a statement, prepared when possible, and returns the number
// of rows it changed.
func (c *stmtCache) execN(ctx context.Context, query string, args ...any) (int64, error) {
	var res sql.Result
	var err error
	if st := c.get(ctx, query); st != nil {
		res, err = st.ExecContext(ctx, args...)
	} else {
		res, err = c.db.Exec(ctx, query, args...)
	}
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// queryOne runs a query for one row, prepared when possible; no row is
// (nil, nil).
func queryOne[T dbutil.DataStruct[T]](ctx context.Context, c *stmtCache, fresh func() T, query string, args ...any) (T, error) {
	var row *sql.Row
	if st := c.get(ctx, query); st != nil {
		row = st.QueryRowContext(ctx, args...)
	} else {
		row = c.db.QueryRow(ctx, query, args...)
	}
	v, err := fresh().Scan(row)
	if errors.Is(err, sql.ErrNoRows) {
		var zero T
		return zero, nil
	}
	return v, err
}

func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range c.m {
		_ = st.Close()
	}
	c.m = nil
}
