// Package pgwindows keeps window aggregation states in PostgreSQL and merges
// changes into them atomically, so that any number of processes can add to
// the same windows: each sends the delta of its values (an
// aggregation.Compact) and the server folds it into the stored state in one
// upsert, as aggregation.Compact.Merge does, and answers the merged state.
//
// The aggregate processor keeps its windows here in cluster mode (its
// `postgres` setting): any number of collectors add to the same windows, and
// Emit hands each revision of a window to exactly one of them.
//
// Table window_states, one row per series-window:
//
//	series           bytea   the series' identity (opaque here: the caller's canonical key)
//	interval         int2    calendar.Interval
//	start_unix_nano  int8    window start; (series, interval, start_unix_nano) is the key
//	end_unix_nano    int8    window end
//	fn               int2    aggregation.Func, fixed by the first write
//	n                int8    number of values
//	a                float8  Sum: sum; Min/Max: min/max; First/Last: the value; Average: Σv·w
//	w                float8  Average: Σw
//	ts, seq, vkey    int8    First/Last: the value's timestamp, arrival sequence and order
//	                         key (aggregation.OrderKey), compared as Merge compares points;
//	                         seq and vkey are unsigned, stored with the top bit flipped so
//	                         that PostgreSQL's signed order is their order
//	revision         int8    1 at the first write, +1 with every merge
//	identity         bytea   the caller's description of the series (written by the first write)
//	emitted          int8    revision last emitted as a closed window's figure (0: none)
//	running          int8    revision last emitted as a running figure (0: none)
//	final            bool    a closed figure was emitted: the next emission is a restatement
package pgwindows // import "github.com/custommetrics/bundle/internal/pgwindows"

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/custommetrics/bundle/internal/aggregation"
	"github.com/custommetrics/bundle/internal/calendar"
	"github.com/custommetrics/bundle/internal/pgdb"
)

// Schema creates the table; it is idempotent.
var Schema = `CREATE TABLE IF NOT EXISTS window_states (
  series bytea NOT NULL,
  interval int2 NOT NULL,
  start_unix_nano int8 NOT NULL,
  end_unix_nano int8 NOT NULL,
  fn int2 NOT NULL,
  n int8 NOT NULL,
  a float8 NOT NULL,
  w float8 NOT NULL,
  ts int8 NOT NULL,
  seq int8 NOT NULL,
  vkey int8 NOT NULL,
  revision int8 NOT NULL,
  identity bytea NOT NULL DEFAULT '',
  emitted int8 NOT NULL DEFAULT 0,
  running int8 NOT NULL DEFAULT 0,
  final bool NOT NULL DEFAULT false,
  PRIMARY KEY (series, interval, start_unix_nano),
  -- What Compact.Finite allows: a merge that breaks it fails, and its
  -- transaction with it.
  CONSTRAINT window_states_finite CHECK (
    a NOT IN ('Infinity'::float8, '-Infinity'::float8, 'NaN'::float8) AND
    w NOT IN ('Infinity'::float8, '-Infinity'::float8, 'NaN'::float8) AND
    (fn <> ` + averageFn + ` OR w > 0))
);
CREATE INDEX IF NOT EXISTS window_states_unemitted ON window_states (end_unix_nano) WHERE revision > emitted;
CREATE INDEX IF NOT EXISTS window_states_running ON window_states (end_unix_nano) WHERE revision > running`

var averageFn = fmt.Sprint(int(aggregation.Average))

// Errors of Merge; nothing of the call was applied.
var (
	// ErrNonFinite: a merged figure would not be finite (a sum beyond
	// ±1.8e308, or an Average whose weights sum to 0).
	ErrNonFinite = errors.New("pgwindows: the merged figure of a window would not be finite")
	// ErrFunc: a window is stored with another aggregation function.
	ErrFunc = errors.New("pgwindows: the window is stored with another aggregation function")
)

// A Delta is what one writer adds to one window.
type Delta struct {
	Series   []byte
	Identity []byte // stored with the window's first write
	Interval calendar.Interval
	Start    int64
	End      int64
	Fn       aggregation.Func
	State    aggregation.Compact
}

// Merged is a window's state after a merge, and its revision.
type Merged struct {
	State    aggregation.Compact
	Revision int64
}

// Store is a window_states table; safe for concurrent use.
type Store struct{ pool *pgxpool.Pool }

// New returns a Store on pool, creating the table when missing.
func New(ctx context.Context, pool *pgxpool.Pool) (*Store, error) {
	if err := pgdb.CreateSchema(ctx, pool, "custommetrics_window_states_schema", Schema); err != nil {
		return nil, fmt.Errorf("pgwindows: creating window_states: %w", err)
	}
	return &Store{pool: pool}, nil
}

// unsigned maps an unsigned value to an int8 column with the same order.
func unsigned(u uint64) int64 { return int64(u ^ 1<<63) }

func fromUnsigned(i int64) uint64 { return uint64(i) ^ 1<<63 }

// takes is true when the incoming point replaces the stored one: an earlier
// point for First, a later one for Last (points ordered as Merge orders them).
var takes = fmt.Sprintf(`((t.fn = %d AND (excluded.ts, excluded.seq, excluded.vkey) < (t.ts, t.seq, t.vkey)) OR
  (t.fn = %d AND (t.ts, t.seq, t.vkey) < (excluded.ts, excluded.seq, excluded.vkey)))`, aggregation.First, aggregation.Last)

var upsert = `INSERT INTO window_states AS t
  (series, interval, start_unix_nano, end_unix_nano, fn, n, a, w, ts, seq, vkey, revision, identity)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 1, $12)
ON CONFLICT (series, interval, start_unix_nano) DO UPDATE SET
  n = t.n + excluded.n,
  a = CASE
    WHEN t.fn IN (` + fmt.Sprint(int(aggregation.Sum), ", ", int(aggregation.Average)) + `) THEN t.a + excluded.a
    WHEN t.fn = ` + fmt.Sprint(int(aggregation.Min)) + ` THEN LEAST(t.a, excluded.a)
    WHEN t.fn = ` + fmt.Sprint(int(aggregation.Max)) + ` THEN GREATEST(t.a, excluded.a)
    WHEN ` + takes + ` THEN excluded.a
    ELSE t.a END,
  w = t.w + excluded.w,
  ts = CASE WHEN ` + takes + ` THEN excluded.ts ELSE t.ts END,
  seq = CASE WHEN ` + takes + ` THEN excluded.seq ELSE t.seq END,
  vkey = CASE WHEN ` + takes + ` THEN excluded.vkey ELSE t.vkey END,
  revision = t.revision + 1,
  -- Another function fails the NOT NULL constraint, and the transaction with it.
  fn = CASE WHEN t.fn = excluded.fn THEN t.fn END
RETURNING n, a, w, ts, seq, revision`

// row returns the upsert's arguments for d.
func row(d *Delta) []any {
	f := d.State.Fields()
	var w float64
	var ts, seq, vkey int64
	switch d.Fn {
	case aggregation.Average:
		w = math.Float64frombits(f.B)
	case aggregation.First, aggregation.Last:
		ts, seq, vkey = int64(f.B), unsigned(f.C), unsigned(aggregation.OrderKey(f.A))
	}
	identity := d.Identity
	if identity == nil {
		identity = []byte{} // the column holds no NULLs
	}
	return []any{d.Series, int16(d.Interval), d.Start, d.End, int16(d.Fn), int64(f.Count), f.A, w, ts, seq, vkey, identity}
}

// Merge folds every delta into its window, in one transaction: all of them
// or, on error, none. It returns each window's merged state, in the order of
// deltas; a delta with no values is not sent (its Merged is the zero value).
// Deltas of one window are merged in their order.
func (s *Store) Merge(ctx context.Context, deltas []Delta) ([]Merged, error) {
	// Rows are locked in key order, so concurrent Merges cannot deadlock.
	order := make([]int, len(deltas))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(i, j int) int {
		a, b := &deltas[i], &deltas[j]
		return cmp.Or(strings.Compare(string(a.Series), string(b.Series)),
			cmp.Compare(a.Interval, b.Interval), cmp.Compare(a.Start, b.Start))
	})
	out := make([]Merged, len(deltas))
	var b pgx.Batch
	order = slices.DeleteFunc(order, func(i int) bool { return deltas[i].State.Count() == 0 })
	for _, i := range order {
		b.Queue(upsert, row(&deltas[i])...)
	}
	// One round trip: a batch runs as one implicit transaction, which any
	// failing statement (a non-finite figure, another function) aborts whole.
	res := s.pool.SendBatch(ctx, &b)
	var err error
	for _, i := range order {
		d := &deltas[i]
		m, e := scan(res.QueryRow(), d.Fn)
		if e != nil {
			err = e
			break
		}
		out[i] = m
	}
	if e := res.Close(); err == nil {
		err = e
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case pgErr.Code == "22003", // numeric_value_out_of_range: a float8 sum overflowed
			pgErr.Code == "23514" && pgErr.ConstraintName == "window_states_finite":
			return nil, fmt.Errorf("%w: %s", ErrNonFinite, pgErr.Message)
		case pgErr.Code == "23502" && pgErr.ColumnName == "fn":
			return nil, ErrFunc
		}
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

func scan(r pgx.Row, fn aggregation.Func) (Merged, error) {
	var n, ts, seq, rev int64
	var a, w float64
	if err := r.Scan(&n, &a, &w, &ts, &seq, &rev); err != nil {
		return Merged{}, err
	}
	return Merged{State: compactOf(fn, n, a, w, ts, seq), Revision: rev}, nil
}

// compactOf is the state that a row's columns hold for fn.
func compactOf(fn aggregation.Func, n int64, a, w float64, ts, seq int64) aggregation.Compact {
	f := aggregation.Fields{Count: uint64(n), A: a}
	switch fn {
	case aggregation.Average:
		f.B = math.Float64bits(w)
	case aggregation.First, aggregation.Last:
		f.B, f.C = uint64(ts), fromUnsigned(seq)
	}
	return aggregation.CompactOfFields(f)
}

// Kind says which figure of a window an emission is.
type Kind uint8

// Kinds of emissions.
const (
	Running  Kind = iota // the figure of an open window
	Closed               // the first figure of a closed window
	Restated             // a later figure of a closed window
)

// A Claimed window is one to emit.
type Claimed struct {
	Identity []byte
	Interval calendar.Interval
	Start    int64
	End      int64
	Fn       aggregation.Func
	Merged
	Kind Kind
}

// Emit hands the windows due for emission to fn, at most limit of them, and
// marks them emitted when fn returns nil: closed windows (ending at or before
// closedBefore) whose revision was not emitted as closed, and, with running,
// open windows whose revision was not emitted at all. A window waits while
// an earlier closed window of its series is due, so that each series'
// windows go out in order (the anomaly processor scores them in order). It works in one
// transaction holding the windows' rows, which other callers skip: each
// revision is handed to one caller, and to another only if fn failed or its
// caller died before committing. It returns how many windows fn took.
func (s *Store) Emit(ctx context.Context, closedBefore int64, running bool, limit int, fn func([]Claimed) error) (int, error) {
	var n int
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// A series' closed windows go out in order: not while an earlier one
		// of the same series is due (or being emitted by another caller).
		rows, err := tx.Query(ctx, `SELECT series, interval, start_unix_nano, end_unix_nano, fn, n, a, w, ts, seq, revision, final, identity
FROM window_states t
WHERE ((end_unix_nano <= $1 AND revision > emitted) OR ($2 AND end_unix_nano > $1 AND revision > running))
  AND NOT EXISTS (SELECT 1 FROM window_states o
    WHERE o.series = t.series AND o.interval = t.interval AND o.start_unix_nano < t.start_unix_nano
      AND o.end_unix_nano <= $1 AND o.revision > o.emitted)
ORDER BY end_unix_nano LIMIT $3 FOR UPDATE OF t SKIP LOCKED`, closedBefore, running, limit)
		if err != nil {
			return err
		}
		var claimed []Claimed
		var series [][]byte
		for rows.Next() {
			var c Claimed
			var key []byte
			var iv, f int16
			var cnt, ts, seq int64
			var a, w float64
			var final bool
			if err := rows.Scan(&key, &iv, &c.Start, &c.End, &f, &cnt, &a, &w, &ts, &seq, &c.Revision, &final, &c.Identity); err != nil {
				rows.Close()
				return err
			}
			c.Interval, c.Fn = calendar.Interval(iv), aggregation.Func(f)
			c.State = compactOf(c.Fn, cnt, a, w, ts, seq)
			switch {
			case c.End > closedBefore:
				c.Kind = Running
			case final:
				c.Kind = Restated
			default:
				c.Kind = Closed
			}
			claimed = append(claimed, c)
			series = append(series, key)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if len(claimed) == 0 {
			return nil
		}
		if err := fn(claimed); err != nil {
			return err
		}
		var b pgx.Batch
		for i, c := range claimed {
			if c.Kind == Running {
				b.Queue(`UPDATE window_states SET running = $4 WHERE series = $1 AND interval = $2 AND start_unix_nano = $3`,
					series[i], int16(c.Interval), c.Start, c.Revision)
			} else {
				b.Queue(`UPDATE window_states SET emitted = $4, running = $4, final = true WHERE series = $1 AND interval = $2 AND start_unix_nano = $3`,
					series[i], int16(c.Interval), c.Start, c.Revision)
			}
		}
		n = len(claimed)
		return tx.SendBatch(ctx, &b).Close()
	})
	return n, err
}
