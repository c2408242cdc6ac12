package windows // import "github.com/custommetrics/bundle/internal/windows"

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	"go.opentelemetry.io/collector/extension/xextension/storage"
	"go.uber.org/zap"

	"github.com/custommetrics/bundle/internal/aggregation"
	"github.com/custommetrics/bundle/internal/groupcommit"
)

// A pending holds a window's changes that are not yet committed. Values are
// added to the window's pend, not to its acc; the group commit that takes
// the pending writes acc ⊕ delta and, once storage has it, folds the delta
// into acc. A failed commit drops the delta: nothing of it was counted, in
// memory or in storage, and its callers are refused.
//
// A window has at most two: the one a commit is writing (taken), and the
// one collecting changes meanwhile (its prev is the taken one). Guarded by
// the window's shard mutex, except round and err (set once).
type pending struct {
	w     *window
	delta aggregation.Compact
	prev  *pending           // the taken pending this one follows, until its commit ends
	round *groupcommit.Round // the commit that takes it
	taken bool
	err   error // why its commit did not count it (set before round is done)
}

// live returns w's state with its uncommitted changes: what the window's
// figure becomes if they commit. Caller holds w's shard lock.
func (w *window) live() aggregation.Compact {
	c := w.acc
	if e := w.pend; e != nil {
		if e.prev != nil {
			c.Merge(w.d.Fn, e.prev.delta)
		}
		c.Merge(w.d.Fn, e.delta)
	}
	return c
}

type durable struct {
	s       *Set
	client  Store
	commits *groupcommit.Committer[*pending]
}

// Store is where a durable Set keeps its records: a Collector storage
// client that can list its entries (file_storage can).
type Store interface {
	Get(ctx context.Context, key string) ([]byte, error)
	Batch(ctx context.Context, ops ...*storage.Operation) error
	storage.Walker
}

// Open makes s durable in store: it brings back every window whose closing
// figure was not yet emitted (see load); from then on Apply returns once
// values are committed to store. Call it before the first batch.
func (s *Set) Open(ctx context.Context, store Store) error {
	d := &durable{s: s, client: store}
	d.commits = groupcommit.New(d.write, s.cfg.CommitDelay)
	if err := d.load(ctx); err != nil {
		d.commits.Close()
		return err
	}
	s.store = d
	return nil
}

// Halt writes what is queued and stops committing, leaving the store open;
// later batches are refused. Tests use it alone to play a kill -9.
func (s *Set) Halt() {
	if s.store != nil {
		s.store.commits.Close()
	}
}

func (s *Set) committed(n int, err error) {
	if s.cfg.Committed != nil {
		s.cfg.Committed(n, err)
	}
}

// pendingOf returns the pending that collects w's next changes, queueing a
// new one when there is none or the current one is being written. Caller
// holds w's shard lock (lock order: shard, then the committer's).
func (d *durable) pendingOf(w *window) *pending {
	if e := w.pend; e != nil && !e.taken {
		return e
	}
	e := &pending{w: w, prev: w.pend}
	w.pend = e
	e.round = d.commits.Add(e)
	return e
}

// write commits the pendings of one round in one storage Batch
// (groupcommit.Write): each window's acc ⊕ delta. It folds the deltas into
// the windows only once storage has them; on failure it drops them.
func (d *durable) write(list []*pending) error {
	ops := make([]*storage.Operation, 0, len(list))
	states := make([]aggregation.Compact, len(list))
	flags := make([]byte, len(list))
	for i, e := range list {
		w := e.w
		sh := &d.s.shards[w.shard]
		sh.mu.Lock()
		e.taken = true
		st := w.acc
		st.Merge(w.d.Fn, e.delta)
		if !st.Finite(w.d.Fn) {
			// Only reachable when an earlier commit of the window failed
			// after apply checked this delta against it (apply refuses what
			// makes a figure non-finite): the window keeps its last finite figure.
			e.err = ErrNonFinite
		}
		if w.final {
			flags[i] |= flagFinal
			if w.emitted == w.version && e.delta.Count() == 0 {
				flags[i] |= flagDone
			}
		}
		k := sh.keyOf(w)
		sh.mu.Unlock()
		states[i] = st
		if e.err == nil {
			full := st.State(k.d.Fn)
			ops = append(ops, storage.SetOperation(k.storageKey(), encodeRecord(&k, &full, flags[i])))
		}
	}
	err := d.client.Batch(context.Background(), ops...)
	for i, e := range list {
		w := e.w
		sh := &d.s.shards[w.shard]
		sh.mu.Lock()
		if e.err == nil && err != nil {
			e.err = ErrStorage // the cause (paths and all) goes to the log, not to clients
		}
		if e.err == nil {
			if e.delta.Count() > 0 {
				w.acc = states[i]
				w.version++
			}
			w.donePersisted = flags[i]&flagDone != 0
		}
		if w.pend == e {
			w.pend = nil
		} else if w.pend != nil && w.pend.prev == e {
			w.pend.prev = nil
		}
		sh.mu.Unlock()
	}
	if err != nil {
		err = fmt.Errorf("writing %d window states to storage: %w", len(ops), err)
		d.s.committed(0, err)
		return err
	}
	d.s.committed(len(ops), nil)
	return nil
}

// wait returns once the commits of the pendings the caller changed are
// done: nil when every one of them counted.
func (d *durable) wait(ctx context.Context, changed []*pending) error {
	var last *groupcommit.Round
	for _, e := range changed {
		if e.round != last { // consecutive pendings mostly share a round
			if err := d.commits.Wait(ctx, e.round); err != nil && e.err == nil {
				return err // the round was not written (closed)
			}
			last = e.round
		}
	}
	for _, e := range changed {
		if e.err != nil {
			return e.err
		}
	}
	return nil
}

// loadMissing reads the stored state of the closed windows among miss: a
// late value restates the complete figure, not just itself.
func (d *durable) loadMissing(ctx context.Context, miss []missing) error {
	var ops []*storage.Operation
	var idx []int
	for i := range miss {
		if miss[i].closed {
			ms := &miss[i]
			ops = append(ops, storage.GetOperation(storageKey(ms.d, ms.iv, ms.start, []byte(ms.key[keyHeader:]))))
			idx = append(idx, i)
		}
	}
	if len(ops) == 0 {
		return nil
	}
	if err := d.client.Batch(ctx, ops...); err != nil {
		return fmt.Errorf("aggregate processor: loading closed windows from storage to restate them: %w", err)
	}
	for j, op := range ops {
		if op.Value == nil {
			continue
		}
		ms := &miss[idx[j]]
		r, err := decodeRecord(op.Value)
		if err != nil {
			return fmt.Errorf("aggregate processor: stored window %s: %w", op.Key, err)
		}
		if r.dkey != ms.d.key || !bytes.Equal(r.attrs, []byte(ms.key[keyHeader:])) || r.start != ms.start || r.iv != ms.iv {
			return fmt.Errorf("aggregate processor: stored window %s belongs to another series (hash collision)", op.Key)
		}
		ms.state, ms.loaded, ms.final = r.state, true, r.final
	}
	return nil
}

// restore puts the window of a stored record in memory unless it is there;
// it reports whether it did.
func (d *durable) restore(dsc *Desc, r *record) bool {
	s := d.s
	span, ok := spanOf(r.start, r.end)
	if !ok {
		return false // decodeRecord refuses such records
	}
	k := appendFullKey(nil, dsc, r.iv, r.start, r.attrs)
	h := s.hash(k)
	si := uint8(h & (numShards - 1))
	sh := &s.shards[si]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.get(h, k) != nil {
		return false
	}
	w := sh.put(h, k, dsc, r.iv, r.start, span, si)
	w.acc, w.version, w.final = aggregation.CompactOf(dsc.Fn, r.state), 1, r.final
	s.inMem.Add(1)
	dsc.tenant.n.Add(1)
	return true
}

// seqOf is the highest arrival sequence a state holds: First windows keep it
// in the first point, Last ones in the last.
func seqOf(st *aggregation.State) uint64 {
	var seq uint64
	if _, _, s, ok := st.FirstPoint(); ok {
		seq = s
	}
	if _, _, s, ok := st.LastPoint(); ok {
		seq = max(seq, s)
	}
	return seq
}

type oldRecord struct {
	key string
	r   record
}

// migrate rewrites version 1 records under their version 2 key, merging each
// with a record a newer build may already have written there (the values of
// both were acknowledged; the merged figure was never emitted, so it goes out
// again), deletes the old record, and brings the windows still to emit into
// memory. It returns how many records it rewrote, how many windows it
// loaded and the highest arrival sequence seen.
func (d *durable) migrate(ctx context.Context, b *Batch, old []oldRecord) (migrated, loaded int, maxSeq uint64, err error) {
	for _, o := range old {
		r := o.r
		dsc, err := d.s.descOf(b, &r)
		if err != nil {
			d.s.cfg.Logger.Error("Ignoring a stored window of record version 1", zap.String("key", o.key), zap.Error(err))
			continue
		}
		rk := recordKey{d: dsc, iv: r.iv, start: r.start, end: r.end, attrs: r.attrs}
		key := rk.storageKey()
		raw, err := d.client.Get(ctx, key)
		if err != nil {
			return migrated, loaded, maxSeq, err
		}
		if len(raw) > 0 {
			cur, err := decodeRecord(raw)
			if err != nil {
				return migrated, loaded, maxSeq, fmt.Errorf("%s: %w", key, err)
			}
			r.state.Merge(cur.state)
			r.final = r.final || cur.final
			r.done = false
		}
		var flags byte
		if r.final {
			flags |= flagFinal
		}
		if r.done {
			flags |= flagDone
		}
		if err := d.client.Batch(ctx, storage.SetOperation(key, encodeRecord(&rk, &r.state, flags)), storage.DeleteOperation(o.key)); err != nil {
			return migrated, loaded, maxSeq, err
		}
		migrated++
		maxSeq = max(maxSeq, seqOf(&r.state))
		if r.done {
			continue
		}
		// A window a newer build wrote and the walk already loaded takes the merged state.
		k := appendFullKey(nil, dsc, r.iv, r.start, r.attrs)
		h := d.s.hash(k)
		sh := &d.s.shards[h&(numShards-1)]
		sh.mu.Lock()
		if mem := sh.get(h, k); mem != nil {
			mem.acc = aggregation.CompactOf(dsc.Fn, r.state)
			mem.final = r.final
			sh.mu.Unlock()
			continue
		}
		sh.mu.Unlock()
		if d.restore(dsc, &r) {
			loaded++
		}
	}
	return migrated, loaded, maxSeq, nil
}

// load brings every window whose closing figure was not yet emitted back
// into memory (open windows, and windows that closed while the collector was
// down), and deletes records past restatement_retention.
func (d *durable) load(ctx context.Context) error {
	s := d.s
	nowNs := s.cfg.Now().UnixNano()
	ret := int64(s.cfg.Retention)
	b := s.Batch(0)
	defer b.Release()
	var loaded, deleted, corrupt int
	var maxSeq uint64
	var old []oldRecord
	err := d.client.Walk(ctx, func(key string, value []byte) ([]*storage.Operation, error) {
		if !strings.HasPrefix(key, RecordPrefix) {
			return nil, nil
		}
		r, err := decodeRecord(value)
		if err != nil {
			corrupt++
			s.cfg.Logger.Error("Ignoring a corrupt stored window", zap.String("key", key), zap.Error(err))
			return nil, nil
		}
		if ret > 0 && r.end <= nowNs-ret {
			deleted++
			return []*storage.Operation{storage.DeleteOperation(key)}, nil
		}
		if r.version == recordVersionV1 {
			old = append(old, oldRecord{key: key, r: r})
			return nil, nil
		}
		if r.done {
			return nil, nil
		}
		dsc, err := d.s.descOf(b, &r)
		if err != nil {
			corrupt++
			s.cfg.Logger.Error("Ignoring a stored window", zap.String("key", key), zap.Error(err))
			return nil, nil
		}
		if d.restore(dsc, &r) {
			loaded++
		}
		maxSeq = max(maxSeq, seqOf(&r.state))
		return nil, nil
	})
	if err != nil {
		return fmt.Errorf("aggregate processor: reading window states from storage: %w", err)
	}
	migrated, n, seq, err := d.migrate(ctx, b, old)
	if err != nil {
		return fmt.Errorf("aggregate processor: rewriting window states of the previous record version: %w", err)
	}
	loaded += n
	corrupt += len(old) - migrated
	maxSeq = max(maxSeq, seq)
	if len(old) > 0 {
		s.cfg.Logger.Info("Rewrote stored windows of record version 1 under their version 2 keys", zap.Int("windows", migrated))
	}
	for {
		cur := s.seq.Load()
		if cur > maxSeq || s.seq.CompareAndSwap(cur, maxSeq+1) {
			break
		}
	}
	s.cfg.Logger.Info("Window states restored from storage",
		zap.Int("windows", loaded), zap.Int("deleted_past_retention", deleted), zap.Int("corrupt", corrupt),
		zap.Duration("restatement_retention", time.Duration(ret)))
	if int64(loaded) > int64(s.cfg.MaxWindows) {
		s.cfg.Logger.Warn("More windows were restored than max_series_windows allows; new series-windows are refused until enough close",
			zap.Int("windows", loaded), zap.Int("max_series_windows", s.cfg.MaxWindows))
	}
	return nil
}
