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

	"github.com/custommetrics/bundle/internal/figures"
	"github.com/custommetrics/bundle/internal/groupcommit"
	"github.com/custommetrics/bundle/internal/pgdb"
	"github.com/custommetrics/bundle/internal/pgwindows"
	"github.com/custommetrics/bundle/internal/windows"
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
	logger *zap.Logger
	// Concurrent batches share merge transactions (group commit, as with
	// storage): one transaction per round instead of one per batch.
	merges *groupcommit.Committer[*merge]
	// forgotten is when the merge records (pgwindows.Store.Forget) were
	// last pruned; prunedNs when window_states was (restatement_retention).
	forgotten time.Time
	prunedNs  int64
}

// Merge records are kept for mergeMemory, pruned at most every forgetEvery.
const (
	mergeMemory = time.Hour
	forgetEvery = 10 * time.Minute
)

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
	s := &shared{pool: pool, store: store, logger: p.logger}
	p.health = &health{host: host}
	s.merges = groupcommit.New(s.write, p.cfg.CommitDelay)
	p.shared = s
	p.logger.Info("Window states are shared through PostgreSQL (cluster mode)",
		zap.String("host", pcfg.ConnConfig.Host), zap.String("database", pcfg.ConnConfig.Database))
	return nil
}

func (s *shared) stop() {
	s.merges.Close()
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
		s.logOutcome(err, len(all))
		for _, m := range ms {
			m.err = err
		}
		return err
	}
	for _, m := range ms {
		m.merged, m.err = s.store.Merge(ctx, m.deltas)
		s.logOutcome(m.err, len(m.deltas))
	}
	return nil
}

// logOutcome logs, once per round, a merge whose connection broke: the
// cases in which an error does not mean that nothing counted.
func (s *shared) logOutcome(err error, windows int) {
	switch {
	case errors.Is(err, pgwindows.ErrNoFigures):
		// Counted: the requests succeed, without figures (a returnValue
		// request gets the receiver's 500, which says not to resend).
		s.logger.Warn("A merge committed, but after its connection broke its figures could not be read back; its values counted",
			zap.Int("windows", windows), zap.Error(err))
	case errors.Is(err, pgwindows.ErrOutcomeUnknown):
		// The one case where a refusal may have counted: say so where
		// operators look.
		s.logger.Error("A merge's connection to PostgreSQL broke after it was sent, and the database stayed unreachable "+
			"long enough that whether it committed is unknown: its values are refused (503) and may count twice if clients resend them",
			zap.Int("windows", windows), zap.Error(err))
	}
}

// applyShared merges the batch's values into the shared window states, all
// or nothing, and records the merged figures in the request's slot.
func (p *aggProcessor) applyShared(ctx context.Context, b *windows.Batch) error {
	deltas, wins := b.Deltas()
	m := &merge{deltas: deltas}
	// The answer must say whether the values counted, so it waits for the
	// round even when the caller stops waiting.
	err := p.shared.merges.Wait(context.WithoutCancel(ctx), p.shared.merges.Add(m))
	if m.err != nil {
		err = m.err
	}
	noFigures := errors.Is(err, pgwindows.ErrNoFigures) // counted, without figures (logged by write)
	switch {
	case noFigures:
	case errors.Is(err, pgwindows.ErrNonFinite):
		return consumererror.NewPermanent(fmt.Errorf("%w: %w", windows.ErrNonFinite, err))
	case err != nil:
		p.commitFailed(err)
		return windows.ErrStorage // the cause (addresses and all) goes to the log, not to clients
	}
	p.tel.ProcessorAggregateCommits.Add(ctx, 1)
	p.tel.ProcessorAggregateCommittedWindows.Add(ctx, int64(len(deltas)))
	p.health.ok(p)
	if slot := figures.FromContext(ctx); slot != nil && !noFigures {
		for j, f := range wins {
			f.State = m.merged[j].State.State(f.Desc.Fn)
			putFigure(slot, f)
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
	// A round takes at most one closed window per series, with the series'
	// open windows (pgwindows.Store.Emit); the rounds of a tick stop when
	// nothing is due or after check_interval, and the next tick goes on.
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
	// Closed windows leave memory: their state is in the database, and a
	// late value finds it there.
	p.windows.EvictCache(closedBefore)
	p.forgetMerges(ctx)
	p.pruneShared(ctx, nowNs)
	return nil
}

// forgetMerges deletes, at most every forgetEvery, the merge records older
// than mergeMemory (their ids hold the wall clock of their merge).
func (p *aggProcessor) forgetMerges(ctx context.Context) {
	now := time.Now()
	if now.Sub(p.shared.forgotten) < forgetEvery {
		return
	}
	if err := p.shared.store.Forget(ctx, now.Add(-mergeMemory)); err != nil {
		p.logger.Debug("Pruning old merge records failed; will retry", zap.Error(err))
		return
	}
	p.shared.forgotten = now
}

// pruneShared deletes, with restatement_retention, the emitted windows past
// it (values for them are refused anyway). The delete reads the whole table,
// on every collector: it runs at most every restatement_retention/100, and
// keeps a day more than the retention, for collectors whose clocks disagree
// (a window deleted while another collector still takes values for it would
// start again from them alone).
func (p *aggProcessor) pruneShared(ctx context.Context, nowNs int64) {
	ret := p.cfg.RestatementRetention
	if ret <= 0 || (p.shared.prunedNs != 0 && time.Duration(nowNs-p.shared.prunedNs) < max(ret/100, forgetEvery)) {
		return
	}
	n, err := p.shared.store.Prune(ctx, nowNs-int64(ret)-int64(24*time.Hour))
	if err != nil {
		p.logger.Debug("Pruning windows past restatement_retention failed; will retry", zap.Error(err))
		return
	}
	p.shared.prunedNs = nowNs
	if n > 0 {
		p.logger.Debug("Pruned windows past restatement_retention", zap.Int64("windows", n))
	}
}

// emitClaimed passes claimed windows on.
func (p *aggProcessor) emitClaimed(ctx context.Context, cs []pgwindows.Claimed) error {
	snaps := make([]windows.Snap, 0, len(cs))
	for _, c := range cs {
		kind := windows.Running
		switch c.Kind {
		case pgwindows.Closed:
			kind = windows.Final
		case pgwindows.Restated:
			kind = windows.Restatement
		}
		s, err := p.windows.Claimed(c, kind)
		if err != nil {
			return err
		}
		snaps = append(snaps, s)
	}
	if err := p.next.ConsumeMetrics(ctx, p.build(snaps)); err != nil {
		return err
	}
	p.countEmitted(ctx, snaps)
	return nil
}

// sharedShutdown emits what is due; open windows stay in the database for
// the other collectors (or this one after a restart). An emission that fails
// now loses nothing: the windows stay due, for whichever collector ticks next.
func (p *aggProcessor) sharedShutdown(ctx context.Context) {
	if err := p.emitShared(ctx, p.now().UnixNano(), false); err != nil {
		p.logger.Warn("Emitting due windows at shutdown failed; they stay due in the database for the next emitter", zap.Error(err))
	}
	p.shared.stop()
	p.health.stop()
	p.shared = nil
}
