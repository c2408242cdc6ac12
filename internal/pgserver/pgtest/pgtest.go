// Package pgtest gives the tests of a package one private PostgreSQL server
// (internal/pgserver), started on first use and removed by Main.
package pgtest // import "github.com/custommetrics/bundle/internal/pgserver/pgtest"

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
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

// NewDatabase creates an empty database on the package's server and returns
// its URL. Each call has its own database, so tests (and -count=N reruns)
// never see each other's rows.
func NewDatabase(tb testing.TB) string {
	tb.Helper()
	srv := Server(tb)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, srv.DSN("postgres"))
	require.NoError(tb, err)
	defer conn.Close(ctx)
	db := fmt.Sprintf("test_%d", databases.Add(1))
	_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+db)
	require.NoError(tb, err)
	_, err = conn.Exec(ctx, "CREATE DATABASE "+db)
	require.NoError(tb, err)
	return srv.DSN(db)
}

var databases atomic.Int64
