// Package windows owns the state of calendar windows: the running aggregate
// of every series in every window it is asked to keep. It is the one place
// that holds
//
//   - the sharded index of series-windows in memory (index.go),
//   - series identity: interned descriptors and canonical attribute
//     encodings (identity.go, attrs.go),
//   - the aggregation state of each window (internal/aggregation),
//   - the storage record of a window and its key layout (record.go), and
//   - group-committed persistence through a storage client (persist.go).
//
// A Set is used in batches. A batch resolves its points to windows (Add),
// reserves room for the windows that are not in memory (Reserve), and then
// either applies its values all or nothing (Apply: with storage, they count
// only once committed) or hands them to a shared store as deltas (Deltas).
// Emission reads what is due (Due) and records what went out (Emitted);
// Evict drops what no longer needs memory.
//
// The aggregate processor is the adapter between pdata pipelines and a Set;
// nothing else keeps window state.
package windows // import "github.com/custommetrics/bundle/internal/windows"

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.uber.org/zap"

	"github.com/custommetrics/bundle/internal/aggregation"
	"github.com/custommetrics/bundle/internal/calendar"
)

const numShards = 64

// Config says how a Set keeps its windows.
type Config struct {
	Calendar *calendar.Calendar
	// MaxWindows bounds the series-windows in memory; MaxWindowsPerTenant
	// (0: none) bounds one tenant's share.
	MaxWindows, MaxWindowsPerTenant int
	// AllowedLateness keeps a window open after its end; Retention (0:
	// forever) is how long a closed window may still be restated.
	AllowedLateness, Retention time.Duration
	// CommitDelay is how long a commit round waits for more changes.
	CommitDelay time.Duration
	Now         func() time.Time
	Logger      *zap.Logger
	// Committed is told of every commit round: the windows it wrote, or why
	// it failed (nil: no one listens).
	Committed func(windows int, err error)
}

// Errors that refuse a whole batch.
var (
	ErrLimit       = errors.New("aggregate processor: max_series_windows reached, refusing points for new series-windows; retry later")
	ErrTenantLimit = errors.New("aggregate processor: the tenant's max_series_windows_per_tenant is reached, refusing its points for new series-windows; retry later")
	ErrNonFinite   = errors.New("aggregate processor: the values would make a window's figure non-finite (a sum beyond ±1.8e308, or an average whose weights sum to 0); the window keeps its last finite figure")
	// ErrStorage marks a failed commit: retryable, nothing of it was counted.
	ErrStorage = errors.New("aggregate processor: writing window states to storage failed; nothing of this batch was counted, retry later")
)

// A Set holds series-windows; safe for concurrent use.
type Set struct {
	cfg Config

	seed   maphash.Seed
	shards [numShards]shard
	slab   slab          // the shards' windows
	inMem  atomic.Int64  // windows in memory (reserved before insertion)
	seq    atomic.Uint64 // arrival sequence for first/last ties

	descMu  sync.RWMutex
	descs   map[string]*Desc
	descID  uint64
	tenants map[string]*tenantWindows // guarded by descMu

	store *durable // nil: memory only
	// evictedBefore (memory only): closed windows ending at or before it may
	// have been evicted, so their figure is unknown and values are refused.
	evictedBefore atomic.Int64

	batches sync.Pool
}

// New returns an empty Set kept in memory; Open makes it durable.
func New(cfg Config) *Set {
	s := &Set{cfg: cfg, seed: maphash.MakeSeed(), descs: map[string]*Desc{}, tenants: map[string]*tenantWindows{}}
	s.evictedBefore.Store(math.MinInt64)
	s.seq.Store(uint64(time.Now().UnixNano()))
	for i := range s.shards {
		s.shards[i].slab = &s.slab
	}
	s.batches.New = func() any { return &Batch{s: s} }
	return s
}

// Len returns how many series-windows are in memory.
func (s *Set) Len() int64 { return s.inMem.Load() }

// EvictedBefore returns the newest end of a window evicted under memory
// pressure (math.MinInt64: none); values for windows ending at or before it
// are refused.
func (s *Set) EvictedBefore() int64 { return s.evictedBefore.Load() }

func (s *Set) hash(b []byte) uint64 { return maphash.Bytes(s.seed, b) }

// nextSeqs reserves n arrival sequences and returns the one before them.
func (s *Set) nextSeqs(n int32) uint64 { return s.seq.Add(uint64(n)) - uint64(n) }

type ref struct {
	w    *window
	miss int32 // index in Batch.miss when w is nil at resolution
	pt   int32 // point index (arrival order within the batch)
	v    float64
	wt   float64
	ts   int64
}

type missing struct {
	key    string // full key
	hash   uint64
	d      *Desc
	iv     calendar.Interval
	start  int64
	span   uint32
	shard  uint8
	refs   int32
	closed bool
	state  aggregation.State
	loaded bool
	final  bool
	w      *window
}

// A Batch is one call's points on their way into a Set: it pins the windows
// it resolves until it is released. Not safe for concurrent use.
type Batch struct {
	s       *Set
	rm      pmetric.ResourceMetrics // of Scope
	sm      pmetric.ScopeMetrics
	nowNs   int64
	kvs     []kv
	buf     []byte
	rs      []byte
	dkey    []byte
	refs    []ref
	order   []int32
	miss    []missing
	missIdx map[string]int32
	points  int32
	undo    []undo
	changed []*pending
}

// Batch starts a batch of points arriving at nowNs.
func (s *Set) Batch(nowNs int64) *Batch {
	b := s.batches.Get().(*Batch)
	b.nowNs = nowNs
	return b
}

// Release unpins what the batch still holds and recycles it.
func (b *Batch) Release() {
	b.unpin()
	b.refs = b.refs[:0]
	clear(b.miss)
	b.miss = b.miss[:0]
	clear(b.missIdx)
	b.points = 0
	clear(b.changed)
	b.changed = b.changed[:0]
	clear(b.kvs)
	b.undo = b.undo[:0]
	// The caller's pdata must not outlive its call in the pool.
	b.rm, b.sm = pmetric.ResourceMetrics{}, pmetric.ScopeMetrics{}
	b.s.batches.Put(b)
}

// Point starts the batch's next point and returns its index (its arrival
// order in the batch); Points returns how many there are.
func (b *Batch) Point() int32 { b.points++; return b.points - 1 }

// Points returns how many points the batch started.
func (b *Batch) Points() int { return int(b.points) }

// Values returns how many (point, window) pairs the batch resolved: a point
// counts once per interval and per derived metric it feeds.
func (b *Batch) Values() int { return len(b.refs) }

// Empty reports whether no value of the batch resolved to a window.
func (b *Batch) Empty() bool { return len(b.refs) == 0 }

// Add resolves point pt of output d (value v, weight wt, at ts) to its
// windows, one per interval of ivs; the series is made of the point's
// attributes for which keep returns true. It changes no aggregate.
func (b *Batch) Add(pt int32, d *Desc, attrs pcommon.Map, keep func(string) bool, ivs []calendar.Interval, ts int64, v, wt float64) error {
	k := binary.LittleEndian.AppendUint64(b.buf[:0], d.id)
	k = append(k, make([]byte, keyHeader-8)...)
	k, b.kvs = appendMap(k, attrs, keep, b.kvs)
	b.buf = k
	r := ref{pt: pt, v: v, wt: wt, ts: ts}
	for _, iv := range ivs {
		start, end := b.s.cfg.Calendar.WindowNanos(iv, ts)
		k[8] = byte(iv)
		binary.LittleEndian.PutUint64(k[9:], uint64(start))
		if err := b.resolve(d, k, iv, start, end, r); err != nil {
			return err
		}
	}
	return nil
}

func (b *Batch) resolve(d *Desc, key []byte, iv calendar.Interval, start, end int64, r ref) error {
	s := b.s
	if ret := s.cfg.Retention; ret > 0 && end <= b.nowNs-int64(ret) {
		return consumererror.NewPermanent(fmt.Errorf(
			"aggregate processor: a value at %s falls in the %s window ending %s, which is older than restatement_retention (%s); "+
				"its stored figure may be gone, so restating it could publish a wrong figure",
			time.Unix(0, r.ts).UTC().Format(time.RFC3339), iv, time.Unix(0, end).UTC().Format(time.RFC3339), ret))
	}
	h := s.hash(key)
	si := uint8(h & (numShards - 1))
	sh := &s.shards[si]
	sh.mu.Lock()
	w := sh.get(h, key)
	if w != nil {
		w.pins++
	}
	sh.mu.Unlock()
	if w != nil {
		r.w = w
		b.refs = append(b.refs, r)
		return nil
	}
	closed := end+int64(s.cfg.AllowedLateness) <= b.nowNs
	// evictedBefore only rises in Evict, which a Set caching identities
	// for a shared store never calls (EvictCache does not raise it).
	if s.evicted(closed, end) {
		return errEvicted(iv, end)
	}
	if b.missIdx == nil {
		b.missIdx = map[string]int32{}
	}
	mi, ok := b.missIdx[string(key)]
	if !ok {
		span, ok := spanOf(start, end)
		if !ok { // calendar windows are whole seconds, at most a year
			return consumererror.NewPermanent(fmt.Errorf("aggregate processor: the %s window [%d, %d) is not a whole number of seconds", iv, start, end))
		}
		mi = int32(len(b.miss))
		k := string(key)
		b.missIdx[k] = mi
		b.miss = append(b.miss, missing{key: k, hash: h, d: d, iv: iv, start: start, span: span, shard: si, closed: closed})
	}
	b.miss[mi].refs++
	r.miss = mi
	b.refs = append(b.refs, r)
	return nil
}

// evicted reports whether a window ending at end, closed or not, may have
// been evicted from memory with its figure (memory only: see Evict).
func (s *Set) evicted(closed bool, end int64) bool {
	return s.store == nil && closed && end <= s.evictedBefore.Load()
}

func errEvicted(iv calendar.Interval, end int64) error {
	return consumererror.NewPermanent(fmt.Errorf(
		"aggregate processor: a value falls in the closed %s window ending %s, whose figure was evicted from memory "+
			"(no storage extension is configured); restating it from this value alone would publish a wrong figure",
		iv, time.Unix(0, end).UTC().Format(time.RFC3339)))
}

// Reserve puts the batch's windows that are not in memory there, pinned:
// it refuses the batch when there is no room for them (in all, or for one
// of its tenants) and, with storage, loads the closed ones so that a late
// value restates the complete figure. On error the batch keeps nothing.
func (b *Batch) Reserve(ctx context.Context) error {
	if len(b.miss) == 0 {
		return nil
	}
	s := b.s
	n := int64(len(b.miss))
	if s.inMem.Add(n) > int64(s.cfg.MaxWindows) {
		s.inMem.Add(-n)
		return fmt.Errorf("%w (max_series_windows=%d, %d new series-windows in this batch)", ErrLimit, s.cfg.MaxWindows, n)
	}
	for i := range b.miss {
		b.miss[i].d.tenant.n.Add(1)
	}
	release := func() {
		s.inMem.Add(-n)
		for i := range b.miss {
			b.miss[i].d.tenant.n.Add(-1)
		}
	}
	if limit := int64(s.cfg.MaxWindowsPerTenant); limit > 0 {
		for i := range b.miss {
			if tw := b.miss[i].d.tenant; tw.n.Load() > limit {
				release()
				return fmt.Errorf("%w (tenant %q, max_series_windows_per_tenant=%d)", ErrTenantLimit, tw.name, limit)
			}
		}
	}
	if s.store != nil {
		if err := s.store.loadMissing(ctx, b.miss); err != nil {
			release()
			return err
		}
	}
	for i := range b.miss {
		ms := &b.miss[i]
		sh := &s.shards[ms.shard]
		sh.mu.Lock()
		w := sh.get(ms.hash, []byte(ms.key))
		if w != nil {
			s.forget(ms.d)
		} else if end := ms.start + int64(ms.span)*1e9; s.evicted(ms.closed, end) {
			// Checked again here, under the lock Evict drops windows under:
			// since resolve, another batch may have created this window,
			// and it may have been emitted and evicted.
			sh.mu.Unlock()
			for j := i; j < len(b.miss); j++ {
				s.forget(b.miss[j].d) // their reservations
			}
			b.assignMissing(i) // the windows of miss[:i] are pinned: Release unpins them
			return errEvicted(ms.iv, end)
		} else {
			w = sh.put(ms.hash, []byte(ms.key), ms.d, ms.iv, ms.start, ms.span, ms.shard)
			if ms.loaded {
				w.acc = aggregation.CompactOf(ms.d.Fn, ms.state)
				w.version = 1
				w.final = ms.final
			}
		}
		w.pins += ms.refs
		sh.mu.Unlock()
		ms.w = w
	}
	b.assignMissing(len(b.miss))
	return nil
}

// assignMissing gives the refs of miss[:n] their (inserted) windows.
func (b *Batch) assignMissing(n int) {
	for i := range b.refs {
		if r := &b.refs[i]; r.w == nil && int(r.miss) < n {
			r.w = b.miss[r.miss].w
		}
	}
}

// unpin releases the batch's pins (once).
func (b *Batch) unpin() {
	for i := range b.refs {
		w := b.refs[i].w
		if w == nil {
			continue
		}
		b.refs[i].w = nil
		sh := &b.s.shards[w.shard]
		sh.mu.Lock()
		w.pins--
		sh.mu.Unlock()
	}
}

// Apply adds the batch's values to their windows, all or nothing, and
// returns once they count: in memory at once, with storage once committed
// (it waits for the commit even when ctx ends, since the answer must say
// whether the values counted). Call it after Reserve.
//
// With every shard the batch touches locked (in shard order), it adds each
// value (with storage, to its window's pending changes, see pending;
// without, to the window itself); when a value would make a window's figure
// non-finite it undoes the batch and refuses it. Values are applied shard by
// shard (a stable counting sort, so each window still takes its values in
// batch order). With figures set, it then calls figures with the committed
// state of each window the batch changed, in batch order (a window changed
// by several values after each).
func (b *Batch) Apply(ctx context.Context, figures func(Figure)) error {
	s := b.s
	base := s.nextSeqs(b.points)
	var start [numShards + 1]int32
	for i := range b.refs {
		start[b.refs[i].w.shard+1]++
	}
	for sh := 1; sh <= numShards; sh++ {
		start[sh] += start[sh-1]
	}
	if cap(b.order) < len(b.refs) {
		b.order = make([]int32, len(b.refs))
	}
	order := b.order[:len(b.refs)]
	next := start
	for i := range b.refs {
		sh := b.refs[i].w.shard
		order[next[sh]] = int32(i)
		next[sh]++
	}
	for sh := range numShards {
		if start[sh] != start[sh+1] {
			s.shards[sh].mu.Lock()
		}
	}
	b.undo = b.undo[:0]
	b.changed = b.changed[:0]
	var bad *window
	for _, i := range order {
		r := &b.refs[i]
		w := r.w
		c := &w.acc
		if s.store != nil {
			e := s.store.pendingOf(w)
			c = &e.delta
			b.changed = append(b.changed, e)
		}
		b.undo = append(b.undo, undo{c: c, old: *c})
		c.Add(w.d.Fn, r.v, r.wt, r.ts, base+uint64(r.pt)+1)
		if fn := w.d.Fn; (fn == aggregation.Sum || fn == aggregation.Average) && !w.live().Finite(fn) {
			bad = w
			break
		}
	}
	var badErr error
	if bad != nil {
		for i := len(b.undo) - 1; i >= 0; i-- {
			*b.undo[i].c = b.undo[i].old
		}
		// Pendings queued for this batch stay queued, empty: their commit
		// rewrites the committed state.
		b.changed = b.changed[:0]
		// Named here, under the lock: once unpinned, bad may be evicted
		// and its slot reused by another series.
		badErr = consumererror.NewPermanent(fmt.Errorf("%w (%s %s window starting %s)", ErrNonFinite,
			bad.d.Name, bad.iv, time.Unix(0, bad.start).UTC().Format(time.RFC3339)))
	}
	for i := range b.refs {
		r := &b.refs[i]
		if bad == nil && s.store == nil {
			r.w.version++
		}
		// Unpinned here, under the locks, unless figures will read them.
		if figures == nil {
			r.w.pins--
			r.w = nil
		}
	}
	for sh := range numShards {
		if start[sh] != start[sh+1] {
			s.shards[sh].mu.Unlock()
		}
	}
	if badErr != nil {
		return badErr
	}
	if s.store != nil {
		err := s.store.wait(context.WithoutCancel(ctx), b.changed)
		if errors.Is(err, ErrNonFinite) {
			err = consumererror.NewPermanent(err)
		}
		if err != nil {
			return err
		}
	}
	if figures != nil {
		b.figures(figures)
	}
	return nil
}

// undo is a value's target in Apply and what it held before.
type undo struct {
	c   *aggregation.Compact
	old aggregation.Compact
}

// Figure is the state of one window after a batch was added to it.
type Figure struct {
	Desc     *Desc
	Interval calendar.Interval
	Start    int64 // Unix ns
	State    aggregation.State
}

// figures calls fn with the committed state of each window the batch
// changed, and unpins it.
func (b *Batch) figures(fn func(Figure)) {
	for i := range b.refs {
		w := b.refs[i].w
		sh := &b.s.shards[w.shard]
		sh.mu.Lock()
		f := Figure{Desc: w.d, Interval: w.iv, Start: w.start, State: w.acc.State(w.d.Fn)}
		w.pins--
		sh.mu.Unlock()
		b.refs[i].w = nil
		fn(f)
	}
}

// forget accounts for a window of d leaving memory.
func (s *Set) forget(d *Desc) {
	s.inMem.Add(-1)
	d.tenant.n.Add(-1)
}

// drop removes w from memory. Caller holds sh.mu.
func (s *Set) drop(sh *shard, w *window) {
	d := w.d
	sh.del(s.hashOf(sh, w), w)
	s.forget(d)
}

// hashOf returns the hash of w's full key (see keyHeader).
func (s *Set) hashOf(sh *shard, w *window) uint64 {
	sh.kbuf = appendFullKey(sh.kbuf[:0], w.d, w.iv, w.start, sh.attrs(w))
	return s.hash(sh.kbuf)
}

// Values of Due's kinds.
type Kind uint8

const (
	Running     Kind = iota // the figure of an open window
	Final                   // the closing figure of a window
	Restatement             // a closed window's figure changed by late values
)

// Snap is a window's figure taken for emission.
type Snap struct {
	Desc       *Desc
	Interval   calendar.Interval
	Start, End int64
	Attrs      []byte // canonical attributes (DecodeMap)
	Acc        aggregation.Compact
	Kind       Kind
	w          *window // nil: not from this Set's memory
	version    uint32
}

// Due returns the windows whose figure is to be emitted at nowNs: closed or
// restated windows, and with running the changed open ones. Emitted must
// follow for what went out; one emitter at a time.
func (s *Set) Due(nowNs int64, running bool) []Snap {
	lateness := int64(s.cfg.AllowedLateness)
	var snaps []Snap
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		sh.each(func(w *window) {
			if w.version == w.emitted {
				return
			}
			closed := w.end()+lateness <= nowNs
			kind := Running
			switch {
			case closed && w.final:
				kind = Restatement
			case closed:
				kind = Final
			case !running:
				return
			}
			snaps = append(snaps, Snap{Desc: w.d, Interval: w.iv, Start: w.start, End: w.end(), Attrs: sh.attrs(w),
				Acc: w.acc, Kind: kind, w: w, version: w.version})
		})
		sh.mu.Unlock()
	}
	return snaps
}

// Emitted records that snaps (from Due) went out; with storage, that the
// closing ones did is committed soon after (no waiter: at worst a restart
// emits the same figure once more).
func (s *Set) Emitted(snaps []Snap) {
	for _, sn := range snaps {
		w := sn.w
		sh := &s.shards[w.shard]
		sh.mu.Lock()
		w.emitted = sn.version // one emitter: versions only grow
		if sn.Kind != Running {
			w.final = true
			if s.store != nil {
				s.store.pendingOf(w)
			}
		}
		sh.mu.Unlock()
	}
	if s.store != nil && len(snaps) > 0 {
		s.store.commits.Kick()
	}
}

// Evict drops windows from memory. With storage: closed windows whose figure
// was emitted and whose state (with the emitted mark) is durable. Without:
// closed, emitted windows past the retention, and under memory pressure
// (above 90% of MaxWindows) the oldest closed, emitted ones down to 80%,
// remembering the newest evicted end (values for those windows are then
// refused). It returns how many it dropped under pressure and the newest
// end among them.
func (s *Set) Evict(nowNs int64) (pressured int, watermark int64) {
	lateness := int64(s.cfg.AllowedLateness)
	ret := int64(s.cfg.Retention)
	type candidate struct {
		w   *window
		end int64
	}
	var candidates []candidate
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		sh.each(func(w *window) {
			if w.pins > 0 || w.pend != nil {
				return
			}
			if w.version == 0 { // placeholder of a refused or failed batch
				s.drop(sh, w)
				return
			}
			if w.end()+lateness > nowNs || w.emitted != w.version {
				return
			}
			if s.store != nil {
				if w.donePersisted {
					s.drop(sh, w)
				}
				return
			}
			if ret > 0 && w.end() <= nowNs-ret {
				s.drop(sh, w)
				return
			}
			candidates = append(candidates, candidate{w, w.end()})
		})
		sh.mu.Unlock()
	}
	limit := int64(s.cfg.MaxWindows)
	if s.store != nil || s.inMem.Load()*10 <= limit*9 || len(candidates) == 0 {
		return 0, 0
	}
	slices.SortFunc(candidates, func(a, b candidate) int { return cmp.Compare(a.end, b.end) })
	excess := s.inMem.Load() - limit*8/10
	n := 0
	for _, c := range candidates {
		if int64(n) >= excess {
			break
		}
		w := c.w
		sh := &s.shards[w.shard]
		sh.mu.Lock()
		if sh.holds(w) && w.pins == 0 && w.emitted == w.version {
			// The watermark rises before the window leaves: a value that
			// then misses the window in its shard sees the watermark
			// (resolve) and is refused, instead of starting the window
			// anew and publishing its partial figure as the closed one.
			for {
				old := s.evictedBefore.Load()
				if c.end <= old || s.evictedBefore.CompareAndSwap(old, c.end) {
					break
				}
			}
			s.drop(sh, w)
			watermark = max(watermark, c.end)
			n++
		}
		sh.mu.Unlock()
	}
	return n, watermark
}

// EvictCache drops the unpinned windows that closed before closedBefore, or
// all unpinned ones when memory is under pressure: for a Set whose windows
// only cache identities, their states living in a shared store.
func (s *Set) EvictCache(closedBefore int64) {
	pressure := s.inMem.Load()*10 > int64(s.cfg.MaxWindows)*9
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		sh.each(func(w *window) {
			if w.pins == 0 && (pressure || w.end() <= closedBefore) {
				s.drop(sh, w)
			}
		})
		sh.mu.Unlock()
	}
}

// Window is a view of one series-window in memory (Each).
type Window struct {
	Desc       *Desc
	Interval   calendar.Interval
	Start, End int64
	Attrs      []byte            // canonical attributes (DecodeMap)
	State      aggregation.State // committed
	Pins       int32             // batches holding it
	Pending    bool              // changes wait for a commit
}

// Series returns the window's series identity as storage and the shared
// store know it.
func (w *Window) Series() []byte { return seriesHash(w.Desc, w.Attrs) }

// Each calls fn with every window in memory, each shard locked in turn: for
// tests and diagnostics.
func (s *Set) Each(fn func(Window)) {
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		sh.each(func(w *window) {
			fn(Window{Desc: w.d, Interval: w.iv, Start: w.start, End: w.end(), Attrs: sh.attrs(w),
				State: w.acc.State(w.d.Fn), Pins: w.pins, Pending: w.pend != nil})
		})
		sh.mu.Unlock()
	}
}
