package sqlexporter

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"os/exec"
	"strconv"
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

				py := startPython(b, ref.dsn, journal, synchronous, table)

				// Batches alternate between the two writers; only the
				// exporter's are timed by b.
				ctx := context.Background()
				b.ResetTimer()
				for i := range mds {
					if err := e.push(ctx, mds[i]); err != nil {
						b.Fatal(err)
					}
					b.StopTimer()
					py.write(b, rows[i])
					b.StartTimer()
				}
				b.StopTimer()
				checkRows(b, s, table, mode, b.N)
				checkRows(b, ref, table, mode, b.N)
				refRate := float64(py.rows) / py.busy.Seconds()
				reportCompare(b, b.Elapsed(), refRate)
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
				cp := startCopy(b, ref.dsn, table, mode)

				ctx := context.Background()
				b.ResetTimer()
				for i := range mds {
					if err := e.push(ctx, mds[i]); err != nil {
						b.Fatal(err)
					}
					b.StopTimer()
					cp.write(b, rows[i])
					b.StartTimer()
				}
				b.StopTimer()
				checkRows(b, s, table, mode, b.N)
				checkRows(b, ref, table, mode, b.N)
				refRate := float64(cp.rows) / cp.busy.Seconds()
				reportCompare(b, b.Elapsed(), refRate)
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

// comparePython writes each batch it reads from stdin (one JSON array of
// rows per line) with the statement given, in one transaction, and answers
// with the seconds the transaction took. Decoding the input is not timed.
const comparePython = `
import json, sqlite3, sys, time
path, journal, synchronous, stmt = sys.argv[1:5]
con = sqlite3.connect(path, isolation_level=None)
con.execute("PRAGMA busy_timeout=10000")
got = con.execute("PRAGMA journal_mode=" + journal).fetchone()[0]
con.execute("PRAGMA synchronous=" + synchronous)
print(json.dumps({"journal_mode": got, "synchronous": con.execute("PRAGMA synchronous").fetchone()[0],
                  "sqlite_version": sqlite3.sqlite_version}), flush=True)
for line in sys.stdin:
    batch = json.loads(line)
    t = time.perf_counter()
    con.execute("BEGIN IMMEDIATE")
    con.executemany(stmt, batch)
    con.execute("COMMIT")
    print(time.perf_counter() - t, flush=True)
con.close()
`

// pythonWriter is C SQLite driven from python3, writing one batch at a time
// so that the benchmark can interleave it with the exporter's batches: both
// then see the same disk (whose fsync latency varies by several times from
// one second to the next on a virtual machine).
type pythonWriter struct {
	cmd  *exec.Cmd
	in   *bufio.Writer
	out  *bufio.Scanner
	enc  *json.Encoder
	busy time.Duration
	rows int
}

func startPython(b *testing.B, dsn, journal, synchronous, table string) *pythonWriter {
	b.Helper()
	stmt := windowsUpsert(sqliteDialect, 1)
	if table == "points" {
		stmt = pointsUpsert(sqliteDialect, 1)
	}
	cmd := exec.Command("python3", "-c", comparePython, dsn, journal, synchronous, stmt)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	require.NoError(b, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(b, err)
	require.NoError(b, cmd.Start())
	p := &pythonWriter{cmd: cmd, in: bufio.NewWriter(stdin), out: bufio.NewScanner(stdout)}
	p.enc = json.NewEncoder(p.in)
	b.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Wait()
	})
	require.True(b, p.out.Scan(), "python3 did not start")
	var hello struct {
		JournalMode   string `json:"journal_mode"`
		Synchronous   int    `json:"synchronous"`
		SQLiteVersion string `json:"sqlite_version"`
	}
	require.NoError(b, json.Unmarshal(p.out.Bytes(), &hello), p.out.Text())
	require.Equal(b, strings.ToLower(journal), strings.ToLower(hello.JournalMode))
	require.Equal(b, synchronous, strconv.Itoa(hello.Synchronous))
	b.Logf("reference: C SQLite %s via python3, journal_mode=%s synchronous=%d",
		hello.SQLiteVersion, hello.JournalMode, hello.Synchronous)
	return p
}

// write writes one batch and adds its time to busy.
func (p *pythonWriter) write(b *testing.B, batch [][]any) {
	require.NoError(b, p.enc.Encode(batch))
	require.NoError(b, p.in.Flush())
	require.True(b, p.out.Scan(), "python3 stopped: %v", p.out.Err())
	s, err := strconv.ParseFloat(p.out.Text(), 64)
	require.NoError(b, err)
	p.busy += time.Duration(s * float64(time.Second))
	p.rows += len(batch)
}

// copyWriter writes batches with COPY, one transaction per batch.
type copyWriter struct {
	conn        *pgx.Conn
	table, mode string
	cols        []string
	fromStaging string
	busy        time.Duration
	rows        int
}

func startCopy(b *testing.B, dsn, table, mode string) *copyWriter {
	b.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(b, err)
	b.Cleanup(func() { _ = conn.Close(ctx) })
	cols, upsert := windowColumns, windowsUpsert(postgresDialect, 1)
	if table == "points" {
		cols, upsert = pointColumns, pointsUpsert(postgresDialect, 1)
	}
	return &copyWriter{conn: conn, table: table, mode: mode, cols: cols,
		fromStaging: "INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ") SELECT " +
			strings.Join(cols, ", ") + " FROM staging" + upsertTail(upsert)}
}

// write writes one batch and adds its time to busy: insert copies into the
// table, restate copies into a temporary table and upserts from it.
func (c *copyWriter) write(b *testing.B, batch [][]any) {
	ctx := context.Background()
	start := time.Now()
	tx, err := c.conn.Begin(ctx)
	require.NoError(b, err)
	target := pgx.Identifier{c.table}
	if c.mode == "restate" {
		_, err = tx.Exec(ctx, "CREATE TEMP TABLE staging (LIKE "+c.table+") ON COMMIT DROP")
		require.NoError(b, err)
		target = pgx.Identifier{"staging"}
	}
	n, err := tx.CopyFrom(ctx, target, c.cols, pgx.CopyFromRows(batch))
	require.NoError(b, err)
	require.EqualValues(b, len(batch), n)
	if c.mode == "restate" {
		_, err = tx.Exec(ctx, c.fromStaging)
		require.NoError(b, err)
	}
	require.NoError(b, tx.Commit(ctx))
	c.busy += time.Since(start)
	c.rows += len(batch)
}
