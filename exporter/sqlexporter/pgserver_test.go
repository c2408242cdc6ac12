package sqlexporter

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/require"
)

// pgServer is a real PostgreSQL server from Debian's postgresql package,
// private to a test: its data directory lives in a temporary directory, it
// listens on a free loopback port, and it is stopped and removed in
// t.Cleanup.
type pgServer struct {
	tb      testing.TB
	bin     string // directory of initdb, pg_ctl, postgres
	dir     string // temporary directory: data/, socket, log
	port    int
	asUser  string // run the binaries as this user (postgres when the test runs as root)
	running bool
}

const skipPostgresEnv = "SQLEXPORTER_SKIP_POSTGRES"

// postgresBinDir finds the newest /usr/lib/postgresql/<version>/bin holding initdb.
func postgresBinDir() string {
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	sort.Slice(matches, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(matches[i]))))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(matches[j]))))
		return vi > vj
	})
	if len(matches) == 0 {
		return ""
	}
	return filepath.Dir(matches[0])
}

// startPostgres starts a server for tb. When PostgreSQL is not installed the
// test fails (CI installs it), unless SQLEXPORTER_SKIP_POSTGRES=1.
func startPostgres(tb testing.TB) *pgServer {
	tb.Helper()
	if os.Getenv(skipPostgresEnv) == "1" {
		tb.Skipf("%s=1: skipping the PostgreSQL tests", skipPostgresEnv)
	}
	bin := postgresBinDir()
	if bin == "" {
		tb.Fatalf("PostgreSQL is not installed: no /usr/lib/postgresql/*/bin/initdb. Install the Debian package "+
			"`postgresql` (apt-get install -y postgresql), or set %s=1 to skip these tests", skipPostgresEnv)
	}
	s := &pgServer{tb: tb, bin: bin}
	if os.Geteuid() == 0 {
		// PostgreSQL refuses to run as root.
		s.asUser = "postgres"
		if _, err := user.Lookup(s.asUser); err != nil {
			tb.Fatalf("running as root and there is no %q user to run PostgreSQL as (the Debian package `postgresql` creates it): %v", s.asUser, err)
		}
	}
	// Not t.TempDir: its parent is private to root, and the server runs as postgres.
	dir, err := os.MkdirTemp("", "sqlexporter-pg-")
	require.NoError(tb, err)
	s.dir = dir
	tb.Cleanup(func() {
		s.stop("immediate")
		_ = os.RemoveAll(dir)
	})
	require.NoError(tb, os.Chmod(dir, 0o755))
	if s.asUser != "" {
		u, err := user.Lookup(s.asUser)
		require.NoError(tb, err)
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		require.NoError(tb, os.Chown(dir, uid, gid))
	}
	s.port = freePort(tb)
	s.run("initdb", "-D", s.dataDir(), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8", "--locale=C")
	s.start()
	return s
}

func (s *pgServer) dataDir() string { return filepath.Join(s.dir, "data") }

// run runs one of the server's binaries as the server's user; it fails the
// test with the command's output when it fails.
func (s *pgServer) run(name string, args ...string) {
	s.tb.Helper()
	out, err := s.command(name, args...).CombinedOutput()
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(s.dir, "log"))
		s.tb.Fatalf("%s %s: %v\n%s\nserver log:\n%s", name, strings.Join(args, " "), err, out, log)
	}
}

func (s *pgServer) command(name string, args ...string) *exec.Cmd {
	path := filepath.Join(s.bin, name)
	if s.asUser != "" {
		return exec.Command("runuser", append([]string{"-u", s.asUser, "--", path}, args...)...)
	}
	return exec.Command(path, args...)
}

// start (re)starts the server on its port and waits until it accepts connections.
func (s *pgServer) start() {
	s.tb.Helper()
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c max_connections=50",
		s.port, s.dir)
	s.run("pg_ctl", "-D", s.dataDir(), "-w", "-t", "60", "-l", filepath.Join(s.dir, "log"), "-o", opts, "start")
	s.running = true
}

// stop stops the server: mode "immediate" is a crash, "fast" a clean stop.
func (s *pgServer) stop(mode string) {
	if !s.running {
		return
	}
	s.running = false
	if out, err := s.command("pg_ctl", "-D", s.dataDir(), "-w", "-m", mode, "stop").CombinedOutput(); err != nil {
		s.tb.Errorf("pg_ctl stop: %v\n%s", err, out)
	}
}

// dsn returns the URL of database db on the server.
func (s *pgServer) dsn(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, db)
}

var pgDatabaseSeq atomic.Int64

// newDatabase creates an empty database and returns its DSN.
func (s *pgServer) newDatabase() string {
	s.tb.Helper()
	name := fmt.Sprintf("test_%d", pgDatabaseSeq.Add(1))
	db := s.open("postgres")
	_, err := db.Exec("CREATE DATABASE " + name)
	require.NoError(s.tb, err)
	return s.dsn(name)
}

// open opens database name for the test's own queries; closed in t.Cleanup.
func (s *pgServer) open(name string) *sql.DB {
	return openPostgres(s.tb, s.dsn(name))
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
