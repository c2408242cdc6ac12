package sqlexporter // import "github.com/custommetrics/bundle/exporter/sqlexporter"

import (
	"context"
	"database/sql"
	"strconv"
	"strings"
	"sync"
)

// writeBatch writes b in one transaction: either every row of the batch is
// applied or none is. It returns the number of rows inserted or changed.
func (e *sqlExporter) writeBatch(ctx context.Context, b *batch, now int64) (windows, points int64, err error) {
	tx, err := e.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, 0, err
	}
	if e.dialect.driver == DriverPostgres {
		windows, points, err = writePostgres(ctx, tx, b, now)
	} else {
		windows, points, err = e.writeSQLite(ctx, tx, b, now)
	}
	if err == nil && len(b.cumulatives)+len(b.histograms) > 0 {
		_, err = e.writeDistributions(ctx, tx, b, now)
	}
	if err != nil {
		_ = tx.Rollback()
		return 0, 0, err
	}
	if err = tx.Commit(); err != nil {
		return 0, 0, err
	}
	return windows, points, nil
}

// sqliteRowsPerStatement is the number of rows of the multi-row INSERT that
// SQLite executes repeatedly (prepared once per transaction); the rest of a
// batch goes row by row. modernc.org/sqlite (since v1.41) keeps the compiled
// statement across executions and (since v1.60.1) binds in linear time, so
// the size only trades the per-execution overhead against the size of the
// statement; 8 to 128 measure the same within noise.
const sqliteRowsPerStatement = 32

func (e *sqlExporter) writeSQLite(ctx context.Context, tx *sql.Tx, b *batch, now int64) (windows, points int64, err error) {
	windows, err = execChunked(ctx, tx, len(b.windows), len(windowColumns),
		func(n int) string {
			return e.stmts.get("windows", n, func() string { return windowsUpsert(e.dialect, n) })
		},
		func(args []any, i int) []any {
			w := &b.windows[i]
			return append(args, w.seriesID, w.metric, w.attrs, w.annotations, w.resAttrs, w.start, w.end, w.value,
				nullIfEmpty(w.aggregation), nullIfEmpty(w.interval), w.metricType, w.unit, 1, now, nullIfEmpty(w.status))
		})
	if err != nil {
		return 0, 0, err
	}
	points, err = execChunked(ctx, tx, len(b.points), len(pointColumns),
		func(n int) string {
			return e.stmts.get("points", n, func() string { return pointsUpsert(e.dialect, n) })
		},
		func(args []any, i int) []any {
			p := &b.points[i]
			return append(args, p.seriesID, p.metric, p.attrs, p.annotations, p.resAttrs, p.time, p.value, p.metricType, p.unit, now)
		})
	if err != nil {
		return 0, 0, err
	}
	return windows, points, nil
}

// execChunked writes rows [0, n) with a statement of sqliteRowsPerStatement
// rows, then one of a single row for the remainder; both prepared once.
func execChunked(ctx context.Context, tx *sql.Tx, n, cols int, stmt func(rows int) string, appendRow func([]any, int) []any) (int64, error) {
	var affected int64
	args := make([]any, 0, sqliteRowsPerStatement*cols)
	i := 0
	for _, size := range []int{sqliteRowsPerStatement, 1} {
		if n-i < size {
			continue
		}
		st, err := tx.PrepareContext(ctx, stmt(size))
		if err != nil {
			return 0, err
		}
		for ; n-i >= size; i += size {
			args = args[:0]
			for r := i; r < i+size; r++ {
				args = appendRow(args, r)
			}
			res, err := st.ExecContext(ctx, args...)
			if err != nil {
				_ = st.Close()
				return 0, err
			}
			affected += rowsAffected(res)
		}
		if err := st.Close(); err != nil {
			return 0, err
		}
	}
	return affected, nil
}

// On PostgreSQL each table is written with a single statement whatever the
// batch size: the rows travel as one array per column and unnest() turns
// them back into rows, so the server prepares one statement once.
var (
	postgresWindowsUpsert = `INSERT INTO windows (` + strings.Join(windowColumns, ", ") + `)
SELECT s, m, a::jsonb, n::jsonb, r::jsonb, ws, we, v, NULLIF(ag, ''), NULLIF(iv, ''), mt, u, 1, $13::bigint, NULLIF(st, '')
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[], $8::float8[],
            $9::text[], $10::text[], $11::text[], $12::text[], $14::text[]) AS t(s, m, a, n, r, ws, we, v, ag, iv, mt, u, st)` +
		upsertTail(windowsUpsert(postgresDialect, 1))
	postgresPointsUpsert = `INSERT INTO points (` + strings.Join(pointColumns, ", ") + `)
SELECT s, m, a::jsonb, n::jsonb, r::jsonb, ts, v, mt, u, $10::bigint
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::float8[], $8::text[], $9::text[])
     AS t(s, m, a, n, r, ts, v, mt, u)` +
		upsertTail(pointsUpsert(postgresDialect, 1))
)

// upsertTail returns the ON CONFLICT clause of an upsert statement, so that
// both drivers share it.
func upsertTail(stmt string) string {
	return "\n" + stmt[strings.Index(stmt, " ON CONFLICT ")+1:]
}

func writePostgres(ctx context.Context, tx *sql.Tx, b *batch, now int64) (windows, points int64, err error) {
	if n := len(b.windows); n > 0 {
		var (
			ids, metrics, attrs, anns, res, aggs, ivs, types, units, statuses = make([]string, n), make([]string, n), make([]string, n),
				make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
			starts, ends = make([]int64, n), make([]int64, n)
			values       = make([]float64, n)
		)
		for i, w := range b.windows {
			ids[i], metrics[i], attrs[i], anns[i], res[i] = w.seriesID, w.metric, w.attrs, w.annotations, w.resAttrs
			starts[i], ends[i], values[i] = w.start, w.end, w.value
			aggs[i], ivs[i], types[i], units[i], statuses[i] = w.aggregation, w.interval, w.metricType, w.unit, w.status
		}
		r, err := tx.ExecContext(ctx, postgresWindowsUpsert,
			ids, metrics, attrs, anns, res, starts, ends, values, aggs, ivs, types, units, now, statuses)
		if err != nil {
			return 0, 0, err
		}
		windows = rowsAffected(r)
	}
	if n := len(b.points); n > 0 {
		var (
			ids, metrics, attrs, anns, res, types, units = make([]string, n), make([]string, n), make([]string, n),
				make([]string, n), make([]string, n), make([]string, n), make([]string, n)
			times  = make([]int64, n)
			values = make([]float64, n)
		)
		for i, p := range b.points {
			ids[i], metrics[i], attrs[i], anns[i], res[i] = p.seriesID, p.metric, p.attrs, p.annotations, p.resAttrs
			times[i], values[i], types[i], units[i] = p.time, p.value, p.metricType, p.unit
		}
		r, err := tx.ExecContext(ctx, postgresPointsUpsert, ids, metrics, attrs, anns, res, times, values, types, units, now)
		if err != nil {
			return 0, 0, err
		}
		points = rowsAffected(r)
	}
	return windows, points, nil
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func rowsAffected(r sql.Result) int64 {
	n, err := r.RowsAffected()
	if err != nil {
		return 0
	}
	return n
}

// stmtCache keeps the text of the multi-row statements by table and row count.
type stmtCache struct {
	m sync.Map // string -> string
}

func (c *stmtCache) get(table string, n int, build func() string) string {
	key := table + "/" + strconv.Itoa(n)
	if s, ok := c.m.Load(key); ok {
		return s.(string)
	}
	s := build()
	c.m.Store(key, s)
	return s
}
