package aggregateprocessor // import "github.com/custommetrics/bundle/processor/aggregateprocessor"

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componentstatus"
	"go.opentelemetry.io/collector/extension/xextension/storage"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.uber.org/zap"

	"github.com/custommetrics/bundle/internal/aggregation"
	"github.com/custommetrics/bundle/internal/calendar"
	"github.com/custommetrics/bundle/internal/groupcommit"
	"github.com/custommetrics/bundle/internal/storageclient"
)

// Storage layout: one record per series-window under
//
//	w/<hex of the first 16 bytes of sha256(desc key | attributes)>/<interval>/<start unix ns>
//
// holding recordVersion, interval, start, end, flags (bit 0: the stored
// figure was emitted as closed, nothing left to emit; bit 1: a closing figure
// was emitted at some point, so the next emission is a restatement), the aggregation state (internal/aggregation encoding), the desc key,
// the desc's identity (resource, scope, metric name/unit/description/
// metadata as an OTLP protobuf) and the canonical attributes. The key is a
// pure function of the identity, so a late value finds its closed window's
// record with one Get. Records are written whole (last write wins) by the
// group committer.
const (
	recordPrefix = "w/"
	// recordVersion 2: the desc key leaves out the scope version (see
	// appendResourceScope). Version 1 records, whose desc key and storage key
	// included it, are rewritten under their version 2 key at load (migrate).
	recordVersion   = 2
	recordVersionV1 = 1
)

func openStorage(ctx context.Context, host component.Host, id, self component.ID) (storage.Client, error) {
	client, err := storageclient.Open(ctx, host, id, component.KindProcessor, self)
	if err != nil {
		return nil, err
	}
	if _, ok := client.(storage.Walker); !ok {
		_ = client.Close(ctx)
		return nil, fmt.Errorf("storage extension %q cannot list its entries (storage.Walker), which the aggregate processor needs to find open windows after a restart; file_storage can", id)
	}
	return client, nil
}

// storageKey is the key of the record of the window of d, iv and start with
// canonical attributes attrs.
func storageKey(d *desc, iv calendar.Interval, start int64, attrs []byte) string {
	return recordPrefix + hex.EncodeToString(seriesHash(d, attrs)) + "/" + iv.String() + "/" + strconv.FormatInt(start, 10)
}

// seriesHash identifies a series (desc and attributes) in storage: the first
// 16 bytes of their SHA-256, in storage keys and in the shared table.
func seriesHash(d *desc, attrs []byte) []byte {
	h := sha256.New()
	h.Write([]byte(d.key))
	h.Write(attrs)
	return h.Sum(nil)[:16]
}

func encodeDescBlob(d *desc) []byte {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	d.res.CopyTo(rm.Resource())
	sm := rm.ScopeMetrics().AppendEmpty()
	d.scp.CopyTo(sm.Scope())
	m := sm.Metrics().AppendEmpty()
	m.SetName(d.name)
	m.SetUnit(d.unit)
	m.SetDescription(d.dsc)
	d.meta.CopyTo(m.Metadata())
	m.SetEmptyGauge()
	b, err := (&pmetric.ProtoMarshaler{}).MarshalMetrics(md)
	if err != nil {
		return nil
	}
	return b
}

const (
	flagDone  = 1 // the stored figure went out as a closed window's figure
	flagFinal = 2 // a closing figure went out at some point
)

// recordKey is what a record says of its window besides state and flags.
type recordKey struct {
	d          *desc
	iv         calendar.Interval
	start, end int64
	attrs      []byte
}

// keyOf returns w's record key. Caller holds w's shard lock; the result
// stays valid after it is released.
func (sh *shard) keyOf(w *window) recordKey {
	return recordKey{d: w.d, iv: w.iv, start: w.start, end: w.end(), attrs: sh.attrs(w)}
}

func (k *recordKey) storageKey() string { return storageKey(k.d, k.iv, k.start, k.attrs) }

func encodeRecord(k *recordKey, st *aggregation.State, flags byte) []byte {
	b := make([]byte, 0, 20+aggregation.EncodedSize+len(k.d.key)+len(k.d.blob)+len(k.attrs))
	b = append(b, recordVersion, byte(k.iv))
	b = binary.LittleEndian.AppendUint64(b, uint64(k.start))
	b = binary.LittleEndian.AppendUint64(b, uint64(k.end))
	b = append(b, flags)
	b = st.AppendBinary(b)
	b = appendString(b, k.d.key)
	b = appendString(b, string(k.d.blob))
	return append(b, k.attrs...)
}

type record struct {
	version    byte
	iv         calendar.Interval
	start, end int64
	done       bool
	final      bool
	state      aggregation.State
	dkey       string
	blob       []byte
	attrs      []byte
}

var errBadRecord = errors.New("aggregate: corrupt window record")

func decodeRecord(b []byte) (record, error) {
	var r record
	const head = 2 + 8 + 8 + 1
	if len(b) < head+aggregation.EncodedSize || (b[0] != recordVersion && b[0] != recordVersionV1) {
		return r, errBadRecord
	}
	r.version = b[0]
	r.iv = calendar.Interval(b[1])
	if !r.iv.Valid() {
		return r, errBadRecord
	}
	r.start = int64(binary.LittleEndian.Uint64(b[2:]))
	r.end = int64(binary.LittleEndian.Uint64(b[10:]))
	if _, ok := spanOf(r.start, r.end); !ok {
		return r, errBadRecord // calendar windows are whole seconds, at most a year
	}
	r.done = b[18]&flagDone != 0
	r.final = b[18]&flagFinal != 0
	var err error
	if r.state, err = aggregation.DecodeState(b[head : head+aggregation.EncodedSize]); err != nil {
		return r, err
	}
	rest := b[head+aggregation.EncodedSize:]
	if r.dkey, rest, err = decodeString(rest); err != nil {
		return r, err
	}
	var blob string
	if blob, rest, err = decodeString(rest); err != nil {
		return r, err
	}
	r.blob = []byte(blob)
	r.attrs = bytes.Clone(rest)
	return r, nil
}

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
			c.Merge(w.d.fn, e.prev.delta)
		}
		c.Merge(w.d.fn, e.delta)
	}
	return c
}

type durable struct {
	p       *aggProcessor
	client  storage.Client
	commits *groupcommit.Committer[*pending]
	health  *health
}

func newDurable(p *aggProcessor, client storage.Client, host component.Host) *durable {
	d := &durable{p: p, client: client, health: &health{host: host}}
	d.commits = groupcommit.New(d.write, p.cfg.CommitDelay)
	return d
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

// kick asks for a commit without waiting for it.
func (d *durable) kick() { d.commits.Kick() }

// errStorage marks a failed commit: retryable, nothing of it was counted.
var errStorage = errors.New("aggregate processor: writing window states to storage failed; nothing of this batch was counted, retry later")

// write commits the pendings of one round in one storage Batch
// (groupcommit.Write): each window's acc ⊕ delta. It folds the deltas into
// the windows only once storage has them; on failure it drops them.
func (d *durable) write(list []*pending) error {
	ops := make([]*storage.Operation, 0, len(list))
	states := make([]aggregation.Compact, len(list))
	flags := make([]byte, len(list))
	for i, e := range list {
		w := e.w
		sh := &d.p.shards[w.shard]
		sh.mu.Lock()
		e.taken = true
		st := w.acc
		st.Merge(w.d.fn, e.delta)
		if !st.Finite(w.d.fn) {
			// Only reachable when an earlier commit of the window failed
			// after apply checked this delta against it (apply refuses what
			// makes a figure non-finite): the window keeps its last finite figure.
			e.err = errNonFinite
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
			full := st.State(k.d.fn)
			ops = append(ops, storage.SetOperation(k.storageKey(), encodeRecord(&k, &full, flags[i])))
		}
	}
	err := d.client.Batch(context.Background(), ops...)
	for i, e := range list {
		w := e.w
		sh := &d.p.shards[w.shard]
		sh.mu.Lock()
		if e.err == nil && err != nil {
			e.err = errStorage // the cause (paths and all) goes to the log, not to clients
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
	ctx := context.Background()
	if err != nil {
		err = fmt.Errorf("writing %d window states to storage: %w", len(ops), err)
		d.p.tel.ProcessorAggregateCommitsFailed.Add(ctx, 1)
		d.health.failed(d.p, err)
		return err
	}
	d.p.tel.ProcessorAggregateCommits.Add(ctx, 1)
	d.p.tel.ProcessorAggregateCommittedWindows.Add(ctx, int64(len(ops)))
	d.health.ok(d.p)
	return nil
}

// health reports storage failures through componentstatus (so that
// health_check shows them) when commits start failing, and recovery once
// commits have succeeded for healthQuiet with no failure: a store that is
// nearly full fails some commits and passes others, and must not flap.
type health struct {
	host component.Host

	mu       sync.Mutex
	failing  bool
	lastFail time.Time
	lastOK   time.Time
	timer    *time.Timer
	stopped  bool
}

const healthQuiet = time.Second

func (h *health) failed(p *aggProcessor, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lastFail = time.Now()
	if !h.failing && !h.stopped {
		h.failing = true
		p.logger.Error("Writing window states to storage failed; refusing values (retryable) until commits succeed", zap.Error(err))
		componentstatus.ReportStatus(h.host, componentstatus.NewRecoverableErrorEvent(err))
	}
}

func (h *health) ok(p *aggProcessor) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lastOK = time.Now()
	if h.failing && !h.stopped && h.timer == nil {
		h.check(p)
	}
}

// check reports recovery when the last failure is healthQuiet old and a
// commit succeeded since, and otherwise looks again when it may be; a
// failure with no success after it waits for the next ok. Caller holds mu.
func (h *health) check(p *aggProcessor) {
	if !h.lastOK.After(h.lastFail) {
		return
	}
	quiet := time.Since(h.lastFail)
	if quiet >= healthQuiet {
		h.recovered(p)
		return
	}
	h.timer = time.AfterFunc(healthQuiet-quiet, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.timer = nil
		if h.failing && !h.stopped {
			h.check(p)
		}
	})
}

// recovered reports StatusOK. Caller holds mu.
func (h *health) recovered(p *aggProcessor) {
	h.failing = false
	p.logger.Info("Writing window states to storage works again")
	componentstatus.ReportStatus(h.host, componentstatus.NewEvent(componentstatus.StatusOK))
}

func (h *health) stop() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stopped = true
	if h.timer != nil {
		h.timer.Stop()
	}
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

// halt writes what is queued and stops the committer, leaving the client
// open (Shutdown closes it; tests use halt alone to play a kill -9).
func (d *durable) halt() { d.commits.Close() }

func (d *durable) stop(ctx context.Context) error {
	d.halt()
	d.health.stop()
	return d.client.Close(ctx)
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

// identity returns the desc of a stored record (see descOf).
func (d *durable) identity(sc *scratch, r *record) (*desc, error) { return d.p.descOf(sc, r) }

// descOf returns the desc of a stored record, from the identity it holds,
// and checks it against the record's desc key (as its version wrote it).
func (p *aggProcessor) descOf(sc *scratch, r *record) (*desc, error) {
	md, err := (&pmetric.ProtoUnmarshaler{}).UnmarshalMetrics(r.blob)
	if err != nil || md.ResourceMetrics().Len() != 1 || md.ResourceMetrics().At(0).ScopeMetrics().Len() != 1 ||
		md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().Len() != 1 || len(r.dkey) == 0 {
		return nil, errors.New("corrupt identity")
	}
	rm := md.ResourceMetrics().At(0)
	sm := rm.ScopeMetrics().At(0)
	m := sm.Metrics().At(0)
	fn := aggregation.Func(r.dkey[len(r.dkey)-1])
	if !fn.Valid() {
		return nil, errors.New("corrupt aggregation function")
	}
	want := r.dkey
	if r.version == recordVersionV1 {
		// Version 1 keys had the scope version after the scope name.
		b, _ := appendMap(nil, rm.Resource().Attributes(), nil, sc.kvs)
		b = appendString(b, sm.Scope().Name())
		b = appendString(b, sm.Scope().Version())
		b, _ = appendMap(b, sm.Scope().Attributes(), nil, sc.kvs)
		b = appendString(b, m.Name())
		b = appendString(b, m.Unit())
		if string(append(b, byte(fn))) != r.dkey {
			return nil, errors.New("identity does not match its key")
		}
		want = ""
	}
	sc.rs = appendResourceScope(sc.rs[:0], sc, rm, sm)
	dsc := p.descFor(sc, sc.rs, rm, sm, m, fn)
	if want != "" && dsc.key != want {
		return nil, errors.New("identity does not match its key")
	}
	return dsc, nil
}

// appendFullKey appends a window's in-memory key (see keyHeader).
func appendFullKey(k []byte, dsc *desc, iv calendar.Interval, start int64, attrs []byte) []byte {
	k = binary.LittleEndian.AppendUint64(k, dsc.id)
	k = append(k, byte(iv))
	k = binary.LittleEndian.AppendUint64(k, uint64(start))
	return append(k, attrs...)
}

// restore puts the window of a stored record in memory unless it is there;
// it reports whether it did.
func (d *durable) restore(dsc *desc, r *record) bool {
	p := d.p
	span, ok := spanOf(r.start, r.end)
	if !ok {
		return false // decodeRecord refuses such records
	}
	k := appendFullKey(nil, dsc, r.iv, r.start, r.attrs)
	h := mapHash(p, k)
	si := uint8(h & (numShards - 1))
	sh := &p.shards[si]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.get(h, k) != nil {
		return false
	}
	w := sh.put(h, k, dsc, r.iv, r.start, span, si)
	w.acc, w.version, w.final = aggregation.CompactOf(dsc.fn, r.state), 1, r.final
	p.inMem.Add(1)
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
func (d *durable) migrate(ctx context.Context, sc *scratch, old []oldRecord) (migrated, loaded int, maxSeq uint64, err error) {
	for _, o := range old {
		r := o.r
		dsc, err := d.identity(sc, &r)
		if err != nil {
			d.p.logger.Error("Ignoring a stored window of record version 1", zap.String("key", o.key), zap.Error(err))
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
		h := mapHash(d.p, k)
		sh := &d.p.shards[h&(numShards-1)]
		sh.mu.Lock()
		if mem := sh.get(h, k); mem != nil {
			mem.acc = aggregation.CompactOf(dsc.fn, r.state)
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
	p := d.p
	nowNs := p.now().UnixNano()
	ret := int64(p.cfg.RestatementRetention)
	sc := &scratch{}
	var loaded, deleted, corrupt int
	var maxSeq uint64
	var old []oldRecord
	err := d.client.(storage.Walker).Walk(ctx, func(key string, value []byte) ([]*storage.Operation, error) {
		if !strings.HasPrefix(key, recordPrefix) {
			return nil, nil
		}
		r, err := decodeRecord(value)
		if err != nil {
			corrupt++
			p.logger.Error("Ignoring a corrupt stored window", zap.String("key", key), zap.Error(err))
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
		dsc, err := d.identity(sc, &r)
		if err != nil {
			corrupt++
			p.logger.Error("Ignoring a stored window", zap.String("key", key), zap.Error(err))
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
	migrated, n, seq, err := d.migrate(ctx, sc, old)
	if err != nil {
		return fmt.Errorf("aggregate processor: rewriting window states of the previous record version: %w", err)
	}
	loaded += n
	corrupt += len(old) - migrated
	maxSeq = max(maxSeq, seq)
	if len(old) > 0 {
		p.logger.Info("Rewrote stored windows of record version 1 under their version 2 keys", zap.Int("windows", migrated))
	}
	for {
		cur := p.seq.Load()
		if cur > maxSeq || p.seq.CompareAndSwap(cur, maxSeq+1) {
			break
		}
	}
	p.logger.Info("Window states restored from storage",
		zap.Int("windows", loaded), zap.Int("deleted_past_retention", deleted), zap.Int("corrupt", corrupt),
		zap.Duration("restatement_retention", time.Duration(ret)))
	if int64(loaded) > int64(p.cfg.MaxSeriesWindows) {
		p.logger.Warn("More windows were restored than max_series_windows allows; new series-windows are refused until enough close",
			zap.Int("windows", loaded), zap.Int("max_series_windows", p.cfg.MaxSeriesWindows))
	}
	return nil
}
