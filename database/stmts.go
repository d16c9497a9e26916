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
	db    *dbutil.Database
	batch batcher

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

// exec runs a statement that writes (write).
func (c *stmtCache) exec(ctx context.Context, query string, args ...any) error {
	_, err := c.write(ctx, statement{query, args})
	return err
}

// statement is a query with its arguments, for execAll.
type statement struct {
	query string
	args  []any
}

// execAll runs statements in one transaction (write): one commit instead
// of one for each.
func (c *stmtCache) execAll(ctx context.Context, stmts ...statement) error {
	_, err := c.write(ctx, stmts...)
	return err
}

// execN runs a statement that writes (write) and returns the number of
// rows it changed.
func (c *stmtCache) execN(ctx context.Context, query string, args ...any) (int64, error) {
	n, err := c.write(ctx, statement{query, args})
	if err != nil {
		return 0, err
	}
	return n[0], nil
}

// write runs statements that write, all or none, and returns the rows each
// changed. Inside a transaction they run in it; else they are committed
// together with whatever other writes wait at the time (group commit).
func (c *stmtCache) write(ctx context.Context, stmts ...statement) ([]int64, error) {
	if c.db.Execable(ctx) == &c.db.LoggingDB {
		return c.batch.do(stmts)
	}
	n := make([]int64, len(stmts))
	for i, s := range stmts {
		res, err := c.db.Exec(ctx, s.query, s.args...)
		if err != nil {
			return nil, err
		}
		if n[i], err = res.RowsAffected(); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// run runs writes in one transaction, their statements prepared where
// possible, and fills in the rows each statement changed.
func (c *stmtCache) run(ctx context.Context, writes []*write) error {
	// Prepared before the transaction takes its connection: preparing
	// takes one too, and the pool may have no other.
	prepared := make(map[string]*sql.Stmt)
	for _, w := range writes {
		for _, s := range w.stmts {
			if _, ok := prepared[s.query]; !ok {
				prepared[s.query] = c.get(ctx, s.query)
			}
		}
	}
	tx, err := c.db.RawDB.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, w := range writes {
		for i, s := range w.stmts {
			var res sql.Result
			if st := prepared[s.query]; st != nil {
				res, err = tx.StmtContext(ctx, st).ExecContext(ctx, s.args...)
			} else {
				res, err = tx.ExecContext(ctx, s.query, s.args...)
			}
			if err == nil {
				w.changed[i], err = res.RowsAffected()
			}
			if err != nil {
				return err
			}
		}
	}
	return tx.Commit()
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
	c.batch.close()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range c.m {
		_ = st.Close()
	}
	c.m = nil
}
