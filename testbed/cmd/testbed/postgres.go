package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/custommetrics/bundle/testbed/accounting"
	"github.com/custommetrics/bundle/testbed/collector"
	"github.com/custommetrics/bundle/testbed/loadgen"
)

func numCPU() int { return runtime.NumCPU() }

// pg is a throwaway PostgreSQL server (Debian's postgresql package), run as
// the postgres user when the testbed runs as root.
type pg struct {
	bin, dir, asUser string
	port             int
}

func pgBinDir() string {
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

func (p *pg) cmd(name string, args ...string) *exec.Cmd {
	path := filepath.Join(p.bin, name)
	if p.asUser != "" {
		return exec.Command("runuser", append([]string{"-u", p.asUser, "--", path}, args...)...)
	}
	return exec.Command(path, args...)
}

func (p *pg) run(name string, args ...string) error {
	if out, err := p.cmd(name, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %w\n%s", name, err, out)
	}
	return nil
}

func (p *pg) start() error {
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c max_connections=50", p.port, p.dir)
	return p.run("pg_ctl", "-D", filepath.Join(p.dir, "data"), "-w", "-t", "60", "-l", filepath.Join(p.dir, "log"), "-o", opts, "start")
}

func (p *pg) stop(mode string) error {
	return p.run("pg_ctl", "-D", filepath.Join(p.dir, "data"), "-w", "-m", mode, "stop")
}

func startPG() (*pg, error) {
	p := &pg{bin: pgBinDir(), port: collector.FreePort()}
	if p.bin == "" {
		return nil, fmt.Errorf("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb; Debian package `postgresql`)")
	}
	dir, err := os.MkdirTemp("", "testbed-pg-")
	if err != nil {
		return nil, err
	}
	p.dir = dir
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root and no postgres user: %w", err)
		}
		p.asUser = "postgres"
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, err
		}
	}
	if err := p.run("initdb", "-D", filepath.Join(dir, "data"), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C"); err != nil {
		return nil, err
	}
	if err := p.start(); err != nil {
		return nil, err
	}
	db, err := accounting.OpenPostgres(p.dsn("postgres"))
	if err != nil {
		return nil, err
	}
	defer db.Close()
	if _, err := db.Exec("CREATE DATABASE testbed"); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *pg) dsn(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", p.port, db)
}

func (p *pg) cleanup() {
	_ = p.stop("immediate")
	_ = os.RemoveAll(p.dir)
}

// postgresDown: load at a fixed rate into a collector storing in PostgreSQL;
// the database crashes (pg_ctl stop -m immediate) for a while mid-load and
// comes back. Acks may pause or be refused, but every acknowledged value
// must be in the database at the end.
func (e *env) postgresDown() {
	name := "postgres-down"
	if !e.want(name) {
		return
	}
	log.Printf("scenario %s", name)
	p, err := startPG()
	if err != nil {
		e.add(&row{Scenario: name, Target: "-", Notes: []string{"skipped: " + err.Error()}})
		return
	}
	defer p.cleanup()
	c, err := e.newCollector(name, colOpts{durable: true, pgDSN: p.dsn("testbed")})
	if err != nil {
		e.add(&row{Scenario: name, Target: "-", Fail: []string{"start: " + err.Error()}})
		return
	}
	t := tc(loadgen.Spread{Metrics: 4, Keys: 50, Prefix: "tb_pg"})
	ctx := context.Background()
	if err := setup(ctx, c.api(), t); err != nil {
		c.proc.Kill()
		e.add(&row{Scenario: name, Target: "-", Fail: []string{err.Error()}})
		return
	}
	const d = 30 * time.Second
	r := &row{Scenario: name, Target: "threatconnect-keyed"}
	s := collector.Sample(c.proc.Pid(), 250*time.Millisecond)
	var res *loadgen.Result
	var wg sync.WaitGroup
	wg.Go(func() {
		res = loadgen.Run(ctx, t, loadgen.Config{BaseURL: c.api(), Conns: 32, Rate: 2000, Duration: d})
	})
	time.Sleep(8 * time.Second)
	if err := p.stop("immediate"); err != nil {
		r.Fail = append(r.Fail, "stopping PostgreSQL: "+err.Error())
	}
	time.Sleep(10 * time.Second)
	if err := p.start(); err != nil {
		r.Fail = append(r.Fail, "restarting PostgreSQL: "+err.Error())
	}
	wg.Wait()
	r.Usage = s.Stop()
	r.Res = res
	r.Notes = append(r.Notes, "PostgreSQL crashed (pg_ctl stop -m immediate) after 8s of load and restarted 10s later",
		fmt.Sprintf("answers %v, transport errors %d", res.Status, res.Unknown+res.NotSent))
	// Give the exporter's retries time to drain the queue before the stop.
	time.Sleep(5 * time.Second)
	r.Fail = append(r.Fail, c.stop()...)
	if rep, err := c.account(res.Ledger); err != nil {
		r.Fail = append(r.Fail, "accounting: "+err.Error())
	} else {
		r.Loss = rep
	}
	e.add(r)
}
