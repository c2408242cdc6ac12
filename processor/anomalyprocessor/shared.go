package anomalyprocessor // import "github.com/custommetrics/bundle/processor/anomalyprocessor"

import (
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.uber.org/zap"

	"github.com/custommetrics/bundle/internal/groupcommit"
	"github.com/custommetrics/bundle/internal/pgdb"
	"github.com/custommetrics/bundle/processor/anomalyprocessor/internal/detector"
)

// Cluster mode (`postgres`): every series' detector state lives in the table
// anomaly_states of a PostgreSQL database shared by the collectors, and a
// batch is scored in one transaction (shared by the concurrent batches of a
// collector) that holds a lock per series it touches: it reads their states,
// scores, and writes them back before it commits. So a series' values are scored once and in order whichever
// collector receives them (values not after the series' last scored one are
// passed on unscored, as on one collector), and no collector's loss loses a
// state. A batch whose transaction fails returns the error: upstream (the
// aggregate processor's emission) retries it, and nothing of it was learned.
//
// Quotas (max_series, max_series_per_tenant) do not apply: the states are
// not held in memory. series_ttl deletes states from the table.
//
//	anomaly_states  series bytea PRIMARY KEY   the series key (16 bytes)
//	                state  bytea NOT NULL      the stored value of a series (series.appendBinary)
//	                seen_unix_nano int8        wall clock of its last value (series_ttl)
type sharedStates struct {
	pool   *pgxpool.Pool
	rounds *groupcommit.Committer[*scoring]
	// expired is when expireShared last deleted quiet states.
	expired time.Time
}

const sharedSchema = `CREATE TABLE IF NOT EXISTS anomaly_states (
  series bytea PRIMARY KEY,
  state bytea NOT NULL,
  seen_unix_nano int8 NOT NULL
)`

func (p *anomalyProcessor) startShared(ctx context.Context) error {
	pool, pcfg, err := pgdb.Open(ctx, string(p.cfg.Postgres.DSN), "detector state")
	if err != nil {
		return err
	}
	if err := pgdb.CreateSchema(ctx, pool, "custommetrics_anomaly_states_schema", sharedSchema); err != nil {
		pool.Close()
		return fmt.Errorf("anomaly processor: creating anomaly_states: %w", err)
	}
	p.shared = &sharedStates{pool: pool}
	p.shared.rounds = groupcommit.New(p.scoreRound, 0)
	p.logger.Info("Detector states are shared through PostgreSQL (cluster mode)",
		zap.String("host", pcfg.ConnConfig.Host), zap.String("database", pcfg.ConnConfig.Database))
	return nil
}

// sortForLocks orders keys as their locks are taken: by lock id (ties, two
// series on one lock, by key), so that concurrent batches take shared locks
// in one order and cannot deadlock.
func sortForLocks(keys []seriesKey) {
	slices.SortFunc(keys, func(x, y seriesKey) int {
		return cmp.Or(cmp.Compare(x.lockID(), y.lockID()), cmp.Compare(x.a, y.a), cmp.Compare(x.b, y.b))
	})
}

// lockID is the advisory lock of series k.
func (k seriesKey) lockID() int64 { return int64(k.a ^ k.b) }

func (k seriesKey) bytes() []byte {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, 16), k.a)
	return binary.BigEndian.AppendUint64(b, k.b)
}

// scoring is one batch of a round: its series (with their tenants), and
// once the round is written, what was scored.
type scoring struct {
	md      pmetric.Metrics
	now     int64
	tenants map[seriesKey]string
	st      batchStats
	err     error // of its transaction
}

// maxRoundSeries bounds the series (advisory locks) of one transaction: the
// server's lock table is shared by every session, about
// max_locks_per_transaction × max_connections entries (6,400 by default).
// A round's batches are split into transactions of at most this many series
// (a larger batch gets a transaction of its own).
var maxRoundSeries = 1000

// lockTimeout bounds how long a transaction waits for a series' lock (held
// by another collector, maybe on a connection that died): it then fails, and
// nothing of it was learned.
var lockTimeout = "10s"

// processShared scores md against the shared states. Concurrent batches
// share transactions (internal/groupcommit): a round locks the series of all
// its batches, reads their states, scores the batches in arrival order and
// writes the states back, in one transaction; each batch hears the round's
// outcome.
func (p *anomalyProcessor) processShared(ctx context.Context, md pmetric.Metrics) error {
	sc := &scoring{md: md, now: p.now().UnixNano(), tenants: map[seriesKey]string{}}
	// The series of the batch, found by a walk that scores nothing.
	p.walk(md, sc.now, func(k seriesKey, tenant string, _ int64, _ float64) (detector.Result, outcome) {
		if _, ok := sc.tenants[k]; !ok {
			sc.tenants[k] = tenant
		}
		return detector.Result{}, unscored
	}, &batchStats{})
	if len(sc.tenants) == 0 {
		return nil
	}
	// Whether the batch was learned must be known: wait for the round even
	// when the caller stops waiting.
	err := p.shared.rounds.Wait(context.WithoutCancel(ctx), p.shared.rounds.Add(sc))
	if sc.err != nil {
		err = sc.err
	}
	if err != nil {
		return fmt.Errorf("anomaly processor: scoring against the shared detector states failed: %w", err)
	}
	p.record(ctx, &sc.st)
	return nil
}

// scoreRound scores the batches of one round, in arrival order, in as few
// transactions of at most maxRoundSeries series as it can.
func (p *anomalyProcessor) scoreRound(scs []*scoring) error {
	for _, g := range splitRound(scs, maxRoundSeries) {
		err := p.scoreInTx(g.scs, g.keys)
		if err != nil {
			p.tb.ProcessorAnomalyStorageErrors.Add(context.Background(), 1)
		}
		for _, sc := range g.scs {
			sc.err = err
		}
	}
	return nil
}

// roundGroup is consecutive batches of a round and their series.
type roundGroup struct {
	scs  []*scoring
	keys map[seriesKey]string
}

// splitRound cuts scs, in order, into groups of at most max series (a batch
// with more is a group of its own).
func splitRound(scs []*scoring, max int) []roundGroup {
	var out []roundGroup
	for len(scs) > 0 {
		n, keys := 0, map[seriesKey]string{}
		for ; n < len(scs); n++ {
			added := 0
			for k := range scs[n].tenants {
				if _, ok := keys[k]; !ok {
					added++
				}
			}
			if n > 0 && len(keys)+added > max {
				break
			}
			for k, t := range scs[n].tenants {
				if _, ok := keys[k]; !ok {
					keys[k] = t
				}
			}
		}
		out = append(out, roundGroup{scs: scs[:n], keys: keys})
		scs = scs[n:]
	}
	return out
}

// scoreInTx scores batches scs, whose series (and their tenants) are
// tenants, in one transaction.
func (p *anomalyProcessor) scoreInTx(scs []*scoring, tenants map[seriesKey]string) error {
	ctx := context.Background() // the round's callers may be gone; the round is still theirs
	keys := make([]seriesKey, 0, len(tenants))
	for k := range tenants {
		keys = append(keys, k)
	}
	sortForLocks(keys)
	raw := make([][]byte, len(keys))
	for i, k := range keys {
		raw[i] = k.bytes()
	}
	return pgx.BeginFunc(ctx, p.shared.pool, func(tx pgx.Tx) error {
		var locks pgx.Batch
		locks.Queue("SET LOCAL lock_timeout = '" + lockTimeout + "'")
		for _, k := range keys {
			// A lock per series, also for series without a row yet.
			locks.Queue("SELECT pg_advisory_xact_lock($1)", k.lockID())
		}
		if err := tx.SendBatch(ctx, &locks).Close(); err != nil {
			return err
		}
		states := make(map[seriesKey]*series, len(keys))
		rows, err := tx.Query(ctx, "SELECT series, state FROM anomaly_states WHERE series = ANY($1)", raw)
		if err != nil {
			return err
		}
		for rows.Next() {
			var key, state []byte
			if err := rows.Scan(&key, &state); err != nil {
				rows.Close()
				return err
			}
			s := &series{}
			if len(key) != 16 || s.unmarshalBinary(state) != nil {
				continue // unreadable: the series learns again
			}
			states[seriesKey{binary.BigEndian.Uint64(key), binary.BigEndian.Uint64(key[8:])}] = s
		}
		if err := rows.Err(); err != nil {
			return err
		}
		for _, sc := range scs {
			sc.st = batchStats{}
			p.walk(sc.md, sc.now, func(k seriesKey, _ string, ts int64, v float64) (detector.Result, outcome) {
				s := states[k]
				if s == nil { // new to the database; the series gauges count only what this process holds
					s = &series{}
					*s = newState()
					states[k] = s
				}
				return p.update(s, ts, v, sc.now)
			}, &sc.st)
		}
		var writes pgx.Batch
		for i, k := range keys {
			s := states[k]
			if s == nil || !s.dirty {
				continue
			}
			writes.Queue(`INSERT INTO anomaly_states (series, state, seen_unix_nano) VALUES ($1, $2, $3)
ON CONFLICT (series) DO UPDATE SET state = excluded.state, seen_unix_nano = excluded.seen_unix_nano`,
				raw[i], s.appendBinary(make([]byte, 0, seriesHeader+1024), tenants[k]), s.seen)
		}
		return tx.SendBatch(ctx, &writes).Close()
	})
}

// expireShared deletes the states of series quiet for series_ttl. The
// delete reads the whole table, on every collector: it runs at most every
// series_ttl/100, so a state goes at most 1% of its TTL late.
func (p *anomalyProcessor) expireShared(ctx context.Context) {
	now := p.now()
	if now.Sub(p.shared.expired) < p.cfg.SeriesTTL/100 {
		return
	}
	p.shared.expired = now
	cutoff := now.UnixNano() - int64(p.cfg.SeriesTTL)
	tag, err := p.shared.pool.Exec(ctx, "DELETE FROM anomaly_states WHERE seen_unix_nano < $1", cutoff)
	if err != nil {
		p.tb.ProcessorAnomalyStorageErrors.Add(ctx, 1)
		p.logger.Warn("deleting expired detector states failed; will retry", zap.Error(err))
		return
	}
	if n := tag.RowsAffected(); n > 0 {
		p.tb.ProcessorAnomalySeriesEvicted.Add(ctx, n)
	}
}
