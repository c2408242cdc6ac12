package main

import (
	"context"
	"fmt"
	"log"
	"runtime"
	"sync"
	"time"

	"github.com/custommetrics/bundle/internal/pgserver"
	"github.com/custommetrics/bundle/testbed/accounting"
	"github.com/custommetrics/bundle/testbed/collector"
	"github.com/custommetrics/bundle/testbed/loadgen"
)

func numCPU() int { return runtime.NumCPU() }

// startPG starts a private PostgreSQL server (internal/pgserver) with
// PostgreSQL's durability (the scenario crashes it) and a database testbed.
func startPG() (*pgserver.Server, error) {
	p, err := pgserver.Start(pgserver.Options{Durable: true})
	if err != nil {
		return nil, err
	}
	db, err := accounting.OpenPostgres(p.DSN("postgres"))
	if err != nil {
		p.Remove()
		return nil, err
	}
	defer db.Close()
	if _, err := db.Exec("CREATE DATABASE testbed"); err != nil {
		p.Remove()
		return nil, err
	}
	return p, nil
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
	defer p.Remove()
	c, err := e.newCollector(name, colOpts{durable: true, pgDSN: p.DSN("testbed")})
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
	if err := p.Stop("immediate"); err != nil {
		r.Fail = append(r.Fail, "stopping PostgreSQL: "+err.Error())
	}
	time.Sleep(10 * time.Second)
	if err := p.Start(); err != nil {
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
