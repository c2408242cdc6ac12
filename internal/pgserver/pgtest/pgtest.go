// Package pgtest gives the tests of a package one private PostgreSQL server
// (internal/pgserver), started on first use and removed by Main.
package pgtest // import "github.com/custommetrics/bundle/internal/pgserver/pgtest"

import (
	"context"
	"os"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/custommetrics/bundle/internal/pgserver"
)

var shared struct {
	once sync.Once
	srv  *pgserver.Server
	err  error
}

// Main runs the package's tests, then removes the server; call it from
// TestMain.
func Main(m *testing.M) {
	code := m.Run()
	if shared.srv != nil {
		shared.srv.Remove()
	}
	os.Exit(code)
}

// Server returns the package's server, starting it on first use.
func Server(tb testing.TB) *pgserver.Server {
	tb.Helper()
	shared.once.Do(func() { shared.srv, shared.err = pgserver.Start(pgserver.Options{}) })
	require.NoError(tb, shared.err)
	return shared.srv
}

// DSN returns the URL of database db on the package's server, creating the
// database when missing.
func DSN(tb testing.TB, db string) string {
	tb.Helper()
	srv := Server(tb)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, srv.DSN("postgres"))
	require.NoError(tb, err)
	defer conn.Close(ctx)
	var exists bool
	require.NoError(tb, conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", db).Scan(&exists))
	if !exists {
		_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{db}.Sanitize())
		require.NoError(tb, err)
	}
	return srv.DSN(db)
}
