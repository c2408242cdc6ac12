package aggregateprocessor // import "github.com/custommetrics/bundle/processor/aggregateprocessor"

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.uber.org/zap"

	"github.com/custommetrics/bundle/internal/aggregation"
	"github.com/custommetrics/bundle/internal/figures"
	"github.com/custommetrics/bundle/internal/groupcommit"
	"github.com/custommetrics/bundle/internal/pgdb"
	"github.com/custommetrics/bundle/internal/pgwindows"
)

// Cluster mode (`postgres`): the window states live in PostgreSQL
// (internal/pgwindows), shared by every collector with the same config.
//
//   - A batch's values become one delta per window, merged into the stored
//     states in one transaction (all or nothing); the answer waits for its
//     commit, and a failed commit counts nothing (503 upstream).
//   - returnValue figures are the merged states that the transaction returns:
//     they hold every value that any collector had acknowledged before.
//   - Emission claims due windows from the database (pgwindows.Emit): each
//     revision of a window is emitted by one collector, whichever tick comes
//     first, including windows that collector never saw (their identity is
//     stored with them).
//   - Windows in memory only cache identities; they are evicted once closed.
type shared struct {
	pool   *pgxpool.Pool
	store  *pgwindows.Store
	health *health
	// Concurrent batches share merge transactions (group commit, as with
	// storage): one transaction per round instead of one per batch.
	merges *groupcommit.Committer[*merge]
}

// merge is one batch's deltas and, once its round is written, their merged
// states or why they were refused.
type merge struct {
	deltas []pgwindows.Delta
	merged []pgwindows.Merged
	err    error
}

// emitBatch is how many windows one emission transaction claims.
const emitBatch = 1000

func (p *aggProcessor) startShared(ctx context.Context, host component.Host) error {
	pool, pcfg, err := pgdb.Open(ctx, string(p.cfg.Postgres.DSN), "window")
	if err != nil {
		return err
	}
	store, err := pgwindows.New(ctx, pool)
	if err != nil {
		pool.Close()
		return err
	}
	s := &shared{pool: pool, store: store, health: &health{host: host}}
	s.merges = groupcommit.New(s.write, p.cfg.CommitDelay)
	p.shared = s
	p.logger.Info("Window states are shared through PostgreSQL (cluster mode)",
		zap.String("host", pcfg.ConnConfig.Host), zap.String("database", pcfg.ConnConfig.Database))
	return nil
}

func (s *shared) stop() {
	s.merges.Close()
	s.health.stop()
	s.pool.Close()
}

// write merges the batches of one round in one transaction. When that fails
// because a figure would not be finite, each batch is merged on its own, so
// that only the batches that make a figure non-finite are refused.
func (s *shared) write(ms []*merge) error {
	ctx := context.Background() // the round's requests may be gone; the merge still belongs to them
	var all []pgwindows.Delta
	for _, m := range ms {
		all = append(all, m.deltas...)
	}
	merged, err := s.store.Merge(ctx, all)
	if err == nil {
		for _, m := range ms {
			m.merged, merged = merged[:len(m.deltas)], merged[len(m.deltas):]
		}
		return nil
	}
	if !errors.Is(err, pgwindows.ErrNonFinite) || len(ms) == 1 {
		for _, m := range ms {
			m.err = err
		}
		return err
	}
	for _, m := range ms {
		m.merged, m.err = s.store.Merge(ctx, m.deltas)
	}
	return nil
}

// sharedDelta returns an empty delta of w. w is pinned.
func (p *aggProcessor) sharedDelta(w *window) pgwindows.Delta {
	sh := &p.shards[w.shard]
	sh.mu.Lock()
	k := sh.keyOf(w)
	sh.mu.Unlock()
	none := aggregation.State{}
	return pgwindows.Delta{
		Series: seriesHash(k.d, k.attrs), Identity: encodeRecord(&k, &none, 0),
		Interval: k.iv, Start: k.start, End: k.end, Fn: k.d.fn,
	}
}

// applyShared merges the batch's values into the shared window states, all
// or nothing, and records the merged figures in the request's slot.
func (p *aggProcessor) applyShared(ctx context.Context, sc *scratch) error {
	defer p.unpin(sc)
	base := p.seq.Add(uint64(sc.points)) - uint64(sc.points)
	var deltas []pgwindows.Delta
	idx := make(map[*window]int, len(sc.refs))
	for i := range sc.refs {
		r := &sc.refs[i]
		w := r.w
		j, ok := idx[w]
		if !ok {
			j = len(deltas)
			idx[w] = j
			deltas = append(deltas, p.sharedDelta(w))
		}
		deltas[j].State.Add(w.d.fn, r.v, r.wt, r.ts, base+uint64(r.pt)+1)
	}
	m := &merge{deltas: deltas}
	// The answer must say whether the values counted, so it waits for the
	// round even when the caller stops waiting.
	err := p.shared.merges.Wait(context.WithoutCancel(ctx), p.shared.merges.Add(m))
	if m.err != nil {
		err = m.err
	}
	merged := m.merged
	switch {
	case errors.Is(err, pgwindows.ErrNonFinite):
		return consumererror.NewPermanent(fmt.Errorf("%w: %w", errNonFinite, err))
	case err != nil:
		p.tel.ProcessorAggregateCommitsFailed.Add(ctx, 1)
		p.shared.health.failed(p, err)
		return errStorage // the cause (addresses and all) goes to the log, not to clients
	}
	p.tel.ProcessorAggregateCommits.Add(ctx, 1)
	p.tel.ProcessorAggregateCommittedWindows.Add(ctx, int64(len(deltas)))
	p.shared.health.ok(p)
	if slot := figures.FromContext(ctx); slot != nil {
		for w, j := range idx {
			slot.Put(figures.Figure{Metric: w.d.name, Interval: w.iv, Start: w.start, State: merged[j].State.State(w.d.fn)})
		}
	}
	return nil
}

// emitShared emits what the shared table holds due: closed windows and
// restatements, and when running is due the changed open windows.
func (p *aggProcessor) emitShared(ctx context.Context, nowNs int64, all bool) error {
	p.emitMu.Lock()
	defer p.emitMu.Unlock()
	running := p.runningDue(nowNs, all)
	closedBefore := nowNs - int64(p.cfg.AllowedLateness)
	// Each round takes at most one window per series (a series' windows go
	// out in order), so a back-fill takes one round per window of its
	// longest series; the rounds of a tick stop after check_interval, the
	// next tick goes on.
	for start := time.Now(); time.Since(start) < p.cfg.CheckInterval; {
		n, err := p.shared.store.Emit(ctx, closedBefore, running, emitBatch, func(cs []pgwindows.Claimed) error {
			return p.emitClaimed(ctx, cs)
		})
		if err != nil {
			return err
		}
		if n == 0 {
			break
		}
		running = false // the running figures went out in the first round
	}
	p.evictShared(nowNs)
	return nil
}

// emitClaimed passes claimed windows on.
func (p *aggProcessor) emitClaimed(ctx context.Context, cs []pgwindows.Claimed) error {
	sc := p.scratch.Get().(*scratch)
	defer func() { sc.reset(); p.scratch.Put(sc) }()
	snaps := make([]snap, 0, len(cs))
	var final, restated, run int64
	for _, c := range cs {
		r, err := decodeRecord(c.Identity)
		if err != nil {
			return fmt.Errorf("aggregate processor: a shared window's identity is corrupt: %w", err)
		}
		d, err := p.descOf(sc, &r)
		if err != nil {
			return fmt.Errorf("aggregate processor: a shared window's identity is corrupt: %w", err)
		}
		if d.fn != c.Fn || r.iv != c.Interval || r.start != c.Start {
			return errors.New("aggregate processor: a shared window's identity does not match its key")
		}
		span, ok := spanOf(c.Start, c.End)
		if !ok {
			return errors.New("aggregate processor: a shared window's end is not whole seconds after its start")
		}
		w := &window{d: d, iv: c.Interval, start: c.Start, span: span} // not in any shard: only build reads it
		kind := emitRunning
		switch c.Kind {
		case pgwindows.Closed:
			kind = emitFinal
			final++
		case pgwindows.Restated:
			kind = emitRestatement
			restated++
		default:
			run++
		}
		snaps = append(snaps, snap{w: w, acc: c.State, attrs: r.attrs, kind: kind})
	}
	if err := p.next.ConsumeMetrics(ctx, p.build(snaps)); err != nil {
		return err
	}
	p.tel.ProcessorAggregateWindowsEmitted.Add(ctx, final)
	p.tel.ProcessorAggregateRestatementsEmitted.Add(ctx, restated)
	p.tel.ProcessorAggregateRunningEmitted.Add(ctx, run)
	return nil
}

// evictShared drops from memory the closed windows no batch holds: their
// state is in the database, and a late value finds it there.
func (p *aggProcessor) evictShared(nowNs int64) {
	closedBefore := nowNs - int64(p.cfg.AllowedLateness)
	pressure := p.inMem.Load()*10 > int64(p.cfg.MaxSeriesWindows)*9
	for i := range p.shards {
		sh := &p.shards[i]
		sh.mu.Lock()
		sh.each(func(w *window) {
			if w.pins == 0 && (pressure || w.end() <= closedBefore) {
				p.drop(sh, w)
			}
		})
		sh.mu.Unlock()
	}
}

// sharedShutdown emits what is due; open windows stay in the database for
// the other collectors (or this one after a restart). An emission that fails
// now loses nothing: the windows stay due, for whichever collector ticks next.
func (p *aggProcessor) sharedShutdown(ctx context.Context) {
	if err := p.emitShared(ctx, p.now().UnixNano(), false); err != nil {
		p.logger.Warn("Emitting due windows at shutdown failed; they stay due in the database for the next emitter", zap.Error(err))
	}
	p.shared.stop()
	p.shared = nil
}
