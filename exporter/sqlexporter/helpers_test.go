package sqlexporter

import (
	"context"
	"database/sql"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/custommetrics/bundle/internal/otelmap"
)

// t0 is the start of the hour the tests write windows in.
var t0 = time.Date(2025, 1, 6, 10, 0, 0, 0, time.UTC)

func ns(t time.Time) int64 { return t.UnixNano() }

// store is a database under test and the test's own connection to it.
type store struct {
	driver Driver
	dsn    string
	db     *sql.DB
}

func newSQLiteStore(t testing.TB) store {
	dsn := filepath.Join(t.TempDir(), "metrics.db")
	return store{driver: DriverSQLite, dsn: dsn, db: openSQLite(t, dsn)}
}

func openSQLite(t testing.TB, dsn string) *sql.DB {
	full, _, err := sqliteDSN(dsn)
	require.NoError(t, err)
	db, err := sql.Open("sqlite", full)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func newPostgresStore(t testing.TB, srv *pgServer) store {
	dsn := srv.newDatabase()
	return store{driver: DriverPostgres, dsn: dsn, db: openPostgres(t, dsn)}
}

func (s store) config() *Config {
	cfg := createDefaultConfig().(*Config)
	cfg.Driver = s.driver
	cfg.DSN = s.dsn
	return cfg
}

// newExporter creates and starts the exporter itself (no exporterhelper), so
// that a test sees push's errors; it is shut down in t.Cleanup.
func (s store) newExporter(t testing.TB) *sqlExporter {
	return startExporter(t, s.config(), exportertest.NewNopSettings(typ))
}

func startExporter(t testing.TB, cfg *Config, set exporter.Settings) *sqlExporter {
	t.Helper()
	e, err := newSQLExporter(cfg, set)
	require.NoError(t, err)
	require.NoError(t, e.start(context.Background(), componenttest.NewNopHost()))
	t.Cleanup(func() { require.NoError(t, e.shutdown(context.Background())) })
	return e
}

// fastRetries turns on the sending queue and retries (off by default) and
// makes cfg retry quickly and forever, with a large blocking queue.
func fastRetries(cfg *Config) {
	cfg.TimeoutConfig.Timeout = 2 * time.Second
	cfg.RetryConfig.Enabled = true
	cfg.RetryConfig.InitialInterval = 10 * time.Millisecond
	cfg.RetryConfig.MaxInterval = 200 * time.Millisecond
	cfg.RetryConfig.MaxElapsedTime = 0 // never give up
	q := *cfg.QueueConfig.GetOrInsertDefault()
	q.QueueSize = 100_000
	q.BlockOnOverflow = true
	cfg.QueueConfig = configoptional.Some(q)
}

// dp describes one data point of a test batch: a window when start is not
// zero, a raw point otherwise.
type dp struct {
	metric      string
	attrs       map[string]any
	start, end  int64 // for a raw point: end is its timestamp
	value       float64
	intValue    bool
	aggregation string
	interval    string
	sum         bool
	unit        string
	window      string // custommetrics.window metadata (the aggregate processor's figures)
}

// metricsOf builds a batch: one resource with resAttrs, one metric per point.
func metricsOf(resAttrs map[string]any, dps ...dp) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	_ = rm.Resource().Attributes().FromRaw(resAttrs)
	ms := rm.ScopeMetrics().AppendEmpty().Metrics()
	for _, d := range dps {
		m := ms.AppendEmpty()
		m.SetName(d.metric)
		m.SetUnit(d.unit)
		if d.aggregation != "" {
			m.Metadata().PutStr(otelmap.MetaAggregation, d.aggregation)
		}
		if d.interval != "" {
			m.Metadata().PutStr(otelmap.MetaInterval, d.interval)
		}
		if d.window != "" {
			m.Metadata().PutStr(otelmap.MetaWindow, d.window)
		}
		var p pmetric.NumberDataPoint
		if d.sum {
			s := m.SetEmptySum()
			s.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
			p = s.DataPoints().AppendEmpty()
		} else {
			p = m.SetEmptyGauge().DataPoints().AppendEmpty()
		}
		_ = p.Attributes().FromRaw(d.attrs)
		p.SetStartTimestamp(pcommon.Timestamp(d.start))
		p.SetTimestamp(pcommon.Timestamp(d.end))
		if d.intValue {
			p.SetIntValue(int64(d.value))
		} else {
			p.SetDoubleValue(d.value)
		}
	}
	return md
}

// storedWindow is a row of windows as a test reads it back.
type storedWindow struct {
	SeriesID    string
	Metric      string
	Attrs       string // canonical JSON (normalized from what the database returns)
	ResAttrs    string
	Start, End  int64
	Value       float64
	Aggregation sql.NullString
	Interval    sql.NullString
	MetricType  string
	Unit        string
	Revision    int64
	UpdatedAt   int64
}

type storedPoint struct {
	SeriesID   string
	Metric     string
	Attrs      string
	ResAttrs   string
	Time       int64
	Value      float64
	MetricType string
	Unit       string
	UpdatedAt  int64
}

// jsonText reads a JSON column as text on both databases.
func (s store) jsonText(col string) string {
	if s.driver == DriverPostgres {
		return col + "::text"
	}
	return col
}

func (s store) windows(t testing.TB) []storedWindow {
	t.Helper()
	rows, err := s.db.Query(`SELECT series_id, metric, ` + s.jsonText("attributes") + `, ` + s.jsonText("resource_attributes") + `,
  window_start_unix_nano, window_end_unix_nano, value, aggregation, interval, metric_type, unit, revision, updated_at_unix_nano
FROM windows ORDER BY metric, series_id, window_start_unix_nano, window_end_unix_nano`)
	require.NoError(t, err)
	defer rows.Close()
	var out []storedWindow
	for rows.Next() {
		var w storedWindow
		require.NoError(t, rows.Scan(&w.SeriesID, &w.Metric, &w.Attrs, &w.ResAttrs, &w.Start, &w.End, &w.Value,
			&w.Aggregation, &w.Interval, &w.MetricType, &w.Unit, &w.Revision, &w.UpdatedAt))
		w.Attrs, w.ResAttrs = normJSON(t, w.Attrs), normJSON(t, w.ResAttrs)
		out = append(out, w)
	}
	require.NoError(t, rows.Err())
	return out
}

func (s store) points(t testing.TB) []storedPoint {
	t.Helper()
	rows, err := s.db.Query(`SELECT series_id, metric, ` + s.jsonText("attributes") + `, ` + s.jsonText("resource_attributes") + `,
  time_unix_nano, value, metric_type, unit, updated_at_unix_nano
FROM points ORDER BY metric, series_id, time_unix_nano`)
	require.NoError(t, err)
	defer rows.Close()
	var out []storedPoint
	for rows.Next() {
		var p storedPoint
		require.NoError(t, rows.Scan(&p.SeriesID, &p.Metric, &p.Attrs, &p.ResAttrs, &p.Time, &p.Value, &p.MetricType, &p.Unit, &p.UpdatedAt))
		p.Attrs, p.ResAttrs = normJSON(t, p.Attrs), normJSON(t, p.ResAttrs)
		out = append(out, p)
	}
	require.NoError(t, rows.Err())
	return out
}

func (s store) dialect() dialect {
	if s.driver == DriverPostgres {
		return postgresDialect
	}
	return sqliteDialect
}

// primaryKey returns the columns of table's primary key, in key order.
func primaryKey(t testing.TB, s store, table string) []string {
	t.Helper()
	q := `SELECT name FROM pragma_table_info(?) WHERE pk > 0 ORDER BY pk`
	if s.driver == DriverPostgres {
		q = `SELECT a.attname FROM pg_index i
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
WHERE i.indrelid = $1::regclass AND i.indisprimary
ORDER BY array_position(i.indkey::int2[], a.attnum)`
	}
	rows, err := s.db.Query(q, table)
	require.NoError(t, err)
	defer rows.Close()
	var cols []string
	for rows.Next() {
		var c string
		require.NoError(t, rows.Scan(&c))
		cols = append(cols, c)
	}
	require.NoError(t, rows.Err())
	return cols
}

func (s store) count(t testing.TB, table string) int {
	t.Helper()
	var n int
	require.NoError(t, s.db.QueryRow("SELECT COUNT(*) FROM "+table).Scan(&n))
	return n
}

// normJSON re-encodes JSON with sorted keys and no spaces (PostgreSQL returns
// jsonb with spaces after ':' and ',').
func normJSON(t testing.TB, s string) string {
	var v any
	require.NoError(t, json.Unmarshal([]byte(s), &v), s)
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}
