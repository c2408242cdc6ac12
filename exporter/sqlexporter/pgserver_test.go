package sqlexporter

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/require"

	"github.com/custommetrics/bundle/internal/pgserver"
)

// pgServer is a real PostgreSQL server (internal/pgserver) private to a
// test, stopped and removed in t.Cleanup.
type pgServer struct {
	tb  testing.TB
	srv *pgserver.Server
}

const skipPostgresEnv = "SQLEXPORTER_SKIP_POSTGRES"

// startPostgres starts a server for tb. When PostgreSQL is not installed the
// test fails (CI installs it), unless SQLEXPORTER_SKIP_POSTGRES=1.
func startPostgres(tb testing.TB) *pgServer {
	tb.Helper()
	if os.Getenv(skipPostgresEnv) == "1" {
		tb.Skipf("%s=1: skipping the PostgreSQL tests", skipPostgresEnv)
	}
	srv, err := pgserver.Start(pgserver.Options{})
	if errors.Is(err, pgserver.ErrNotInstalled) {
		tb.Fatalf("%v, or set %s=1 to skip these tests", err, skipPostgresEnv)
	}
	require.NoError(tb, err)
	tb.Cleanup(srv.Remove)
	return &pgServer{tb: tb, srv: srv}
}

// start restarts the server after stop.
func (s *pgServer) start() {
	s.tb.Helper()
	require.NoError(s.tb, s.srv.Start())
}

// stop stops the server: mode "immediate" is a crash, "fast" a clean stop.
func (s *pgServer) stop(mode string) {
	s.tb.Helper()
	require.NoError(s.tb, s.srv.Stop(mode))
}

// dsn returns the URL of database db on the server.
func (s *pgServer) dsn(db string) string { return s.srv.DSN(db) }

var pgDatabaseSeq atomic.Int64

// newDatabase creates an empty database and returns its DSN.
func (s *pgServer) newDatabase() string {
	s.tb.Helper()
	name := fmt.Sprintf("test_%d", pgDatabaseSeq.Add(1))
	// Closed at once, not in s.tb's cleanup: a benchmark creates databases
	// for every run and would otherwise exhaust max_connections.
	cfg, err := pgx.ParseConfig(s.dsn("postgres"))
	require.NoError(s.tb, err)
	db := stdlib.OpenDB(*cfg)
	defer db.Close()
	_, err = db.Exec("CREATE DATABASE " + name)
	require.NoError(s.tb, err)
	return s.dsn(name)
}

func openPostgres(tb testing.TB, dsn string) *sql.DB {
	tb.Helper()
	cfg, err := pgx.ParseConfig(dsn)
	require.NoError(tb, err)
	db := stdlib.OpenDB(*cfg)
	tb.Cleanup(func() { _ = db.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(tb, db.PingContext(ctx))
	return db
}

func freePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(tb, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
