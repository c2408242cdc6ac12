package sqlexporter

import (
	"context"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/confmap"
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
	require.NoError(t, e.push(context.Background(), metricsOf(resA, dps...)))

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
		if !strings.Contains(block, "storage: file_storage") {
			assert.Equal(t, createDefaultConfig(), cfg, "the full example shows the defaults")
		}
	}
	assert.Equal(t, 2, n)
}
