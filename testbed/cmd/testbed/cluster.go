package main

import (
	"context"
	"database/sql"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/custommetrics/bundle/internal/pgserver"
	"github.com/custommetrics/bundle/testbed/accounting"
	"github.com/custommetrics/bundle/testbed/collector"
	"github.com/custommetrics/bundle/testbed/loadgen"
)

// clusterSize is the number of collectors of the cluster scenario.
const clusterSize = 3

// cluster: the same keyed ThreatConnect load at the same rate, first into
// one collector (the durable single-node pipeline storing in PostgreSQL),
// then into three collectors with cmd/otelcol-custommetrics/cluster.yaml
// behind HAProxy (round robin, no stickiness) on one PostgreSQL server.
// Both must account exactly; the cluster row reports the three collectors'
// CPU per acknowledged request against the single node's.
func (e *env) cluster(d time.Duration, rate float64) {
	name := "cluster"
	if !e.want(name) {
		return
	}
	log.Printf("scenario %s", name)
	haproxy, err := exec.LookPath("haproxy")
	if err != nil {
		e.add(&row{Scenario: name, Target: "-", Fail: []string{"haproxy is not installed (apt-get install haproxy)"}})
		return
	}
	p, err := pgserver.Start(pgserver.Options{})
	if err != nil {
		e.add(&row{Scenario: name, Target: "-", Fail: []string{"PostgreSQL: " + err.Error()}})
		return
	}
	defer p.Remove()
	db, err := accounting.OpenPostgres(p.DSN("postgres"))
	if err != nil {
		e.add(&row{Scenario: name, Target: "-", Fail: []string{"PostgreSQL: " + err.Error()}})
		return
	}
	for _, name := range []string{"single", "cluster"} {
		if _, err := db.Exec("CREATE DATABASE " + name); err != nil {
			e.add(&row{Scenario: name, Target: "-", Fail: []string{"PostgreSQL: " + err.Error()}})
			db.Close()
			return
		}
	}
	db.Close()
	t := tc(loadgen.Spread{Metrics: 4, Keys: 50, Prefix: "tb_cl"})
	cfg := loadgen.Config{Conns: 32, Rate: rate, Duration: d}

	single := e.clusterBaseline(t, cfg, p.DSN("single"))
	if single == nil {
		return
	}
	r := &row{Scenario: name, Target: fmt.Sprintf("threatconnect-keyed (%d collectors)", clusterSize)}
	defer e.add(r)
	dsn := p.DSN("cluster")
	var cs []*clusterMember
	defer func() {
		for _, c := range cs {
			if done, _ := c.proc.Exited(); !done {
				c.proc.Kill()
			}
		}
	}()
	for i := range clusterSize {
		c, err := e.startClusterMember(i, dsn)
		if err != nil {
			r.Fail = append(r.Fail, err.Error())
			return
		}
		cs = append(cs, c)
	}
	lb, front, err := e.startHAProxy(haproxy, cs)
	if err != nil {
		r.Fail = append(r.Fail, "haproxy: "+err.Error())
		return
	}
	defer func() { _ = lb.Stop(10 * time.Second) }()
	ctx := context.Background()
	if err := setup(ctx, front, t); err != nil {
		r.Fail = append(r.Fail, err.Error())
		return
	}
	var samplers []*collector.Sampler
	for _, c := range cs {
		samplers = append(samplers, collector.Sample(c.proc.Pid(), 250*time.Millisecond))
	}
	cfg.BaseURL = front
	if e.profileDir != "" {
		// A CPU profile of the first member over the middle of the load.
		go func() {
			time.Sleep(d / 4)
			file := filepath.Join(e.profileDir, "cluster-member.pprof")
			if err := fetchTo(fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/profile?seconds=%d", cs[0].pprof, max(int(d.Seconds()/2), 1)), file); err != nil {
				log.Printf("cluster profile: %v", err)
			}
		}()
	}
	r.Res = loadgen.Run(ctx, t, cfg)
	for _, s := range samplers {
		u := s.Stop()
		r.Usage.CPU += u.CPU
		r.Usage.RSSMax += u.RSSMax
		r.Usage.RSSLast += u.RSSLast
		r.Usage.Samples += u.Samples
	}
	// Closed windows are emitted at the collectors' next ticks (1s).
	time.Sleep(3 * time.Second)
	for _, c := range cs {
		if err := c.proc.Stop(60 * time.Second); err != nil {
			r.Fail = append(r.Fail, fmt.Sprintf("unclean stop: %v; log tail:\n%s", err, c.proc.Tail(30)))
		}
	}
	if rep, err := accountIn(r.Res.Ledger, accounting.Postgres, func() (*sql.DB, error) { return accounting.OpenPostgres(dsn) }); err != nil {
		r.Fail = append(r.Fail, "accounting: "+err.Error())
	} else {
		r.Loss = rep
	}
	r.Notes = append(r.Notes, fmt.Sprintf("%d collectors (cluster.yaml) behind HAProxy round robin, one PostgreSQL; CPU and RSS are the collectors' sums (PostgreSQL and HAProxy not included)", clusterSize))
	if a, b := cpuPerAck(r), cpuPerAck(single); a > 0 && b > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("CPU per acknowledged request: %.1f µs vs %.1f µs on one collector in the same run (%.2f×; target ≤ 1.5×)", a, b, a/b))
	}
}

// clusterBaseline runs the load into one durable collector storing in
// PostgreSQL database dsn; nil when it failed (its row says why).
func (e *env) clusterBaseline(t loadgen.Target, cfg loadgen.Config, dsn string) *row {
	r := &row{Scenario: "cluster", Target: "threatconnect-keyed (1 collector)"}
	e.add(r)
	c, err := e.newCollector("cluster-single", colOpts{durable: true, pgDSN: dsn})
	if err != nil {
		r.Fail = append(r.Fail, "start: "+err.Error())
		return nil
	}
	ctx := context.Background()
	if err := setup(ctx, c.api(), t); err != nil {
		c.proc.Kill()
		r.Fail = append(r.Fail, err.Error())
		return nil
	}
	s := collector.Sample(c.proc.Pid(), 250*time.Millisecond)
	cfg.BaseURL = c.api()
	r.Res = loadgen.Run(ctx, t, cfg)
	r.Usage = s.Stop()
	r.Fail = append(r.Fail, c.stop()...)
	if rep, err := c.account(r.Res.Ledger); err != nil {
		r.Fail = append(r.Fail, "accounting: "+err.Error())
	} else {
		r.Loss = rep
	}
	r.Notes = append(r.Notes, "the single-node baseline of the cluster row: the durable pipeline, storing in PostgreSQL")
	return r
}

// cpuPerAck is the CPU time per acknowledged request of a row, in µs.
func cpuPerAck(r *row) float64 {
	if r.Res == nil || r.Res.Acked == 0 {
		return 0
	}
	return r.Usage.CPU / r.Res.ReqPerSec() * 1e6
}

// clusterMember is one collector of the cluster.
type clusterMember struct {
	proc               *collector.Process
	api, health, pprof int
}

func (e *env) startClusterMember(i int, dsn string) (*clusterMember, error) {
	dir, err := os.MkdirTemp(e.work, "cluster-"+strconv.Itoa(i)+"-")
	if err != nil {
		return nil, err
	}
	c := &clusterMember{api: collector.FreePort(), health: collector.FreePort()}
	args := []string{"--config", filepath.Join(e.root, "cmd", "otelcol-custommetrics", "cluster.yaml")}
	if e.profileDir != "" {
		// -profile: the shipped cluster.yaml plus the pprof extension.
		c.pprof = collector.FreePort()
		args = append(args, "--config", fmt.Sprintf("yaml:extensions::pprof::endpoint: 127.0.0.1:%d", c.pprof),
			"--set", "service.extensions=[health_check,definitions,pprof]")
	}
	c.proc = &collector.Process{
		Bin: e.bin, Args: args,
		Dir: dir, Log: filepath.Join(dir, "collector.log"),
		Env: []string{
			"CUSTOMMETRICS_PG_DSN=" + dsn,
			"CUSTOMMETRICS_ENDPOINT=127.0.0.1:" + strconv.Itoa(c.api),
			"CUSTOMMETRICS_HEALTH_ENDPOINT=127.0.0.1:" + strconv.Itoa(c.health),
			"CUSTOMMETRICS_TELEMETRY_PORT=" + strconv.Itoa(collector.FreePort()),
		},
	}
	if err := c.proc.Start(); err != nil {
		return nil, err
	}
	if err := c.proc.WaitHTTP("http://127.0.0.1:"+strconv.Itoa(c.health)+"/", 60*time.Second); err != nil {
		c.proc.Kill()
		return nil, fmt.Errorf("collector %d: %w", i, err)
	}
	return c, nil
}

// startHAProxy runs HAProxy in the foreground with a round-robin backend of
// the members' receivers (health-checked on their health_check endpoints)
// and returns the process and its frontend URL.
func (e *env) startHAProxy(bin string, cs []*clusterMember) (*collector.Process, string, error) {
	dir, err := os.MkdirTemp(e.work, "haproxy-")
	if err != nil {
		return nil, "", err
	}
	front := collector.FreePort()
	var b strings.Builder
	fmt.Fprintf(&b, `global
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend api
  bind 127.0.0.1:%d
  default_backend collectors
backend collectors
  balance roundrobin
  option httpchk GET /
`, front)
	for i, c := range cs {
		fmt.Fprintf(&b, "  server c%d 127.0.0.1:%d check port %d inter 1s\n", i, c.api, c.health)
	}
	cfg := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfg, []byte(b.String()), 0o644); err != nil {
		return nil, "", err
	}
	p := &collector.Process{Bin: bin, Args: []string{"-db", "-f", cfg}, Dir: dir, Log: filepath.Join(dir, "haproxy.log")}
	if err := p.Start(); err != nil {
		return nil, "", err
	}
	url := "http://127.0.0.1:" + strconv.Itoa(front)
	// The receiver answers 404 at "/": any HTTP answer through the frontend
	// means HAProxy forwards.
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url + "/"); err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable {
				return p, url, nil
			}
		}
		if done, err := p.Exited(); done {
			return nil, "", fmt.Errorf("exited (%v): %s", err, p.Tail(20))
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = p.Stop(5 * time.Second)
	return nil, "", fmt.Errorf("not forwarding after 15s: %s", p.Tail(20))
}
