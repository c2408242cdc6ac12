// Package pgdb opens the PostgreSQL database that cluster mode shares
// (internal/pgdefinitions, internal/pgwindows) and creates tables in it.
package pgdb // import "github.com/custommetrics/bundle/internal/pgdb"

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/collector/config/configopaque"
)

// Config is a component's `postgres` section: the database that cluster
// mode shares. The components name it PostgresConfig (an alias).
type Config struct {
	// DSN is the database's URL, e.g. postgres://user:password@host:5432/db
	// (or a libpq key=value string). The component creates its tables.
	DSN configopaque.String `mapstructure:"dsn"`

	// prevent unkeyed literal initialization
	_ struct{}
}

// ErrDSN says that a DSN does not parse. pgx's own message may quote the
// DSN, password included, so it is not passed on.
var ErrDSN = errors.New("postgres::dsn is not a valid PostgreSQL URL or key=value string")

// Parse parses dsn (a postgres:// URL or a libpq key=value string).
func Parse(dsn string) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, ErrDSN
	}
	return cfg, nil
}

// Open returns a pool on dsn, and its parsed configuration (for logs: host
// and database, never the password).
func Open(ctx context.Context, dsn, what string) (*pgxpool.Pool, *pgxpool.Config, error) {
	cfg, err := Parse(dsn)
	if err != nil {
		return nil, nil, err
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("connecting to the %s database: %w", what, err)
	}
	return pool, cfg, nil
}

// CreateSchema runs ddl (idempotent statements: CREATE ... IF NOT EXISTS)
// under a transaction-scoped advisory lock named name, so that collectors
// starting together wait for each other instead of failing on a duplicate.
func CreateSchema(ctx context.Context, pool *pgxpool.Pool, name, ddl string) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext($1))", name); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, ddl)
		return err
	})
}

// Validate checks a component's postgres::dsn: required, parsable, and not
// together with a storage extension (withStorage), since the component's
// state (what) lives in one place.
func Validate(dsn string, withStorage bool, what string) error {
	switch {
	case withStorage:
		return fmt.Errorf("storage and postgres are exclusive: %s live in one place", what)
	case dsn == "":
		return errors.New("postgres::dsn is required")
	}
	_, err := Parse(dsn)
	return err
}
