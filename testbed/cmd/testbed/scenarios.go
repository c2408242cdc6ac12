package main

import (
	"bufio"
	"context"
	"fmt"
	"log"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/custommetrics/bundle/testbed/collector"
	"github.com/custommetrics/bundle/testbed/loadgen"
)

const maxConns = 64

func tc(s loadgen.Spread) loadgen.Target { return loadgen.ThreatConnect(s) }

// shortSet is the CI set: steady ThreatConnect load, malformed payloads with
// good clients, kill -9 and restart; plus the two baselines for the ratios.
func (e *env) shortSet() {
	d := 10 * time.Second
	e.steady("steady", "threatconnect", tc(loadgen.Spread{Metrics: 4}), false, 0, d)
	e.steady("steady", "otlp-json", loadgen.OTLP(loadgen.Spread{Metrics: 4}, loadgen.OTLPJSON, 1), true, 0, d)
	if e.want("steady") {
		r := e.bareRun("steady", loadgen.Config{Conns: maxConns, Duration: d})
		e.sweeps["bare-net/http"] = append(e.sweeps["bare-net/http"], r)
		e.add(r)
	}
	e.definitionAPIs(8 * time.Second)
	e.malformed(15 * time.Second)
	e.kill9(24*time.Second, 2000)
	e.diskFull(18*time.Second, 1500)
	e.cluster(10*time.Second, 1500)
}

// definitionAPIs drives the two APIs whose values come from elsewhere, at
// once: LaunchDarkly (metrics created through its metrics API, values as SDK
// analytics events) and Embrace (derived metrics created through its API,
// values as OTLP points of the base metric, a third filtered out).
func (e *env) definitionAPIs(d time.Duration) {
	e.scenario("launchdarkly+embrace", colOpts{}, []load{
		{target: loadgen.LaunchDarkly(loadgen.Spread{Metrics: 4}, 1), cfg: loadgen.Config{Conns: 32, Duration: d}},
		{target: loadgen.Embrace(loadgen.Spread{Metrics: 2, Keys: 8}, 1), otlp: true, cfg: loadgen.Config{Conns: 32, Duration: d}},
	}, nil)
}

// fullSet is everything `make testbed` runs.
func (e *env) fullSet() {
	d := 10 * time.Second
	// Offered-load sweeps (fresh collector per point) for the plots; the
	// "max" point is the steady figure of each.
	rates := []float64{2000, 5000, 10000, 15000, 20000, 30000, 0}
	for _, rate := range rates {
		e.steady("sweep", "threatconnect", tc(loadgen.Spread{Metrics: 4}), false, rate, d)
		e.steady("sweep", "otlp-json", loadgen.OTLP(loadgen.Spread{Metrics: 4}, loadgen.OTLPJSON, 1), true, rate, d)
		if e.want("sweep") {
			r := e.bareRun("sweep", loadgen.Config{Conns: maxConns, Rate: rate, Duration: d})
			e.sweeps["bare-net/http"] = append(e.sweeps["bare-net/http"], r)
			e.add(r)
		}
	}
	// Steady load per API at the maximum rate.
	e.steady("steady", "threatconnect-keyed", tc(loadgen.Spread{Metrics: 2, Keys: 1000, Prefix: "tb_k"}), false, 0, d)
	e.steady("steady", "sleuth", loadgen.Sleuth(loadgen.Spread{Metrics: sleuthSources}), false, 0, d)
	e.steady("steady", "bigfix", loadgen.BigFix(loadgen.Spread{Metrics: 64}), false, 0, d)
	e.steady("steady", "otlp-proto", loadgen.OTLP(loadgen.Spread{Metrics: 4}, loadgen.OTLPProto, 1), true, 0, d)
	e.steady("steady-10pts", "otlp-json", loadgen.OTLP(loadgen.Spread{Metrics: 4, Keys: 10}, loadgen.OTLPJSON, 10), true, 0, d)
	e.steady("steady-10pts", "otlp-proto", loadgen.OTLP(loadgen.Spread{Metrics: 4, Keys: 10}, loadgen.OTLPProto, 10), true, 0, d)
	e.steady("steady", "launchdarkly-sdk", loadgen.LaunchDarkly(loadgen.Spread{Metrics: 4}, 1), false, 0, d)
	e.steady("steady", "embrace-otlp", loadgen.Embrace(loadgen.Spread{Metrics: 2, Keys: 8}, 1), true, 0, d)
	e.definitionAPIs(d)
	e.scenario("steady-durable", colOpts{durable: true}, []load{{target: tc(loadgen.Spread{Metrics: 4}), cfg: loadgen.Config{Conns: maxConns, Duration: d}}}, nil)

	// Mixed load: all APIs at once.
	e.scenario("mixed", colOpts{}, []load{
		{target: tc(loadgen.Spread{Metrics: 4}), cfg: loadgen.Config{Conns: 24, Duration: 15 * time.Second}},
		{target: tc(loadgen.Spread{Metrics: 2, Keys: 500, Prefix: "tb_k"}), cfg: loadgen.Config{Conns: 16, Duration: 15 * time.Second}},
		{target: loadgen.Sleuth(loadgen.Spread{Metrics: sleuthSources}), cfg: loadgen.Config{Conns: 8, Duration: 15 * time.Second}},
		{target: loadgen.BigFix(loadgen.Spread{Metrics: 16}), cfg: loadgen.Config{Conns: 8, Duration: 15 * time.Second}},
		{target: loadgen.OTLP(loadgen.Spread{Metrics: 4}, loadgen.OTLPJSON, 1), otlp: true, cfg: loadgen.Config{Conns: 8, Duration: 15 * time.Second}},
		{target: loadgen.LaunchDarkly(loadgen.Spread{Metrics: 2}, 1), cfg: loadgen.Config{Conns: 8, Duration: 15 * time.Second}},
		{target: loadgen.Embrace(loadgen.Spread{Metrics: 2, Keys: 8}, 1), otlp: true, cfg: loadgen.Config{Conns: 8, Duration: 15 * time.Second}},
	}, nil)

	// 100k distinct keyed series, each sent once, then once more (restating every window).
	// The distribution sets a soft memory limit itself when GOMEMLIMIT is
	// unset (cmd/otelcol-custommetrics/memlimit.go); -nolimit runs without
	// one (GOMEMLIMIT=off, the Go runtime's default), -gomemlimit with an
	// explicit GOMEMLIMIT. -all-scored lifts the anomaly processor's
	// max_series_per_tenant, so that all 100k series keep a detector state.
	const series = 100_000
	allScored := colOpts{anomalyMaxSeries: "0"}
	allScoredNoLimit := allScored
	allScoredNoLimit.env = []string{"GOMEMLIMIT=off"}
	for _, o := range []struct {
		name string
		opts colOpts
	}{
		{"100k-series", colOpts{}},
		{"100k-series-nolimit", colOpts{env: []string{"GOMEMLIMIT=off"}}},
		{"100k-series-gomemlimit", colOpts{env: []string{"GOMEMLIMIT=180MiB"}}},
		{"100k-series-all-scored", allScored},
		{"100k-series-all-scored-nolimit", allScoredNoLimit},
	} {
		e.scenario(o.name, o.opts, []load{{
			target: tc(loadgen.Spread{Size: series, Keys: series, Days: 1, Prefix: "tb_s"}),
			cfg:    loadgen.Config{Conns: maxConns, MaxRequests: 2 * series, Duration: 3 * time.Minute},
		}}, func(rows []*row) {
			if n := len(rows[0].Res.Ledger.Acked); n < series {
				rows[0].Fail = append(rows[0].Fail, fmt.Sprintf("only %d of %d series acknowledged", n, series))
			}
		})
	}

	// Back-dated values over ten years, hourly and daily, each pool sent
	// twice so that closed, emitted windows are restated.
	from := time.Date(2010, 1, 1, 0, 0, 0, 0, time.UTC)
	e.scenario("back-dated", colOpts{}, []load{
		{target: tc(loadgen.Spread{Size: 20000, Metrics: 2, Days: 3650, From: from, Interval: loadgen.Hourly, Prefix: "tb_bh"}), cfg: loadgen.Config{Conns: 32, MaxRequests: 40000, Duration: 2 * time.Minute}},
		{target: tc(loadgen.Spread{Size: 20000, Metrics: 2, Keys: 3, Days: 3650, From: from, Interval: loadgen.Daily, Prefix: "tb_bd"}), cfg: loadgen.Config{Conns: 32, MaxRequests: 40000, Duration: 2 * time.Minute}},
	}, nil)

	e.kill9(30*time.Second, 4000)
	e.diskFull(24*time.Second, 2000)
	e.runningFigures(10 * time.Second)
	e.cluster(20*time.Second, 3000)

	// memory_limiter pressure: a tiny limit, many series at full speed.
	e.scenario("memory-limiter", colOpts{memLimitMiB: 60, memSpikeMiB: 20}, []load{{
		target: tc(loadgen.Spread{Size: 200_000, Keys: 200_000, Days: 5, Prefix: "tb_m"}),
		cfg:    loadgen.Config{Conns: maxConns, Duration: 20 * time.Second},
	}}, func(rows []*row) {
		r := rows[0].Res
		rows[0].Notes = append(rows[0].Notes, fmt.Sprintf("answers %v (503 = refused under memory pressure; allowed)", r.Status))
	})

	e.slowClients(20 * time.Second)
	e.malformed(20 * time.Second)
	e.postgresDown()
}

// steady runs one target at a rate (0 = max) against a fresh default collector.
func (e *env) steady(scen, label string, t loadgen.Target, otlp bool, rate float64, d time.Duration) {
	rows := e.scenario(scen, colOpts{}, []load{{target: t, otlp: otlp, cfg: loadgen.Config{Conns: maxConns, Rate: rate, Duration: d}}}, nil)
	if len(rows) > 0 {
		rows[0].Target = label
		// The sweep feeds the plots and, with the short set's steady runs,
		// the ratios; other steady runs are table rows only.
		if scen == "sweep" || e.short {
			e.sweeps[label] = append(e.sweeps[label], rows[0])
		}
	}
}

// malformed: bad payloads as fast as possible on many connections while good
// ThreatConnect clients send at a fixed rate; every good request must be
// acknowledged, no bad one may be.
func (e *env) malformed(d time.Duration) {
	good := tc(loadgen.Spread{Metrics: 4})
	e.scenario("malformed+good", colOpts{}, []load{
		{target: good, cfg: loadgen.Config{Conns: 16, Rate: 2000, Duration: d}},
		{target: loadgen.Malformed("tb_tc_0"), cfg: loadgen.Config{Conns: 32, Duration: d}},
	}, func(rows []*row) {
		g := rows[0].Res
		if g.Acked != g.Sent {
			rows[0].Fail = append(rows[0].Fail, fmt.Sprintf("good clients: %d of %d acknowledged (%v, %s)", g.Acked, g.Sent, g.Status, g.FirstErr))
		}
		// The rate is shared with the generator and anything else on the
		// machine: only starvation fails, the figure is reported.
		got := g.ReqPerSec()
		rows[0].Notes = append(rows[0].Notes, fmt.Sprintf("good clients served at %.0f of 2000 offered req/s", got))
		if got < 0.5*2000 {
			rows[0].Fail = append(rows[0].Fail, fmt.Sprintf("good clients starved: served at %.0f req/s, offered 2000", got))
		}
		b := rows[1].Res
		rows[1].Notes = append(rows[1].Notes, fmt.Sprintf("malformed answers: %v", b.Status))
	})
}

// kill9: load at a fixed rate; after a third of the time the collector gets
// SIGKILL and is restarted at once on the same directory and ports. Every
// value acknowledged before or after must be in the database at the end.
func (e *env) kill9(d time.Duration, rate float64) {
	name := "kill-9+restart"
	if !e.want(name) {
		return
	}
	log.Printf("scenario %s", name)
	c, err := e.newCollector(name, colOpts{durable: true})
	if err != nil {
		e.add(&row{Scenario: name, Target: "-", Fail: []string{"start: " + err.Error()}})
		return
	}
	t := tc(loadgen.Spread{Metrics: 4, Keys: 50})
	ctx := context.Background()
	if err := setup(ctx, c.api(), t); err != nil {
		c.proc.Kill()
		e.add(&row{Scenario: name, Target: "-", Fail: []string{err.Error()}})
		return
	}
	r := &row{Scenario: name, Target: "threatconnect-keyed"}
	s := collector.Sample(c.proc.Pid(), 250*time.Millisecond)
	var res *loadgen.Result
	var wg sync.WaitGroup
	wg.Go(func() {
		res = loadgen.Run(ctx, t, loadgen.Config{BaseURL: c.api(), Conns: 32, Rate: rate, Duration: d})
	})
	time.Sleep(d / 3)
	r.Usage = s.Stop()
	c.proc.Kill()
	killedAt := time.Now()
	if err := c.start(); err != nil {
		r.Fail = append(r.Fail, "restart: "+err.Error())
		wg.Wait()
		r.Res = res
		e.add(r)
		return
	}
	r.Notes = append(r.Notes, fmt.Sprintf("killed with SIGKILL after %v of load; healthy again %v later", d/3, time.Since(killedAt).Round(time.Millisecond)))
	if err := setup(ctx, c.api(), t); err != nil { // definitions must have survived: 409 is fine
		r.Fail = append(r.Fail, "setup after restart: "+err.Error())
	}
	wg.Wait()
	r.Res = res
	r.Notes = append(r.Notes, fmt.Sprintf("answers %v; %d never reached the collector (down), %d of unknown outcome (in flight at the kill)", res.Status, res.NotSent, res.Unknown))
	r.Fail = append(r.Fail, c.stop()...)
	if rep, err := c.account(res.Ledger); err != nil {
		r.Fail = append(r.Fail, "accounting: "+err.Error())
	} else {
		r.Loss = rep
	}
	if res.Acked == 0 {
		r.Fail = append(r.Fail, "nothing acknowledged")
	}
	e.add(r)
}

// slowClients: slow-header and slow-body connections and oversize bodies
// while good clients send at a fixed rate; the good ones must all be served.
func (e *env) slowClients(d time.Duration) {
	name := "slow-clients+oversize"
	if !e.want(name) {
		return
	}
	log.Printf("scenario %s", name)
	o := colOpts{readHeaderTimeout: "2s", readTimeout: "5s"}
	c, err := e.newCollector(name, o)
	if err != nil {
		e.add(&row{Scenario: name, Target: "-", Fail: []string{"start: " + err.Error()}})
		return
	}
	good := tc(loadgen.Spread{Metrics: 4})
	ctx := context.Background()
	if err := setup(ctx, c.api(), good); err != nil {
		c.proc.Kill()
		e.add(&row{Scenario: name, Target: "-", Fail: []string{err.Error()}})
		return
	}
	addr := "127.0.0.1:" + strconv.Itoa(c.ports.api)
	var closedByServer, opened atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	slow := func(body bool) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			return
		}
		opened.Add(1)
		defer conn.Close()
		head := "POST /api/v2/customMetrics/tb_tc_0/data HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
		if body {
			head += "Content-Length: 100000\r\n\r\n"
			if _, err := conn.Write([]byte(head)); err != nil {
				closedByServer.Add(1)
				return
			}
			head = `{"value":1,"date":"2020-01-06T00:00:00Z"` + string(make([]byte, 0))
		}
		go func() { // notice the server closing the connection
			_, _ = bufio.NewReader(conn).ReadString(0)
		}()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(500 * time.Millisecond):
			}
			b := byte(' ')
			if i < len(head) {
				b = head[i]
			}
			if _, err := conn.Write([]byte{b}); err != nil {
				closedByServer.Add(1)
				return
			}
		}
	}
	for i := 0; i < 200; i++ {
		wg.Go(func() { slow(i%2 == 1) })
	}
	s := collector.Sample(c.proc.Pid(), 250*time.Millisecond)
	res := runLoads(ctx, c, []load{
		{target: good, cfg: loadgen.Config{Conns: 16, Rate: 2000, Duration: d}},
		{target: loadgen.Oversize("tb_tc_0", 2<<20), cfg: loadgen.Config{Conns: 4, Duration: d}},
	})
	u := s.Stop()
	close(stop)
	wg.Wait()
	rg := &row{Scenario: name, Target: "threatconnect (good)", Res: res[0], Usage: u}
	ro := &row{Scenario: name, Target: "oversize 2MiB", Res: res[1], Usage: u}
	rg.Notes = append(rg.Notes, fmt.Sprintf("%d slow connections (half slow headers, half slow bodies) opened, %d closed by the server (read_header_timeout 2s, read_timeout 5s)", opened.Load(), closedByServer.Load()))
	ro.Notes = append(ro.Notes, fmt.Sprintf("oversize answers %v, transport errors %d (%s)", res[1].Status, res[1].Unknown, res[1].FirstErr))
	if res[0].Acked != res[0].Sent {
		rg.Fail = append(rg.Fail, fmt.Sprintf("good clients: %d of %d acknowledged (%v %s)", res[0].Acked, res[0].Sent, res[0].Status, res[0].FirstErr))
	}
	rg.Notes = append(rg.Notes, fmt.Sprintf("good clients served at %.0f of 2000 offered req/s (reported, not asserted: the 2 MiB bodies cost the shared CPU on both sides)", res[0].ReqPerSec()))
	if res[1].Violations > 0 {
		ro.Fail = append(ro.Fail, fmt.Sprintf("%d oversize bodies acknowledged", res[1].Violations))
	}
	if closedByServer.Load() < opened.Load()/2 {
		rg.Fail = append(rg.Fail, "the server did not time out the slow connections")
	}
	rg.Fail = append(rg.Fail, c.stop()...)
	if rep, err := c.account(res[0].Ledger); err != nil {
		rg.Fail = append(rg.Fail, "accounting: "+err.Error())
	} else {
		rg.Loss = rep
	}
	e.add(rg)
	e.add(ro)
}

// runningFigures measures what the running figures of open windows cost:
// the same keyed ThreatConnect load (many open windows) with the aggregate
// processor's running_interval off, and at 1s (five times the shipped
// config's 5s), in the same run; the rows give CPU per acknowledged request.
func (e *env) runningFigures(d time.Duration) {
	t := tc(loadgen.Spread{Metrics: 4, Keys: 2000, Prefix: "tb_run"})
	for _, o := range []struct{ name, interval string }{{"running-figures-off", ""}, {"running-figures-1s", "1s"}} {
		e.scenario(o.name, colOpts{durable: true, runningInterval: o.interval}, []load{{target: t, cfg: loadgen.Config{Conns: maxConns, Duration: d}}}, nil)
	}
	off, on := e.scenarioRow("running-figures-off"), e.scenarioRow("running-figures-1s")
	if off != nil && on != nil {
		if perOff, perOn := cpuPerAck(off), cpuPerAck(on); perOff > 0 && perOn > 0 {
			on.Notes = append(on.Notes, fmt.Sprintf("CPU per acknowledged request %.1f µs with running figures every 1s vs %.1f µs without (%.2f×); req/s %.2f×",
				perOn, perOff, perOn/perOff, on.Res.ReqPerSec()/off.Res.ReqPerSec()))
		}
	}
}
