// Command testbed runs the load, loss and fault scenarios against the built
// distribution and writes a Markdown report with PNG plots.
//
//	go run ./testbed/cmd/testbed -short            # CI set (< 5 min), fails on loss or crash
//	go run ./testbed/cmd/testbed -out docs         # full set, writes docs/benchmarks.md
//
// See testbed/README.md.
package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/custommetrics/bundle/testbed/accounting"
	"github.com/custommetrics/bundle/testbed/collector"
	"github.com/custommetrics/bundle/testbed/loadgen"
)

type env struct {
	root, bin, work string
	short           bool
	only            *regexp.Regexp
	rows            []*row
	sweeps          map[string][]*row // target -> rows by offered load
	failures        []string
	started         time.Time
	self            string
	loadStart       string
	// profileDir, when set, receives a CPU profile of the collector per
	// scenario (taken through the pprof extension during the load).
	profileDir string
}

// row is one line of the report.
type row struct {
	Scenario, Target string
	Res              *loadgen.Result
	Usage            collector.Usage
	Loss             *accounting.Report
	Notes            []string
	Fail             []string
}

func main() {
	bare := flag.String("bare-server", "", "internal: serve the bare net/http baseline on this address")
	short := flag.Bool("short", false, "run the CI set only")
	out := flag.String("out", "", "directory to write benchmarks.md and the plots into (empty: print only)")
	only := flag.String("run", "", "run only scenarios whose name matches this regular expression")
	root := flag.String("root", "", "repository root (default: found from the working directory)")
	profile := flag.String("profile", "", "directory to write a CPU profile of the collector per scenario into (go tool pprof)")
	jsonOut := flag.String("json", "", "also write the results table as JSON ({\"rows\": [...]}) to this file")
	repeat := flag.Int("repeat", 1, "run every point this many times and report the median by req/s (the machine is shared and noisy)")
	flag.Parse()
	if *bare != "" {
		serveBare(*bare)
		return
	}
	log.SetFlags(log.Ltime)
	e := &env{short: *short, sweeps: map[string][]*row{}, started: time.Now(), loadStart: loadAvg(), profileDir: *profile}
	var err error
	if e.root, err = findRoot(*root); err != nil {
		log.Fatal(err)
	}
	if *only != "" {
		e.only = regexp.MustCompile(*only)
	}
	if e.self, err = os.Executable(); err != nil {
		log.Fatal(err)
	}
	if e.work, err = os.MkdirTemp("", "testbed-"); err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(e.work)
	e.bin = filepath.Join(e.work, "otelcol-custommetrics")
	log.Printf("building the distribution (go build ./cmd/otelcol-custommetrics) in %s", e.root)
	if err := collector.Build(context.Background(), e.root, e.bin); err != nil {
		log.Fatal(err)
	}
	for range max(*repeat, 1) {
		if e.short {
			e.shortSet()
		} else {
			e.fullSet()
		}
	}
	e.medians()
	md := e.markdown(*out)
	if *jsonOut != "" {
		if err := e.writeJSON(*jsonOut); err != nil {
			log.Fatal(err)
		}
		log.Printf("wrote %s", *jsonOut)
	}
	if *out != "" {
		if err := os.MkdirAll(*out, 0o755); err != nil {
			log.Fatal(err)
		}
		name := "benchmarks.md"
		if e.short {
			name = "benchmarks-short.md"
		}
		if err := os.WriteFile(filepath.Join(*out, name), []byte(md), 0o644); err != nil {
			log.Fatal(err)
		}
		log.Printf("wrote %s", filepath.Join(*out, name))
	} else {
		fmt.Println(md)
	}
	if len(e.failures) > 0 {
		log.Printf("FAILED (%d):", len(e.failures))
		for _, f := range e.failures {
			log.Printf("  %s", f)
		}
		os.Exit(1)
	}
	log.Printf("all scenarios passed in %v", time.Since(e.started).Round(time.Second))
}

func findRoot(dir string) (string, error) {
	if dir == "" {
		var err error
		if dir, err = os.Getwd(); err != nil {
			return "", err
		}
	}
	dir, _ = filepath.Abs(dir)
	for d := dir; ; d = filepath.Dir(d) {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/custommetrics/bundle\n") {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no github.com/custommetrics/bundle go.mod above %s", dir)
		}
	}
}

func (e *env) want(name string) bool { return e.only == nil || e.only.MatchString(name) }

func (e *env) add(r *row) {
	e.rows = append(e.rows, r)
	if r.Loss != nil && !r.Loss.OK() {
		r.Fail = append(r.Fail, "loss: "+r.Loss.String())
	}
	for _, f := range r.Fail {
		e.failures = append(e.failures, r.Scenario+" / "+r.Target+": "+f)
	}
	status := "ok"
	if len(r.Fail) > 0 {
		status = "FAIL " + strings.Join(r.Fail, "; ")
	}
	res := r.Res
	if res != nil {
		log.Printf("%-28s %-16s %8.0f req/s %9.0f pts/s p50 %-8v p99 %-8v cpu %.2f rss %dMiB acked %d/%d %v: %s",
			r.Scenario, r.Target, res.ReqPerSec(), res.PointsPerSec(), res.Latency.Quantile(.5), res.Latency.Quantile(.99),
			r.Usage.CPU, r.Usage.RSSMax>>20, res.Acked, res.Sent, res.Status, status)
	} else {
		log.Printf("%-28s %-16s %s", r.Scenario, r.Target, status)
	}
	if r.Loss != nil {
		log.Printf("    accounting: %s", r.Loss)
	}
	for _, n := range r.Notes {
		log.Printf("    %s", n)
	}
}

// coll is one running collector of a scenario.
type coll struct {
	e     *env
	dir   string
	ports ports
	opts  colOpts
	proc  *collector.Process
}

func (c *coll) api() string  { return "http://127.0.0.1:" + strconv.Itoa(c.ports.api) }
func (c *coll) otlp() string { return "http://127.0.0.1:" + strconv.Itoa(c.ports.otlp) }

func (e *env) newCollector(name string, o colOpts) (*coll, error) {
	dir, err := os.MkdirTemp(e.work, safe(name)+"-")
	if err != nil {
		return nil, err
	}
	c := &coll{e: e, dir: dir, opts: o, ports: ports{api: collector.FreePort(), health: collector.FreePort(), otlp: collector.FreePort(), telemetry: collector.FreePort()}}
	if e.profileDir != "" {
		c.ports.pprof = collector.FreePort()
	}
	if err := os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(o.yaml(c.ports)), 0o644); err != nil {
		return nil, err
	}
	if o.dataTmpfs > 0 {
		if err := mountTmpfs(filepath.Join(dir, "data"), o.dataTmpfs); err != nil {
			return nil, err
		}
	}
	return c, c.start()
}

func safe(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return '-'
	}, strings.ToLower(s))
}

func (c *coll) start() error {
	c.proc = &collector.Process{Bin: c.e.bin, Args: []string{"--config", "config.yaml"}, Dir: c.dir, Log: filepath.Join(c.dir, "collector.log"), Env: c.opts.env}
	if err := c.proc.Start(); err != nil {
		return err
	}
	return c.proc.WaitHTTP("http://127.0.0.1:"+strconv.Itoa(c.ports.health)+"/", 60*time.Second)
}

// stop settles (lets the aggregate processor emit closed windows), stops the
// collector with SIGTERM and checks the exit; it returns failures.
func (c *coll) stop() []string {
	time.Sleep(1500 * time.Millisecond)
	if done, err := c.proc.Exited(); done {
		return []string{fmt.Sprintf("collector crashed during the scenario (%v); log tail:\n%s", err, c.proc.Tail(30))}
	}
	if err := c.proc.Stop(60 * time.Second); err != nil {
		return []string{fmt.Sprintf("unclean stop: %v; log tail:\n%s", err, c.proc.Tail(30))}
	}
	if !strings.Contains(c.proc.Tail(20), "Shutdown complete") {
		return []string{"no \"Shutdown complete\" in the log; tail:\n" + c.proc.Tail(20)}
	}
	return nil
}

// settle waits, up to timeout, until the stored figures account for the
// ledger exactly while the collector runs; it reports how long that took.
func (c *coll) settle(l *loadgen.Ledger, timeout time.Duration) (time.Duration, bool) {
	start := time.Now()
	for time.Since(start) < timeout {
		if rep, err := c.account(l); err == nil && rep.OK() {
			return time.Since(start), true
		}
		time.Sleep(time.Second)
	}
	return time.Since(start), false
}

// account compares the collector's SQLite file (or PostgreSQL database) with the ledger.
func (c *coll) account(l *loadgen.Ledger) (*accounting.Report, error) {
	if c.opts.pgDSN != "" {
		return accountIn(l, accounting.Postgres, func() (*sql.DB, error) { return accounting.OpenPostgres(c.opts.pgDSN) })
	}
	return accountIn(l, accounting.SQLite, func() (*sql.DB, error) {
		return accounting.OpenSQLite(filepath.Join(c.dir, "data", "custommetrics.db"))
	})
}

// accountIn compares the figures of the database that open opens with the ledger.
func accountIn(l *loadgen.Ledger, d accounting.Dialect, open func() (*sql.DB, error)) (*accounting.Report, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	db, err := open()
	if err != nil {
		return nil, err
	}
	defer db.Close()
	st, err := accounting.Read(ctx, db, d, "tb_")
	if err != nil {
		return nil, err
	}
	return accounting.Compare(l, st), nil
}

func setup(ctx context.Context, base string, ts ...loadgen.Target) error {
	c := loadgen.NewClient(4, 30*time.Second)
	defer c.CloseIdleConnections()
	for _, t := range ts {
		if err := t.Setup(ctx, c, base); err != nil {
			return fmt.Errorf("setup %s: %w", t.Name(), err)
		}
	}
	return nil
}

// load is one generator of a scenario.
type load struct {
	target loadgen.Target
	cfg    loadgen.Config
	otlp   bool // drive the OTLP receiver instead of the custommetrics one
}

// runLoads runs the loads concurrently and returns their results.
func runLoads(ctx context.Context, c *coll, loads []load) []*loadgen.Result {
	res := make([]*loadgen.Result, len(loads))
	done := make(chan struct{}, len(loads))
	for i, l := range loads {
		cfg := l.cfg
		if cfg.BaseURL == "" {
			cfg.BaseURL = c.api()
			if l.otlp {
				cfg.BaseURL = c.otlp()
			}
		}
		go func() {
			res[i] = loadgen.Run(ctx, l.target, cfg)
			done <- struct{}{}
		}()
	}
	for range loads {
		<-done
	}
	return res
}

// scenario runs loads against a fresh collector, stops it and accounts.
// Every load gets a row; accounting covers the merged ledger of all loads
// and is attached to the first row.
func (e *env) scenario(name string, o colOpts, loads []load, check func(rows []*row)) []*row {
	if !e.want(name) {
		return nil
	}
	log.Printf("scenario %s", name)
	c, err := e.newCollector(name, o)
	if err != nil {
		e.add(&row{Scenario: name, Target: "-", Fail: []string{"start: " + err.Error()}})
		return nil
	}
	ctx := context.Background()
	var ts []loadgen.Target
	for _, l := range loads {
		ts = append(ts, l.target)
	}
	if err := setup(ctx, c.api(), ts...); err != nil {
		c.proc.Kill()
		e.add(&row{Scenario: name, Target: "-", Fail: []string{err.Error()}})
		return nil
	}
	s := collector.Sample(c.proc.Pid(), 250*time.Millisecond)
	prof := e.profile(c, name, loads)
	res := runLoads(ctx, c, loads)
	u := s.Stop()
	if err := <-prof; err != nil {
		log.Printf("    profile: %v", err)
	}
	if err := e.heapProfile(c, name, loads); err != nil {
		log.Printf("    heap profile: %v", err)
	}
	rows := make([]*row, len(loads))
	ledger := loadgen.NewLedger()
	for i, r := range res {
		rows[i] = &row{Scenario: name, Target: r.Target, Res: r, Usage: u}
		ledger.Merge(r.Ledger)
		if r.Violations > 0 {
			rows[i].Fail = append(rows[i].Fail, fmt.Sprintf("%d requests that must fail were acknowledged", r.Violations))
		}
	}
	rows[0].Fail = append(rows[0].Fail, c.stop()...)
	rows[0].Notes = append(rows[0].Notes, memoryLimitLines(c.proc.Log)...)
	if rep, err := c.account(ledger); err != nil {
		rows[0].Fail = append(rows[0].Fail, "accounting: "+err.Error())
	} else {
		rows[0].Loss = rep
	}
	if check != nil {
		check(rows)
	}
	for _, r := range rows {
		e.add(r)
	}
	return rows
}

// profile takes a CPU profile of the collector over the middle of the first
// load's duration, in the background, when -profile is set.
func (e *env) profile(c *coll, name string, loads []load) <-chan error {
	done := make(chan error, 1)
	if e.profileDir == "" || c.ports.pprof == 0 {
		done <- nil
		return done
	}
	secs := int(loads[0].cfg.Duration.Seconds() / 2)
	if secs < 1 {
		secs = 1
	}
	file := filepath.Join(e.profileDir, safe(name+"-"+loads[0].target.Name())+".pprof")
	go func() {
		time.Sleep(loads[0].cfg.Duration / 4)
		done <- fetchTo(fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/profile?seconds=%d", c.ports.pprof, secs), file)
	}()
	return done
}

// fetchTo saves the body of a GET of url to file.
func fetchTo(url, file string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, resp.Body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		log.Printf("    profile: %s", file)
	}
	return err
}

// heapProfile saves the collector's heap profile at the end of the load,
// when -profile is set.
func (e *env) heapProfile(c *coll, name string, loads []load) error {
	if e.profileDir == "" || c.ports.pprof == 0 {
		return nil
	}
	return fetchTo(fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/heap", c.ports.pprof),
		filepath.Join(e.profileDir, safe(name+"-"+loads[0].target.Name())+".heap.pprof"))
}

// serveBare is the bare net/http ceiling: read the body, answer 200.
func serveBare(addr string) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusOK)
	})
	log.Fatal((&http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 10 * time.Second}).ListenAndServe())
}

// bareRun drives the bare server (a separate process, like the collector).
func (e *env) bareRun(name string, cfg loadgen.Config) *row {
	port := collector.FreePort()
	dir, _ := os.MkdirTemp(e.work, "bare-")
	p := &collector.Process{Bin: e.self, Args: []string{"-bare-server", "127.0.0.1:" + strconv.Itoa(port)}, Dir: dir, Log: filepath.Join(dir, "bare.log")}
	r := &row{Scenario: name, Target: "bare-net/http"}
	if err := p.Start(); err != nil {
		r.Fail = append(r.Fail, err.Error())
		return r
	}
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	if err := p.WaitHTTP(base+"/", 10*time.Second); err != nil {
		r.Fail = append(r.Fail, err.Error())
		p.Kill()
		return r
	}
	cfg.BaseURL = base
	s := collector.Sample(p.Pid(), 250*time.Millisecond)
	r.Res = loadgen.Run(context.Background(), loadgen.Bare(), cfg)
	r.Usage = s.Stop()
	if err := p.Stop(10 * time.Second); err != nil && !isSignal(err) {
		r.Notes = append(r.Notes, "bare server stop: "+err.Error())
	}
	return r
}

func isSignal(err error) bool {
	var ee *exec.ExitError
	return errors.As(err, &ee)
}

func goVersion() string { return runtime.Version() }

// memoryLimitLines returns what the collector logged about its soft memory
// limit (cmd/otelcol-custommetrics/memlimit.go), without the timestamps.
func memoryLimitLines(logFile string) []string {
	data, err := os.ReadFile(logFile)
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		if i := strings.Index(line, "INFO "); i >= 0 && strings.Contains(strings.ToLower(line), "soft memory limit") {
			out = append(out, "collector: "+line[i+len("INFO "):])
		}
	}
	return out
}
