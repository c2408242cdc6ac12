// Package pgserver runs a private PostgreSQL server from Debian's
// `postgresql` package, for tests and the testbed: its data directory lives
// in a temporary directory, it listens on a free loopback port only, and it
// runs as the `postgres` user when the caller is root (PostgreSQL refuses to
// run as root). Nothing system-wide is configured, and there is no service
// manager involved: the server is a plain child process of pg_ctl.
package pgserver // import "github.com/custommetrics/bundle/internal/pgserver"

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// ErrNotInstalled says that no /usr/lib/postgresql/*/bin/initdb exists.
var ErrNotInstalled = errors.New("PostgreSQL is not installed: no /usr/lib/postgresql/*/bin/initdb " +
	"(install the Debian package `postgresql`: apt-get install -y postgresql)")

// Options say how the server trades durability for speed.
type Options struct {
	// Durable keeps PostgreSQL's defaults (fsync on). Otherwise initdb skips
	// its syncs and the server runs with fsync and full_page_writes off:
	// fine for tests that never lose power.
	Durable bool
}

// Server is one running (or stopped) server.
type Server struct {
	bin, dir, asUser string
	port             int
	opts             Options
	running          bool
}

// BinDir returns the newest /usr/lib/postgresql/<version>/bin holding
// initdb, or "" when PostgreSQL is not installed.
func BinDir() string {
	m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	sort.Slice(m, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(m[i]))))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(m[j]))))
		return vi > vj
	})
	if len(m) == 0 {
		return ""
	}
	return filepath.Dir(m[0])
}

// Start creates a cluster in a new temporary directory and starts it. The
// caller must Remove it.
func Start(opts Options) (*Server, error) {
	s := &Server{bin: BinDir(), opts: opts}
	if s.bin == "" {
		return nil, ErrNotInstalled
	}
	var err error
	if s.port, err = freePort(); err != nil {
		return nil, err
	}
	// Not a test's TempDir: its parent is private to root, and the server
	// runs as postgres.
	if s.dir, err = os.MkdirTemp("", "pgserver-"); err != nil {
		return nil, err
	}
	if err := s.prepareDir(); err != nil {
		s.Remove()
		return nil, err
	}
	args := []string{"-D", s.dataDir(), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C"}
	if !opts.Durable {
		args = append(args, "--no-sync")
	}
	if err := s.run("initdb", args...); err != nil {
		s.Remove()
		return nil, err
	}
	if err := s.Start(); err != nil {
		s.Remove()
		return nil, err
	}
	return s, nil
}

func (s *Server) prepareDir() error {
	if err := os.Chmod(s.dir, 0o755); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return fmt.Errorf("running as root and there is no postgres user to run PostgreSQL as (the Debian package `postgresql` creates it): %w", err)
	}
	s.asUser = "postgres"
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return os.Chown(s.dir, uid, gid)
}

func (s *Server) dataDir() string { return filepath.Join(s.dir, "data") }

func (s *Server) command(name string, args ...string) *exec.Cmd {
	path := filepath.Join(s.bin, name)
	if s.asUser != "" {
		return exec.Command("runuser", append([]string{"-u", s.asUser, "--", path}, args...)...)
	}
	return exec.Command(path, args...)
}

// run runs one of the server's binaries as the server's user; its error
// carries the command's output and the server log.
func (s *Server) run(name string, args ...string) error {
	out, err := s.command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w\n%s\nserver log:\n%s", name, strings.Join(args, " "), err, out, s.Log())
	}
	return nil
}

// Start (re)starts the server on its port and waits until it accepts
// connections.
func (s *Server) Start() error {
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c max_connections=50", s.port, s.dir)
	if !s.opts.Durable {
		opts += " -c fsync=off -c full_page_writes=off"
	}
	if err := s.run("pg_ctl", "-D", s.dataDir(), "-w", "-t", "60", "-l", filepath.Join(s.dir, "log"), "-o", opts, "start"); err != nil {
		return err
	}
	s.running = true
	return nil
}

// Stop stops the server: mode "immediate" is a crash, "fast" a clean stop.
func (s *Server) Stop(mode string) error {
	if !s.running {
		return nil
	}
	s.running = false
	return s.run("pg_ctl", "-D", s.dataDir(), "-w", "-m", mode, "stop")
}

// Remove stops the server (as a crash) and deletes its directory.
func (s *Server) Remove() {
	_ = s.Stop("immediate")
	_ = os.RemoveAll(s.dir)
}

// DSN returns the URL of database db on the server (user postgres, trust).
func (s *Server) DSN(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, db)
}

// Log returns the server's log so far.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "log"))
	return string(b)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
