// Package accounting checks that what a collector stored equals the
// aggregate of exactly the values it acknowledged: no more, no less.
//
// The contract (exporter/sqlexporter/README.md and schema.go): table
// `windows` holds one row per (metric, series attributes, resource
// attributes, window start, window end) with the window's complete figure,
// upserted last-write-wins; table `points` holds raw points. Column names are
// discovered from the database and matched against the candidates below, so
// a renamed column does not break the check silently: a missing one is an
// error.
package accounting

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/custommetrics/bundle/testbed/loadgen"
)

// KeyAttributes are the data point attributes that carry a series' key:
// ThreatConnect's keyed values and the testbed's OTLP "key".
var KeyAttributes = []string{"custommetrics.key", "key"}

// Column candidates, first match wins.
var (
	metricCols = []string{"metric", "metric_name", "name"}
	attrCols   = []string{"attributes", "attrs", "series_attributes"}
	startCols  = []string{"window_start_unix_nano", "window_start", "start_unix_nano", "start_time_unix_nano"}
	endCols    = []string{"window_end_unix_nano", "window_end", "end_unix_nano", "time_unix_nano"}
	valueCols  = []string{"value", "figure", "double_value"}
)

// Dialect tells how to list a table's columns.
type Dialect int

// Dialects.
const (
	SQLite Dialect = iota
	Postgres
)

// Stored is what the database holds for the series the testbed wrote.
type Stored struct {
	// Windows: the figure of each (metric, key, window start); when several
	// rows share them (different window ends) the one with the latest end.
	Windows map[loadgen.SeriesWindow]float64
	// Points: sum and count of the raw points per (metric, key), at
	// Window = loadgen.PointsWindow.
	Points map[loadgen.SeriesWindow]loadgen.Cell
	// Duplicates counts (metric, key, start) seen in more than one row.
	Duplicates int
}

// Columns returns the columns of table.
func Columns(ctx context.Context, db *sql.DB, d Dialect, table string) ([]string, error) {
	var q string
	if d == Postgres {
		q = "SELECT column_name FROM information_schema.columns WHERE table_name = '" + table + "' AND table_schema = current_schema()"
	} else {
		q = "SELECT name FROM pragma_table_info('" + table + "')"
	}
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var cols []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return nil, err
		}
		cols = append(cols, c)
	}
	return cols, rows.Err()
}

func pick(table string, have []string, cands []string) (string, error) {
	for _, c := range cands {
		for _, h := range have {
			if strings.EqualFold(c, h) {
				return h, nil
			}
		}
	}
	return "", fmt.Errorf("table %s has none of the columns %v (it has %v): update testbed/accounting to the exporter's schema", table, cands, have)
}

// Read loads the rows of metrics starting with prefix from the windows and
// points tables. A missing table is an error: the exporter stores nothing.
func Read(ctx context.Context, db *sql.DB, d Dialect, prefix string) (*Stored, error) {
	st := &Stored{Windows: map[loadgen.SeriesWindow]float64{}, Points: map[loadgen.SeriesWindow]loadgen.Cell{}}
	like := strings.ReplaceAll(prefix, "'", "''") + "%"

	wcols, err := Columns(ctx, db, d, "windows")
	if err != nil {
		return nil, err
	}
	if len(wcols) == 0 {
		return nil, fmt.Errorf("no table `windows` in the database: is the sql exporter storing anything yet?")
	}
	var c [5]string
	for i, cands := range [][]string{metricCols, attrCols, startCols, endCols, valueCols} {
		if c[i], err = pick("windows", wcols, cands); err != nil {
			return nil, err
		}
	}
	ends := map[loadgen.SeriesWindow]int64{}
	q := fmt.Sprintf("SELECT %s, %s, %s, %s, %s FROM windows WHERE %s LIKE '%s'", c[0], c[1], c[2], c[3], c[4], c[0], like)
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var metric, attrs string
		var start, end int64
		var v float64
		if err := rows.Scan(&metric, &attrs, &start, &end, &v); err != nil {
			rows.Close()
			return nil, err
		}
		k := loadgen.SeriesWindow{Metric: metric, Key: keyOf(attrs), Window: start}
		if e, dup := ends[k]; dup {
			st.Duplicates++
			if e > end {
				continue
			}
		}
		ends[k] = end
		st.Windows[k] = v
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}

	pcols, err := Columns(ctx, db, d, "points")
	if err != nil {
		return nil, err
	}
	if len(pcols) == 0 {
		return st, nil // no raw points stored: BigFix accounting will report them missing
	}
	var p [3]string
	for i, cands := range [][]string{metricCols, attrCols, valueCols} {
		if p[i], err = pick("points", pcols, cands); err != nil {
			return nil, err
		}
	}
	q = fmt.Sprintf("SELECT %s, %s, %s FROM points WHERE %s LIKE '%s'", p[0], p[1], p[2], p[0], like)
	rows, err = db.QueryContext(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var metric, attrs string
		var v float64
		if err := rows.Scan(&metric, &attrs, &v); err != nil {
			return nil, err
		}
		k := loadgen.SeriesWindow{Metric: metric, Key: keyOf(attrs), Window: loadgen.PointsWindow}
		cell := st.Points[k]
		cell.Sum += v
		cell.Count++
		st.Points[k] = cell
	}
	return st, rows.Err()
}

func keyOf(attrs string) string {
	if attrs == "" || attrs == "{}" {
		return ""
	}
	var m map[string]any
	if json.Unmarshal([]byte(attrs), &m) != nil {
		return ""
	}
	for _, k := range KeyAttributes {
		if v, ok := m[k]; ok {
			return fmt.Sprint(v)
		}
	}
	return ""
}

// Report is the outcome of a comparison.
type Report struct {
	// Figures is the number of acknowledged figures checked (windows and
	// point series).
	Figures int
	// Exact counts the figures equal to the acknowledged values alone.
	Exact int
	// WithUnknown counts figures that also include some values of unknown
	// outcome (allowed: the server may have counted a request whose answer
	// was lost).
	WithUnknown int
	// Missing: acknowledged figures with no row. Short: rows below the
	// acknowledged figure (lost values). Over: rows above acknowledged plus
	// unknown (values counted that were never acknowledged nor in doubt).
	// Unexpected: rows of a sent-to metric for a (key, window) nothing was
	// sent to.
	Missing, Short, Over, Unexpected int
	// LostValue sums what is missing from Missing and Short figures;
	// LostPoints counts lost raw points.
	LostValue  float64
	LostPoints int64
	Duplicates int
	// Ignored counts rows of metrics nothing was sent to (derived metrics
	// such as anomaly scores).
	Ignored int
	// Examples describes the first few problems.
	Examples []string
}

// OK reports whether nothing acknowledged was lost and nothing extra was counted.
func (r *Report) OK() bool {
	return r.Missing == 0 && r.Short == 0 && r.Over == 0 && r.Unexpected == 0
}

func (r *Report) String() string {
	s := fmt.Sprintf("%d figures: %d exact, %d incl. unknown-outcome values; missing %d, short %d (lost value %g, lost points %d), over %d, unexpected %d",
		r.Figures, r.Exact, r.WithUnknown, r.Missing, r.Short, r.LostValue, r.LostPoints, r.Over, r.Unexpected)
	if r.Duplicates > 0 {
		s += fmt.Sprintf(", %d duplicate window rows", r.Duplicates)
	}
	for _, e := range r.Examples {
		s += "\n  " + e
	}
	return s
}

func (r *Report) example(format string, args ...any) {
	if len(r.Examples) < 8 {
		r.Examples = append(r.Examples, fmt.Sprintf(format, args...))
	}
}

const eps = 1e-6

func le(a, b float64) bool { return a <= b+eps*math.Max(1, math.Abs(b)) }

// Compare checks st against the ledger. Values must be positive for the
// bounds acked <= stored <= acked+unknown to be meaningful (the targets send
// values 1..7).
func Compare(l *loadgen.Ledger, st *Stored) *Report {
	r := &Report{Duplicates: st.Duplicates}
	keys := make([]loadgen.SeriesWindow, 0, len(l.Acked)+len(l.Unknown))
	seen := map[loadgen.SeriesWindow]bool{}
	for k := range l.Acked {
		keys = append(keys, k)
		seen[k] = true
	}
	for k := range l.Unknown {
		if !seen[k] {
			keys = append(keys, k)
			seen[k] = true
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.Metric != b.Metric {
			return a.Metric < b.Metric
		}
		if a.Key != b.Key {
			return a.Key < b.Key
		}
		return a.Window < b.Window
	})
	for _, k := range keys {
		acked, unsure := l.Acked[k], l.Unknown[k]
		if acked.Count > 0 {
			r.Figures++
		}
		var got loadgen.Cell
		var ok bool
		if k.Window == loadgen.PointsWindow {
			got, ok = st.Points[k]
		} else {
			var v float64
			v, ok = st.Windows[k]
			got = loadgen.Cell{Sum: v, Count: -1}
		}
		switch {
		case !ok && acked.Count == 0:
			// only unknown-outcome values, none counted: fine
		case !ok:
			r.Missing++
			r.LostValue += acked.Sum
			if k.Window == loadgen.PointsWindow {
				r.LostPoints += acked.Count
			}
			r.example("missing %s key=%q window=%d: acknowledged sum %g (%d values)", k.Metric, k.Key, k.Window, acked.Sum, acked.Count)
		case !le(acked.Sum, got.Sum) || (got.Count >= 0 && got.Count < acked.Count):
			r.Short++
			r.LostValue += acked.Sum - got.Sum
			if got.Count >= 0 {
				r.LostPoints += acked.Count - got.Count
			}
			r.example("short %s key=%q window=%d: stored %g, acknowledged %g (%d values, %d unknown)", k.Metric, k.Key, k.Window, got.Sum, acked.Sum, acked.Count, unsure.Count)
		case !le(got.Sum, acked.Sum+unsure.Sum) || (got.Count >= 0 && got.Count > acked.Count+unsure.Count):
			r.Over++
			r.example("over %s key=%q window=%d: stored %g, acknowledged %g + unknown %g", k.Metric, k.Key, k.Window, got.Sum, acked.Sum, unsure.Sum)
		case le(got.Sum, acked.Sum) && (got.Count < 0 || got.Count == acked.Count):
			r.Exact++
		default:
			r.WithUnknown++
		}
	}
	// Rows of metrics the testbed did not send to (e.g. the anomaly
	// processor's <metric>.anomaly.score gauges) are not its business.
	sent := map[string]bool{}
	for k := range seen {
		sent[k.Metric] = true
	}
	for k, v := range st.Windows {
		if !sent[k.Metric] {
			r.Ignored++
			continue
		}
		if !seen[k] {
			r.Unexpected++
			r.example("unexpected %s key=%q window=%d: stored %g, nothing sent", k.Metric, k.Key, k.Window, v)
		}
	}
	for k, c := range st.Points {
		if !sent[k.Metric] {
			r.Ignored++
			continue
		}
		if !seen[k] {
			r.Unexpected++
			r.example("unexpected points %s key=%q: %d stored, nothing sent", k.Metric, k.Key, c.Count)
		}
	}
	return r
}
