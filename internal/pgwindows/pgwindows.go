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
//
// Table window_merges, one row per Merge transaction, kept for an hour: id
// bytea, the time (8 bytes, big-endian unix nanoseconds) and 8 random bytes.
// When the connection breaks after a merge was sent, the row says whether it
// committed (see Merge).
package pgwindows // import "github.com/custommetrics/bundle/internal/pgwindows"

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

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
CREATE INDEX IF NOT EXISTS window_states_running ON window_states (end_unix_nano) WHERE revision > running;
CREATE TABLE IF NOT EXISTS window_merges (id bytea PRIMARY KEY)`

var averageFn = fmt.Sprint(int(aggregation.Average))

// Errors of Merge; nothing of the call was applied.
var (
	// ErrNonFinite: a merged figure would not be finite (a sum beyond
	// ±1.8e308, or an Average whose weights sum to 0).
	ErrNonFinite = errors.New("pgwindows: the merged figure of a window would not be finite")
	// ErrFunc: a window is stored with another aggregation function.
	ErrFunc = errors.New("pgwindows: the window is stored with another aggregation function")
	// ErrOutcomeUnknown: the connection broke after the merge was sent, and
	// whether it committed could not be found out (the database stayed
	// unreachable); its values may have counted.
	ErrOutcomeUnknown = errors.New("pgwindows: the connection broke after a merge was sent, and whether it committed is unknown")
	// ErrNoFigures: the merge committed (its connection broke before the
	// answer, and the lookup found it), but its figures could not be read
	// back: its values counted, their figures are unknown.
	ErrNoFigures = errors.New("pgwindows: the merge committed, but its figures could not be read back")
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
//
// When the connection breaks after the transaction was sent, Merge finds
// out whether it committed (its window_merges row exists) before it
// answers, trying for resolveFor: committed, it returns the windows' states
// read again (they hold its deltas, and maybe later merges of other
// callers); not committed, the error. So an error means that nothing was
// merged, except ErrOutcomeUnknown (maybe merged) and ErrNoFigures (merged).
func (s *Store) Merge(ctx context.Context, deltas []Delta) ([]Merged, error) {
	id := mergeID(time.Now())
	out, err := s.merge(ctx, id, deltas)
	if err == nil || !outcomeUnknown(err) {
		return out, err
	}
	// Every attempt below is bounded: a lookup can wait for the merge's
	// transaction, which a half-open connection may keep open for long.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), resolveFor)
	defer cancel()
	committed, rerr := retry(rctx, func() (bool, error) { return s.committed(rctx, id) })
	switch {
	case rerr != nil:
		return nil, fmt.Errorf("%w: %w (then: %w)", ErrOutcomeUnknown, err, rerr)
	case !committed:
		return nil, err
	}
	out, rerr = retry(rctx, func() ([]Merged, error) { return s.reread(rctx, deltas) })
	if rerr != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoFigures, rerr)
	}
	return out, nil
}

// mergeID is a window_merges id: the time first, so that old ids are a range.
func mergeID(t time.Time) []byte {
	id := binary.BigEndian.AppendUint64(make([]byte, 0, 16), uint64(t.UnixNano()))
	return binary.BigEndian.AppendUint64(id, rand.Uint64())
}

// outcomeUnknown reports whether err leaves open whether the transaction
// committed: not an error the server answered (its transaction aborted),
// nor one from before anything was sent (no connection, or nothing written).
func outcomeUnknown(err error) bool {
	var pgErr *pgconn.PgError
	var connErr *pgconn.ConnectError
	return !errors.As(err, &pgErr) && !errors.As(err, &connErr) && !pgconn.SafeToRetry(err) &&
		!errors.Is(err, ErrNonFinite) && !errors.Is(err, ErrFunc)
}

// committed finds out whether the merge with id committed. It inserts the
// same id: if the merge's transaction is still open on the server, the
// insert waits for it on the key; a conflict then means it committed, and a
// new row that it never will (the row is harmless).
func (s *Store) committed(ctx context.Context, id []byte) (bool, error) {
	tag, err := s.pool.Exec(ctx, `INSERT INTO window_merges (id) VALUES ($1) ON CONFLICT (id) DO NOTHING`, id)
	if err != nil {
		return false, err
	}
	return tag.RowsAffected() == 0, nil
}

// resolveFor bounds how long Merge tries to find out a broken merge's outcome.
var resolveFor = 10 * time.Second

// retry calls f until it succeeds or ctx ends, backing off up to a second.
func retry[T any](ctx context.Context, f func() (T, error)) (T, error) {
	wait := 100 * time.Millisecond
	for {
		v, err := f()
		if err == nil {
			return v, nil
		}
		select {
		case <-ctx.Done():
			return v, err
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Second)
	}
}

// reread returns the stored states of the deltas' windows.
func (s *Store) reread(ctx context.Context, deltas []Delta) ([]Merged, error) {
	out := make([]Merged, len(deltas))
	var b pgx.Batch
	var sent []int
	for i := range deltas {
		d := &deltas[i]
		if d.State.Count() == 0 {
			continue
		}
		b.Queue(`SELECT n, a, w, ts, seq, revision FROM window_states WHERE series = $1 AND interval = $2 AND start_unix_nano = $3`,
			d.Series, int16(d.Interval), d.Start)
		sent = append(sent, i)
	}
	res := s.pool.SendBatch(ctx, &b)
	var err error
	for _, i := range sent {
		if out[i], err = scan(res.QueryRow(), deltas[i].Fn); err != nil {
			break
		}
	}
	if e := res.Close(); err == nil {
		err = e
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Prune deletes the windows that ended before endedBefore and whose last
// revision was emitted (a restatement still due stays until it went out).
// It reads the whole table: call it rarely. It returns how many it deleted.
func (s *Store) Prune(ctx context.Context, endedBefore int64) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM window_states WHERE end_unix_nano < $1 AND revision <= emitted`, endedBefore)
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

// Forget deletes the window_merges rows of merges before t.
func (s *Store) Forget(ctx context.Context, t time.Time) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM window_merges WHERE id < $1`, binary.BigEndian.AppendUint64(nil, uint64(t.UnixNano())))
	return err
}

func (s *Store) merge(ctx context.Context, id []byte, deltas []Delta) ([]Merged, error) {
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
	if len(order) == 0 {
		return out, nil
	}
	b.Queue(`INSERT INTO window_merges (id) VALUES ($1)`, id)
	for _, i := range order {
		b.Queue(upsert, row(&deltas[i])...)
	}
	// One round trip: a batch runs as one implicit transaction, which any
	// failing statement (a non-finite figure, another function) aborts whole.
	res := s.pool.SendBatch(ctx, &b)
	_, err := res.Exec()
	for _, i := range order {
		if err != nil {
			break
		}
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
// open windows whose revision was not emitted at all. A series' windows go
// out in order (the anomaly processor scores them in order): a closed window
// waits while an earlier window of its series is due, and one call takes at
// most one closed window per series, so that a failed export leaves at most
// one scored window per series to emit again (the anomaly processor repeats
// its result for the last point of a series only). The series' open windows
// go with its first due window. It works in one
// transaction holding the windows' rows, which other callers skip: each
// revision is handed to one caller, and to another only if fn failed or its
// caller died before committing. It returns how many windows fn took.
func (s *Store) Emit(ctx context.Context, closedBefore int64, running bool, limit int, fn func([]Claimed) error) (int, error) {
	var n int
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// The first due window of each series (not while an earlier one of
		// the same series is due, or being emitted by another caller)...
		rows, err := tx.Query(ctx, `SELECT `+claimColumns+`
FROM window_states t
WHERE `+due("")+`
  AND NOT EXISTS (SELECT 1 FROM window_states o
    WHERE o.series = t.series AND o.interval = t.interval AND o.start_unix_nano < t.start_unix_nano
      AND `+due("o.")+`)
ORDER BY end_unix_nano LIMIT $3 FOR UPDATE OF t SKIP LOCKED`, closedBefore, running, limit)
		if err != nil {
			return err
		}
		heads, err := scanClaimed(rows, closedBefore)
		if err != nil || len(heads) == 0 {
			return err
		}
		// ...then its open windows, so that a running window behind a closed
		// one does not wait for the next running tick.
		claimed := heads
		if running {
			if claimed, err = openAfter(ctx, tx, heads, closedBefore, limit); err != nil {
				return err
			}
		}
		if err := fn(windowsOf(claimed)); err != nil {
			return err
		}
		var b pgx.Batch
		for _, c := range claimed {
			if c.Kind == Running {
				b.Queue(`UPDATE window_states SET running = $4 WHERE series = $1 AND interval = $2 AND start_unix_nano = $3`,
					c.series, int16(c.Interval), c.Start, c.Revision)
			} else {
				b.Queue(`UPDATE window_states SET emitted = $4, running = $4, final = true WHERE series = $1 AND interval = $2 AND start_unix_nano = $3`,
					c.series, int16(c.Interval), c.Start, c.Revision)
			}
		}
		n = len(claimed)
		return tx.SendBatch(ctx, &b).Close()
	})
	return n, err
}

// claimColumns are the columns scanClaimed reads.
const claimColumns = `series, interval, start_unix_nano, end_unix_nano, fn, n, a, w, ts, seq, revision, final, identity`

// due is Emit's condition on a window row (columns prefixed with a, e.g.
// "t."; $1 closedBefore, $2 running): closed and not emitted at this
// revision, or, with running, open and changed since its last running
// figure. dueOpen is the second half alone.
func due(a string) string {
	return "((" + a + "end_unix_nano <= $1 AND " + a + "revision > " + a + "emitted) OR ($2 AND " + dueOpen(a) + "))"
}

// dueOpen: a window emitted closed (final) is never a running figure again,
// even to an emitter whose clock is behind.
func dueOpen(a string) string {
	return a + "end_unix_nano > $1 AND " + a + "revision > " + a + "running AND NOT " + a + "final"
}

// claimedRow is a Claimed window with its series key.
type claimedRow struct {
	Claimed
	series []byte
}

func windowsOf(rs []claimedRow) []Claimed {
	out := make([]Claimed, len(rs))
	for i := range rs {
		out[i] = rs[i].Claimed
	}
	return out
}

func scanClaimed(rows pgx.Rows, closedBefore int64) ([]claimedRow, error) {
	defer rows.Close()
	var out []claimedRow
	for rows.Next() {
		var c claimedRow
		var iv, f int16
		var cnt, ts, seq int64
		var a, w float64
		var final bool
		if err := rows.Scan(&c.series, &iv, &c.Start, &c.End, &f, &cnt, &a, &w, &ts, &seq, &c.Revision, &final, &c.Identity); err != nil {
			return nil, err
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
		out = append(out, c)
	}
	return out, rows.Err()
}

// openAfter returns heads, each followed by the open windows of its series
// that are due as running figures, in start order, up to limit windows in
// all. Of each series it takes the windows it can lock at once, up to the
// first it cannot (held by a merge, say), which waits for a later round with
// those after it: Emit never waits for a lock, so it cannot deadlock with
// merges, which lock in key order.
func openAfter(ctx context.Context, tx pgx.Tx, heads []claimedRow, closedBefore int64, limit int) ([]claimedRow, error) {
	room := limit - len(heads)
	if room <= 0 {
		return heads, nil
	}
	series, ivs, starts := make([][]byte, len(heads)), make([]int16, len(heads)), make([]int64, len(heads))
	for i, h := range heads {
		series[i], ivs[i], starts[i] = h.series, int16(h.Interval), h.Start
	}
	// The candidates, without locks, in order; the first room of them.
	rows, err := tx.Query(ctx, `SELECT t.series, t.interval, t.start_unix_nano
FROM window_states t
JOIN unnest($2::bytea[], $3::int2[], $4::int8[]) AS h(series, interval, start_unix_nano)
  ON t.series = h.series AND t.interval = h.interval AND t.start_unix_nano > h.start_unix_nano
WHERE `+dueOpen("t.")+`
ORDER BY t.series, t.interval, t.start_unix_nano LIMIT $5`, closedBefore, series, ivs, starts, room)
	if err != nil {
		return nil, err
	}
	var cs, cis, cstarts = [][]byte{}, []int16{}, []int64{}
	for rows.Next() {
		var b []byte
		var iv int16
		var start int64
		if err := rows.Scan(&b, &iv, &start); err != nil {
			rows.Close()
			return nil, err
		}
		cs, cis, cstarts = append(cs, b), append(cis, iv), append(cstarts, start)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(cs) == 0 {
		return heads, nil
	}
	// Those of them that can be locked now, and are still due.
	rows, err = tx.Query(ctx, `SELECT `+prefixed("t.", claimColumns)+`
FROM window_states t
JOIN unnest($2::bytea[], $3::int2[], $4::int8[]) AS c(series, interval, start_unix_nano)
  ON t.series = c.series AND t.interval = c.interval AND t.start_unix_nano = c.start_unix_nano
WHERE `+dueOpen("t.")+`
FOR UPDATE OF t SKIP LOCKED`, closedBefore, cs, cis, cstarts)
	if err != nil {
		return nil, err
	}
	got, err := scanClaimed(rows, closedBefore)
	if err != nil {
		return nil, err
	}
	type key struct {
		series string
		iv     int16
		start  int64
	}
	locked := make(map[key]*claimedRow, len(got))
	for i := range got {
		g := &got[i]
		locked[key{string(g.series), int16(g.Interval), g.Start}] = g
	}
	more := map[key][]claimedRow{} // by series and interval (start 0)
	open := false                  // the current series' windows are contiguous so far
	for i := range cs {
		group := key{string(cs[i]), cis[i], 0}
		if i == 0 || string(cs[i-1]) != group.series || cis[i-1] != group.iv {
			open = true
		}
		w := locked[key{group.series, group.iv, cstarts[i]}]
		if !open || w == nil {
			open = false
			continue
		}
		more[group] = append(more[group], *w)
	}
	out := make([]claimedRow, 0, len(heads)+len(got))
	for _, h := range heads {
		out = append(out, h)
		out = append(out, more[key{string(h.series), int16(h.Interval), 0}]...)
	}
	return out, nil
}

// prefixed qualifies each of the comma-separated columns with p.
func prefixed(p, columns string) string {
	cols := strings.Split(columns, ", ")
	for i := range cols {
		cols[i] = p + cols[i]
	}
	return strings.Join(cols, ", ")
}
