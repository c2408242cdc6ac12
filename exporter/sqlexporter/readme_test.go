package sqlexporter

import (
	"context"
	"database/sql"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

var fence = regexp.MustCompile("(?ms)^ *```(sql|yaml)\n(.*?)^ *```")

// readmeBlocks returns the fenced blocks of README.md in the given language.
func readmeBlocks(t *testing.T, lang string) []string {
	t.Helper()
	b, err := os.ReadFile("README.md")
	require.NoError(t, err)
	var out []string
	for _, m := range fence.FindAllStringSubmatch(string(b), -1) {
		if m[1] == lang {
			out = append(out, m[2])
		}
	}
	return out
}

func TestSQLiteREADMEQueries(t *testing.T) { scenarioREADMEQueries(t, newSQLiteStore(t)) }

// scenarioREADMEQueries runs the README's example queries for the store's
// database (the blocks whose first line names it) on sample data; each must
// return rows.
func scenarioREADMEQueries(t *testing.T, s store) {
	e := s.newExporter(t)
	var dps []dp
	for h := range 3 {
		for _, key := range []string{"acme", "zeta"} {
			dps = append(dps, dp{metric: "orders", attrs: map[string]any{"custommetrics.key": key},
				start: ns(t0.Add(time.Duration(h) * time.Hour)), end: ns(t0.Add(time.Duration(h+1) * time.Hour)),
				value: float64(h + 1), aggregation: "sum", interval: "hour", window: []string{"closed", "restatement", "running"}[h]})
		}
	}
	for m := range 3 {
		ts := ns(t0.Add(time.Duration(m) * time.Minute))
		dps = append(dps,
			dp{metric: "temperature", attrs: map[string]any{"room": "a"}, end: ts, value: 20 + float64(m)},
			dp{metric: "temperature.anomaly.score", attrs: map[string]any{"room": "a"}, end: ts, value: 0.1 * float64(m)})
	}
	md := metricsOf(resA, dps...)
	h := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().AppendEmpty()
	h.SetName("latency")
	hist := h.SetEmptyHistogram()
	hist.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
	for i, counts := range [][]uint64{{5, 3, 1, 1}, {1, 0, 0, 9}} {
		hp := hist.DataPoints().AppendEmpty()
		hp.SetStartTimestamp(pcommon.Timestamp(ns(t0.Add(time.Duration(i) * time.Minute))))
		hp.SetTimestamp(pcommon.Timestamp(ns(t0.Add(time.Duration(i+1) * time.Minute))))
		hp.ExplicitBounds().FromRaw([]float64{10, 100, 1000})
		hp.BucketCounts().FromRaw(counts)
		hp.SetCount(10)
	}
	c := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().AppendEmpty()
	c.SetName("requests")
	cs := c.SetEmptySum()
	cs.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	cp := cs.DataPoints().AppendEmpty()
	cp.SetStartTimestamp(pcommon.Timestamp(ns(t0)))
	cp.SetTimestamp(pcommon.Timestamp(ns(t0.Add(time.Minute))))
	cp.SetIntValue(42)
	require.NoError(t, e.push(context.Background(), md))

	want := "sqlite"
	if s.driver == DriverPostgres {
		want = "postgresql"
	}
	var ran int
	for _, q := range readmeBlocks(t, "sql") {
		first, _, _ := strings.Cut(q, "\n")
		if strings.Contains(q, "$__") || !strings.Contains(strings.ToLower(first), want) {
			continue // Grafana macros, or the other database
		}
		ran++
		t.Run(strings.TrimSpace(strings.TrimPrefix(first, "--")), func(t *testing.T) {
			rows, err := s.db.Query(q)
			require.NoError(t, err, q)
			defer rows.Close()
			cols, err := rows.Columns()
			require.NoError(t, err)
			var n int
			for rows.Next() {
				vals := make([]any, len(cols))
				ptrs := make([]any, len(cols))
				for i := range vals {
					ptrs[i] = &vals[i]
				}
				require.NoError(t, rows.Scan(ptrs...))
				n++
			}
			require.NoError(t, rows.Err())
			assert.Positive(t, n, "no rows from\n%s", q)
			if strings.Contains(first, "90th percentile") {
				// counts [5,3,1,1] of 10: the 9th value is in (100, 1000];
				// [1,0,0,9]: above the last bound (NULL).
				var p90 []any
				rows, err := s.db.Query(q)
				require.NoError(t, err)
				for rows.Next() {
					var id string
					var start int64
					var v sql.NullFloat64
					require.NoError(t, rows.Scan(&id, &start, &v))
					if v.Valid {
						p90 = append(p90, v.Float64)
					} else {
						p90 = append(p90, nil)
					}
				}
				require.NoError(t, rows.Close())
				assert.Equal(t, []any{1000.0, nil}, p90)
			}
		})
	}
	assert.GreaterOrEqual(t, ran, 4, "README queries for %s", want)
}

// TestREADMEConfig loads every exporter configuration of the README and
// validates it.
func TestREADMEConfig(t *testing.T) {
	var n int
	for _, block := range readmeBlocks(t, "yaml") {
		ret, err := confmap.NewRetrievedFromYAML([]byte(block))
		require.NoError(t, err)
		conf, err := ret.AsConf()
		require.NoError(t, err)
		if !conf.IsSet("exporters::sql") {
			continue
		}
		n++
		sub, err := conf.Sub("exporters::sql")
		require.NoError(t, err)
		cfg := createDefaultConfig()
		require.NoError(t, sub.Unmarshal(cfg), block)
		require.NoError(t, confmap.Validate(cfg), block)
		assert.Equal(t, createDefaultConfig(), cfg, "the full example shows the defaults")
	}
	assert.Equal(t, 1, n)
}
