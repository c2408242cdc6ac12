package main

import (
	"encoding/json"
	"os"
	"sort"
	"strconv"
)

// jsonRow is one line of the results table for scripts (-json FILE).
type jsonRow struct {
	Scenario   string   `json:"scenario"`
	Target     string   `json:"target"`
	Offered    string   `json:"offered"`
	ReqPerS    float64  `json:"req_per_s"`
	PointsPerS float64  `json:"points_per_s"`
	P50ms      float64  `json:"p50_ms"`
	P99ms      float64  `json:"p99_ms"`
	CPUCores   float64  `json:"cpu_cores"`
	RSSMiB     float64  `json:"rss_mib"`
	Lost       *float64 `json:"lost"` // acknowledged figures missing or short; null where not accounted
}

// writeJSON writes the rows as {"rows": [...]}, one per line of the
// Markdown results table.
func (e *env) writeJSON(path string) error {
	out := struct {
		Rows []jsonRow `json:"rows"`
	}{Rows: []jsonRow{}}
	for _, r := range e.rows {
		j := jsonRow{Scenario: r.Scenario, Target: r.Target, CPUCores: r.Usage.CPU, RSSMiB: float64(r.Usage.RSSMax) / (1 << 20)}
		if x := r.Res; x != nil {
			j.Offered = fmtRate(x.Rate)
			j.ReqPerS, j.PointsPerS = x.ReqPerSec(), x.PointsPerSec()
			j.P50ms = float64(x.Latency.Quantile(.5).Microseconds()) / 1000
			j.P99ms = float64(x.Latency.Quantile(.99).Microseconds()) / 1000
		}
		if r.Loss != nil {
			lost := float64(r.Loss.Missing + r.Loss.Short)
			j.Lost = &lost
		}
		out.Rows = append(out.Rows, j)
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// medians keeps, of the rows that repeat one (scenario, target, offered)
// point, the one with the median req/s (-repeat N), in first-seen order,
// and drops the others from the sweeps too.
func (e *env) medians() {
	type key struct{ scenario, target, offered string }
	groups := map[key][]*row{}
	var order []key
	for _, r := range e.rows {
		k := key{r.Scenario, r.Target, ""}
		if r.Res != nil {
			k.offered = fmtRate(r.Res.Rate)
		}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], r)
	}
	keep := map[*row]bool{}
	e.rows = e.rows[:0]
	for _, k := range order {
		g := groups[k]
		sort.SliceStable(g, func(i, j int) bool { return reqPerSec(g[i]) < reqPerSec(g[j]) })
		m := g[len(g)/2]
		if len(g) > 1 {
			m.Notes = append(m.Notes, "median of "+strconv.Itoa(len(g))+" runs by req/s")
		}
		keep[m] = true
		e.rows = append(e.rows, m)
	}
	for t, rs := range e.sweeps {
		kept := rs[:0]
		for _, r := range rs {
			if keep[r] {
				kept = append(kept, r)
			}
		}
		e.sweeps[t] = kept
	}
}

func reqPerSec(r *row) float64 {
	if r.Res == nil {
		return 0
	}
	return r.Res.ReqPerSec()
}
