package sqlexporter

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// The comparison benchmarks write the same rows two ways in one run and
// report both rates and their ratio:
//
//   - BenchmarkCompareSQLite: through the exporter's push (conversion from
//     pdata, one transaction per batch) and through C SQLite driven from
//     python3's sqlite3 module (executemany of the exporter's own one-row
//     upsert, one transaction per batch), each into its own new file with the
//     exporter's schema and the exporter's journal_mode and synchronous.
//   - BenchmarkComparePostgres: through push and through COPY (pgx.CopyFrom)
//     of the same rows into the same server, each into its own new database
//     with the exporter's schema; for restate, COPY into a temporary table
//     followed by the exporter's upsert from it (the usual bulk upsert).
//
// Each of b.N iterations is one batch of 1000 rows (the sending queue's
// min_size under load): insert writes new rows (the next hour of every
// series), restate rewrites the same rows with a new value. Metrics:
// rows/s (ours), ref-rows/s (the reference) and ratio (ours / reference).
//
//	go test -run '^$' -bench Compare -benchtime 50x -count 3 ./exporter/sqlexporter/
const compareBatch = 1000

func BenchmarkCompareSQLite(b *testing.B) {
	if _, err := exec.LookPath("python3"); err != nil {
		b.Skip("python3 is not installed")
	}
	for _, table := range []string{"windows", "points"} {
		for _, mode := range []string{"insert", "restate"} {
			b.Run(table+"/"+mode, func(b *testing.B) {
				s := newSQLiteStore(b)
				e := s.newExporter(b)
				mds := compareBatches(b.N, table, mode)
				rows := referenceRows(b, mds)

				// The reference writes into its own file with the same schema
				// and the same journal_mode and synchronous as the exporter's
				// connection.
				ref := newSQLiteStore(b)
				_ = ref.newExporter(b)
				journal, synchronous := sqlitePragma(b, e.db, "journal_mode"), sqlitePragma(b, e.db, "synchronous")

				ctx := context.Background()
				b.ResetTimer()
				for i := range mds {
					if err := e.push(ctx, mds[i]); err != nil {
						b.Fatal(err)
					}
				}
				ours := b.Elapsed()
				b.StopTimer()
				checkRows(b, s, table, mode, b.N)

				refRate := pythonSQLite(b, ref.dsn, journal, synchronous, table, rows)
				checkRows(b, ref, table, mode, b.N)
				reportCompare(b, ours, refRate)
			})
		}
	}
}

func BenchmarkComparePostgres(b *testing.B) {
	srv := startPostgres(b)
	for _, table := range []string{"windows", "points"} {
		for _, mode := range []string{"insert", "restate"} {
			b.Run(table+"/"+mode, func(b *testing.B) {
				s := newPostgresStore(b, srv)
				e := s.newExporter(b)
				mds := compareBatches(b.N, table, mode)
				rows := referenceRows(b, mds)
				ref := newPostgresStore(b, srv)
				_ = ref.newExporter(b) // the schema

				ctx := context.Background()
				b.ResetTimer()
				for i := range mds {
					if err := e.push(ctx, mds[i]); err != nil {
						b.Fatal(err)
					}
				}
				ours := b.Elapsed()
				b.StopTimer()
				checkRows(b, s, table, mode, b.N)

				refRate := copyPostgres(b, ref.dsn, table, mode, rows)
				checkRows(b, ref, table, mode, b.N)
				reportCompare(b, ours, refRate)
			})
		}
	}
}

func reportCompare(b *testing.B, ours time.Duration, refRate float64) {
	rate := float64(b.N*compareBatch) / ours.Seconds()
	b.ReportMetric(rate, "rows/s")
	b.ReportMetric(refRate, "ref-rows/s")
	b.ReportMetric(rate/refRate, "ratio")
	b.ReportMetric(0, "ns/op") // the rates say it; ns/op would mix in the reference's time
}

// compareBatches returns n batches of compareBatch series of one hourly sum
// (windows) or one gauge without start time (points).
func compareBatches(n int, table, mode string) []pmetric.Metrics {
	mds := make([]pmetric.Metrics, n)
	for i := range mds {
		md, dps := benchBatch(compareBatch)
		hour := int64(i)
		if mode == "restate" {
			hour = 0
		}
		if table == "windows" {
			setWindow(dps, hour)
		} else {
			ts := pcommon.NewTimestampFromTime(t0.Add(time.Duration(hour) * time.Hour))
			md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(0).Metadata().Clear()
			for j := 0; j < dps.Len(); j++ {
				dps.At(j).SetTimestamp(ts)
			}
		}
		for j := 0; j < dps.Len(); j++ {
			dps.At(j).SetDoubleValue(float64(i*compareBatch + j))
		}
		mds[i] = md
	}
	return mds
}

// referenceRows converts every batch with the exporter's own conversion
// into the bind arguments of its one-row upsert, so that the reference
// writes exactly the rows the exporter writes.
func referenceRows(b *testing.B, mds []pmetric.Metrics) [][][]any {
	now := time.Now().UnixNano()
	out := make([][][]any, len(mds))
	for i, md := range mds {
		bt := buildBatch(md)
		for _, w := range bt.windows {
			out[i] = append(out[i], []any{w.seriesID, w.metric, w.attrs, w.annotations, w.resAttrs, w.start, w.end, w.value,
				nullIfEmpty(w.aggregation), nullIfEmpty(w.interval), w.metricType, w.unit, int64(1), now, nullIfEmpty(w.status)})
		}
		for _, p := range bt.points {
			out[i] = append(out[i], []any{p.seriesID, p.metric, p.attrs, p.annotations, p.resAttrs, p.time, p.value, p.metricType, p.unit, now})
		}
		require.Len(b, out[i], compareBatch)
	}
	return out
}

// checkRows fails unless the table holds what n batches leave in it.
func checkRows(b *testing.B, s store, table, mode string, n int) {
	b.Helper()
	want := n * compareBatch
	if mode == "restate" {
		want = compareBatch
	}
	require.Equal(b, want, s.count(b, table))
}

func sqlitePragma(b *testing.B, db *sql.DB, name string) string {
	var v string
	require.NoError(b, db.QueryRow("PRAGMA "+name).Scan(&v))
	return v
}

// comparePython writes the batches of its input file (one JSON array of rows
// per line) with the statement given, one transaction per batch, and prints
// its rate. Reading the input is not timed.
const comparePython = `
import json, sqlite3, sys, time
path, journal, synchronous, stmt, rows = sys.argv[1:6]
batches = [json.loads(line) for line in open(rows)]
con = sqlite3.connect(path, isolation_level=None)
con.execute("PRAGMA busy_timeout=10000")
got = con.execute("PRAGMA journal_mode=" + journal).fetchone()[0]
con.execute("PRAGMA synchronous=" + synchronous)
n = 0
t = time.perf_counter()
for batch in batches:
    con.execute("BEGIN IMMEDIATE")
    con.executemany(stmt, batch)
    con.execute("COMMIT")
    n += len(batch)
elapsed = time.perf_counter() - t
con.close()
print(json.dumps({"rows": n, "seconds": elapsed, "journal_mode": got,
                  "synchronous": synchronous, "sqlite_version": sqlite3.sqlite_version}))
`

func pythonSQLite(b *testing.B, dsn, journal, synchronous, table string, batches [][][]any) float64 {
	b.Helper()
	dir := b.TempDir()
	rowsFile := filepath.Join(dir, "rows.jsonl")
	f, err := os.Create(rowsFile)
	require.NoError(b, err)
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	for _, batch := range batches {
		require.NoError(b, enc.Encode(batch))
	}
	require.NoError(b, w.Flush())
	require.NoError(b, f.Close())
	stmt := windowsUpsert(sqliteDialect, 1)
	if table == "points" {
		stmt = pointsUpsert(sqliteDialect, 1)
	}
	out, err := exec.Command("python3", "-c", comparePython, dsn, journal, synchronous, stmt, rowsFile).Output()
	var stderr string
	if ee, ok := err.(*exec.ExitError); ok {
		stderr = string(ee.Stderr)
	}
	require.NoError(b, err, stderr)
	var res struct {
		Rows          int     `json:"rows"`
		Seconds       float64 `json:"seconds"`
		JournalMode   string  `json:"journal_mode"`
		Synchronous   string  `json:"synchronous"`
		SQLiteVersion string  `json:"sqlite_version"`
	}
	require.NoError(b, json.Unmarshal(out, &res), string(out))
	require.Equal(b, strings.ToLower(journal), strings.ToLower(res.JournalMode))
	b.Logf("reference: C SQLite %s via python3, journal_mode=%s synchronous=%s: %d rows in %.3fs",
		res.SQLiteVersion, res.JournalMode, res.Synchronous, res.Rows, res.Seconds)
	return float64(res.Rows) / res.Seconds
}

// copyPostgres writes the batches with COPY, one transaction per batch, and
// returns its rate.
func copyPostgres(b *testing.B, dsn, table, mode string, batches [][][]any) float64 {
	b.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(b, err)
	defer conn.Close(ctx)
	cols := windowColumns
	upsert := windowsUpsert(postgresDialect, 1)
	if table == "points" {
		cols = pointColumns
		upsert = pointsUpsert(postgresDialect, 1)
	}
	// INSERT INTO t (cols) SELECT cols FROM staging ON CONFLICT ...
	fromStaging := "INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ") SELECT " +
		strings.Join(cols, ", ") + " FROM staging" + upsertTail(upsert)
	start := time.Now()
	n := 0
	for _, batch := range batches {
		tx, err := conn.Begin(ctx)
		require.NoError(b, err)
		target := pgx.Identifier{table}
		if mode == "restate" {
			_, err = tx.Exec(ctx, "CREATE TEMP TABLE staging (LIKE "+table+") ON COMMIT DROP")
			require.NoError(b, err)
			target = pgx.Identifier{"staging"}
		}
		c, err := tx.CopyFrom(ctx, target, cols, pgx.CopyFromRows(batch))
		require.NoError(b, err)
		require.EqualValues(b, len(batch), c)
		if mode == "restate" {
			_, err = tx.Exec(ctx, fromStaging)
			require.NoError(b, err)
		}
		require.NoError(b, tx.Commit(ctx))
		n += len(batch)
	}
	elapsed := time.Since(start)
	b.Logf("reference: COPY (%s) %d rows in %v", mode, n, elapsed)
	return float64(n) / elapsed.Seconds()
}
