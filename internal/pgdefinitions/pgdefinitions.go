// Package pgdefinitions keeps the definitions registry (internal/definitions)
// in PostgreSQL, shared by any number of collectors: it implements
// definitions.SharedBackend with row locks, version counters and
// LISTEN/NOTIFY, so that a definition created, changed or deleted on one
// collector is seen by every other at once.
//
// Tables:
//
//	definitions          key text PRIMARY KEY, value bytea    the registry's documents (its own key layout)
//	definition_versions  name text PRIMARY KEY, version int8  one lock per name the registry locks,
//	                                                          with the number of changes made under it
//
// Every committed Update sends NOTIFY custommetrics_definitions.
package pgdefinitions // import "github.com/custommetrics/bundle/internal/pgdefinitions"

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/collector/extension/xextension/storage"
	"go.uber.org/zap"

	"github.com/custommetrics/bundle/internal/definitions"
	"github.com/custommetrics/bundle/internal/pgdb"
)

const schema = `CREATE TABLE IF NOT EXISTS definitions (
  key text PRIMARY KEY,
  value bytea NOT NULL
);
CREATE TABLE IF NOT EXISTS definition_versions (
  name text PRIMARY KEY,
  version int8 NOT NULL
)`

// channel is the NOTIFY channel of committed changes.
const channel = "custommetrics_definitions"

// Backend is a definitions.SharedBackend on a PostgreSQL database.
type Backend struct {
	// BatchFunc is batch: Get, Set, Delete and Batch outside any Update.
	definitions.BatchFunc

	pool   *pgxpool.Pool
	logger *zap.Logger

	mu       sync.Mutex
	onChange []func()

	cancel context.CancelFunc
	done   chan struct{}
}

var _ definitions.SharedBackend = (*Backend)(nil)

// New creates the tables when missing and starts listening for other
// collectors' changes; Close stops it.
func New(ctx context.Context, pool *pgxpool.Pool, logger *zap.Logger) (*Backend, error) {
	if err := pgdb.CreateSchema(ctx, pool, "custommetrics_definitions_schema", schema); err != nil {
		return nil, fmt.Errorf("pgdefinitions: creating the tables: %w", err)
	}
	lctx, cancel := context.WithCancel(context.Background())
	b := &Backend{pool: pool, logger: logger, cancel: cancel, done: make(chan struct{})}
	b.BatchFunc = b.batch
	go b.listen(lctx)
	return b, nil
}

// Close stops listening; it does not close the pool.
func (b *Backend) Close() {
	b.cancel()
	<-b.done
}

// batch applies the operations in order, in one transaction.
func (b *Backend) batch(ctx context.Context, ops ...*storage.Operation) error {
	return pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error { return apply(ctx, tx, ops) })
}

func apply(ctx context.Context, tx pgx.Tx, ops []*storage.Operation) error {
	for _, op := range ops {
		switch op.Type {
		case storage.Get:
			op.Value = nil
			err := tx.QueryRow(ctx, "SELECT value FROM definitions WHERE key = $1", op.Key).Scan(&op.Value)
			if err != nil && !errors.Is(err, pgx.ErrNoRows) {
				return err
			}
		case storage.Set:
			if _, err := tx.Exec(ctx, `INSERT INTO definitions (key, value) VALUES ($1, $2)
ON CONFLICT (key) DO UPDATE SET value = excluded.value`, op.Key, op.Value); err != nil {
				return err
			}
		case storage.Delete:
			if _, err := tx.Exec(ctx, "DELETE FROM definitions WHERE key = $1", op.Key); err != nil {
				return err
			}
		}
	}
	return nil
}

// Versions implements definitions.SharedBackend, with one query.
func (b *Backend) Versions(ctx context.Context, names []string) ([]uint64, error) {
	rows, err := b.pool.Query(ctx, "SELECT name, version FROM definition_versions WHERE name = ANY($1)", names)
	if err != nil {
		return nil, err
	}
	got := make(map[string]uint64, len(names))
	for rows.Next() {
		var name string
		var v int64
		if err := rows.Scan(&name, &v); err != nil {
			rows.Close()
			return nil, err
		}
		got[name] = uint64(v)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	vs := make([]uint64, len(names))
	for i, name := range names {
		vs[i] = got[name] // 0: never changed
	}
	return vs, nil
}

// Update implements definitions.SharedBackend. Locks are taken in name
// order, so concurrent Updates cannot deadlock.
func (b *Backend) Update(ctx context.Context, names []string, fn func(tx definitions.Backend, versions []uint64) error) ([]uint64, error) {
	sorted := slices.Clone(names)
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	held := make(map[string]uint64, len(sorted))
	var fnErr error
	err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		for _, name := range sorted {
			if _, err := tx.Exec(ctx, "INSERT INTO definition_versions (name, version) VALUES ($1, 0) ON CONFLICT (name) DO NOTHING", name); err != nil {
				return err
			}
			var v int64
			if err := tx.QueryRow(ctx, "SELECT version FROM definition_versions WHERE name = $1 FOR UPDATE", name).Scan(&v); err != nil {
				return err
			}
			held[name] = uint64(v)
		}
		before := make([]uint64, len(names))
		for i, name := range names {
			before[i] = held[name]
		}
		inTx := definitions.BatchFunc(func(ctx context.Context, ops ...*storage.Operation) error { return apply(ctx, tx, ops) })
		if fnErr = fn(inTx, before); fnErr != nil {
			return fnErr
		}
		if _, err := tx.Exec(ctx, "UPDATE definition_versions SET version = version + 1 WHERE name = ANY($1)", sorted); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "SELECT pg_notify($1, '')", channel)
		return err
	})
	if fnErr != nil {
		return nil, fnErr
	}
	if err != nil {
		return nil, err
	}
	after := make([]uint64, len(names))
	for i, name := range names {
		after[i] = held[name] + 1
	}
	return after, nil
}

// OnChange implements definitions.SharedBackend.
func (b *Backend) OnChange(fn func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.onChange = append(b.onChange, fn)
}

func (b *Backend) changed() {
	b.mu.Lock()
	fns := slices.Clone(b.onChange)
	b.mu.Unlock()
	for _, fn := range fns {
		fn()
	}
}

// listen calls the OnChange functions for every notification, on a
// connection of its own. After a lost connection it reconnects and calls
// them once, for the notifications it may have missed meanwhile.
func (b *Backend) listen(ctx context.Context) {
	defer close(b.done)
	for backoff := 100 * time.Millisecond; ctx.Err() == nil; {
		err := b.listenOnce(ctx, func() { backoff = 100 * time.Millisecond })
		if ctx.Err() != nil {
			return
		}
		b.logger.Warn("Listening for definition changes of other collectors failed; reconnecting", zap.Error(err))
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
		b.changed()
	}
}

func (b *Backend) listenOnce(ctx context.Context, connected func()) error {
	pc, err := b.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// The listening connection leaves the pool: nobody else may use it.
	conn := pc.Hijack()
	defer func() { _ = conn.Close(context.Background()) }()
	if _, err := conn.Exec(ctx, "LISTEN "+channel); err != nil {
		return err
	}
	connected()
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return err
		}
		b.changed()
	}
}
