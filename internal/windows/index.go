package windows // import "github.com/custommetrics/bundle/internal/windows"

import (
	"encoding/binary"
	"math"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/custommetrics/bundle/internal/aggregation"
	"github.com/custommetrics/bundle/internal/calendar"
)

// Memory layout of the series-windows. At a million windows every byte of
// a window counts a megabyte, so instead of one Go allocation per window,
// one per attribute encoding and a Go map per shard, there are:
//
//	slab   one for all shards: []window chunks of 256 windows, in the order
//	       the windows were made; a window's slot is its index. Freed slots
//	       are zeroed and reused. A *window stays valid while its window
//	       lives (see the lifetime rule below).
//	arena  per shard: the canonical attribute encodings, each as
//	       uvarint(len) | bytes, in append-only byte chunks (1 KiB doubling
//	       to 64 KiB); a window refers to its encoding by chunk<<16 | offset.
//	       Freed bytes are counted, and once they outweigh the live ones the
//	       live encodings are copied to fresh chunks (compact). Bytes, once
//	       written, never change: a slice taken under the lock stays valid
//	       after it. Encodings too long for a chunk live in big, one string
//	       each.
//	index  per shard: open addressing with linear probing, 8-byte entries
//	       tag (the high 32 bits of the key's hash) << 32 | slot+1 (0: empty),
//	       at most 3/4 full (shrinks below 1/8). Equal tags are normal: every
//	       tag match is verified against the window's identity, so hash
//	       collisions never confuse windows.
//
// Per window: 80 bytes of slab (TestWindowSize), the attribute encoding plus
// 1–2 bytes, and 8 bytes / load factor (1/8..3/4) of index.
//
// Lifetime rule: a window is freed only by evict (under the emitter lock),
// and only when no call holds it (pins == 0, no pending change). Whoever
// keeps a *window beyond its shard lock either pins it, holds its pending,
// or holds the emitter lock; attribute bytes it needs later it takes under
// the lock (snap.attrs, recordKey).

// A window is the state of one series in one calendar window.
// Guarded by its shard's mutex. 80 bytes: keep it so (TestWindowSize).
type window struct {
	// acc is what d.fn needs of the aggregation state. With storage it is
	// the committed state, the one storage holds: values wait in pend until
	// their group commit succeeds, and a failed commit leaves no trace.
	acc   aggregation.Compact
	d     *Desc    // nil: a free slot
	pend  *pending // with storage: changes not yet committed, nil when none
	start int64
	// version changes with acc (plus 1 when loaded from storage); emitted
	// is the version last emitted.
	version, emitted uint32
	pins             int32  // in-flight ConsumeMetrics calls that resolved this window
	attr             uint32 // arena reference of the canonical attributes (or bigAttr)
	span             uint32 // end - start, in seconds (see spanOf)
	iv               calendar.Interval
	shard            uint8
	final            bool // a closing figure was emitted: later ones are restatements
	donePersisted    bool // storage says this figure went out closed (a restart does not re-emit it)
}

// end is where w's window ends (exclusive), in Unix nanoseconds.
func (w *window) end() int64 { return w.start + int64(w.span)*1e9 }

// spanOf returns end - start in seconds; ok is false when that is not a
// whole number of seconds in (0, 2^32) s. Calendar windows always are: zone
// offsets are whole seconds and the longest window is a year.
func spanOf(start, end int64) (uint32, bool) {
	d := end - start
	if d <= 0 || d%1e9 != 0 || d/1e9 > math.MaxUint32 {
		return 0, false
	}
	return uint32(d / 1e9), true
}

// A series-window's full key is desc id (8) | interval (1) | start (8) |
// canonical attributes; windows are found by its 64-bit hash.
const keyHeader = 8 + 1 + 8

// A shard holds the windows whose hash falls in it. Guarded by mu.
type shard struct {
	mu    sync.Mutex
	slab  *slab // shared by all shards
	n     int   // windows held
	index []uint64
	arena [][]byte
	// Arena bytes in use and freed (compact).
	live, dead int
	big        map[*window]string // attribute encodings too long for the arena
	kbuf       []byte             // scratch for hashOf
	iterating  bool               // each is running: del leaves the index size alone
	// 128 bytes (8+8+8+24+24+8+8+8+24+8): hot mutexes on separate cache
	// lines (TestWindowSize).
}

// A slab holds the windows of all shards in slots, in the order they were
// made: a sender that sends its series in the same order each time then
// reads memory in order (as with one allocation per window), which a
// slab per shard would scatter over 64 streams.
//
// Slot s is top[s>>16][s>>8&0xff][s&0xff]. Slots are allocated under mu;
// the chunks of a slot are reachable without it by whoever learned the slot
// from its shard (the shard lock orders the allocation before the reading).
type slab struct {
	mu   sync.Mutex
	top  atomic.Pointer[[]*slabDir]
	next uint32   // slots handed out so far (free ones included)
	free []uint32 // freed slots, reused first
}

type slabDir [256]*[slabChunk]window

func (s *slab) at(slot uint32) *window {
	return &(*s.top.Load())[slot>>16][slot>>8&0xff][slot&0xff]
}

// alloc returns a free slot. 2^32 - 1 windows (340 GB of slab) is the most a
// process can hold.
func (s *slab) alloc() uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := len(s.free); n > 0 {
		slot := s.free[n-1]
		s.free = s.free[:n-1]
		return slot
	}
	slot := s.next
	if slot == math.MaxUint32 {
		panic("aggregate processor: 2^32 - 1 series-windows in memory")
	}
	if slot&0xff == 0 {
		var top []*slabDir
		if t := s.top.Load(); t != nil {
			top = *t
		}
		if slot>>16 == uint32(len(top)) {
			top = append(slices.Clip(top), new(slabDir))
			s.top.Store(&top)
		}
		top[slot>>16][slot>>8&0xff] = new([slabChunk]window)
	}
	s.next++
	return slot
}

func (s *slab) release(slot uint32) {
	s.mu.Lock()
	s.free = append(s.free, slot)
	s.mu.Unlock()
}

const (
	slabChunk       = 256 // windows per full slab chunk (256 × 80 B = 20480 B, a Go size class)
	arenaChunkMax   = 1 << 16
	arenaChunkFirst = 1 << 10
	bigAttr         = math.MaxUint32 // window.attr of an encoding kept in shard.big
	indexMin        = 16
)

func (sh *shard) at(slot uint32) *window { return sh.slab.at(slot) }

// tag is the part of hash h the index keeps (the shard number uses the low
// bits).
func tag(h uint64) uint32 { return uint32(h >> 32) }

// attrs returns w's canonical attributes. The slice stays valid (and
// unchanged) after the lock is released.
func (sh *shard) attrs(w *window) []byte {
	if w.attr == bigAttr {
		return []byte(sh.big[w])
	}
	c := sh.arena[w.attr>>16][w.attr&0xffff:]
	if n := int(c[0]); n < 0x80 { // most encodings: a one-byte length
		return c[1 : 1+n : 1+n]
	}
	n, k := binary.Uvarint(c)
	return c[k : k+int(n) : k+int(n)]
}

// is reports whether w is the window of full key k.
func (sh *shard) is(w *window, k []byte) bool {
	return len(k) >= keyHeader && binary.LittleEndian.Uint64(k) == w.d.id && k[8] == byte(w.iv) &&
		int64(binary.LittleEndian.Uint64(k[9:])) == w.start && string(k[keyHeader:]) == string(sh.attrs(w))
}

// get returns the window of full key k (hash h), or nil.
func (sh *shard) get(h uint64, k []byte) *window {
	if len(sh.index) == 0 {
		return nil
	}
	t := tag(h)
	mask := uint32(len(sh.index) - 1)
	for i := t & mask; ; i = (i + 1) & mask {
		e := sh.index[i]
		if e == 0 {
			return nil
		}
		if uint32(e>>32) == t {
			if w := sh.at(uint32(e) - 1); sh.is(w, k) {
				return w
			}
		}
	}
}

// put files a new window of full key k (hash h), which get did not find,
// and returns it for the caller to fill in (all but its identity is zero).
func (sh *shard) put(h uint64, k []byte, d *Desc, iv calendar.Interval, start int64, span uint32, shard uint8) *window {
	slot := sh.slab.alloc()
	if (sh.n+1)*4 > len(sh.index)*3 {
		sh.rehash(max(indexMin, 2*len(sh.index)))
	}
	w := sh.at(slot)
	*w = window{d: d, start: start, span: span, iv: iv, shard: shard}
	w.attr = sh.addAttrs(w, k[keyHeader:])
	sh.insert(tag(h), slot)
	sh.n++
	return w
}

func (sh *shard) insert(t uint32, slot uint32) {
	mask := uint32(len(sh.index) - 1)
	i := t & mask
	for sh.index[i] != 0 {
		i = (i + 1) & mask
	}
	sh.index[i] = uint64(t)<<32 | uint64(slot+1)
}

// rehash rebuilds the index with size entries (a power of two).
func (sh *shard) rehash(size int) {
	old := sh.index
	sh.index = make([]uint64, size)
	for _, e := range old {
		if e != 0 {
			sh.insert(uint32(e>>32), uint32(e)-1)
		}
	}
}

// del removes w (hash h) and frees its slot and attribute bytes.
func (sh *shard) del(h uint64, w *window) {
	t := tag(h)
	mask := uint32(len(sh.index) - 1)
	i := t & mask
	for {
		e := sh.index[i]
		if e == 0 {
			panic("aggregate processor: deleting a window that is not in its shard")
		}
		if uint32(e>>32) == t && sh.at(uint32(e)-1) == w {
			break
		}
		i = (i + 1) & mask
	}
	slot := uint32(sh.index[i]) - 1
	// Backward-shift deletion: move later entries of the probe run into the
	// hole when their home position allows, so no tombstones are needed.
	for j := (i + 1) & mask; sh.index[j] != 0; j = (j + 1) & mask {
		home := uint32(sh.index[j]>>32) & mask
		// The entry at j may fill hole i unless its home lies cyclically in (i, j].
		if (j > i && (home <= i || home > j)) || (j < i && home <= i && home > j) {
			sh.index[i] = sh.index[j]
			i = j
		}
	}
	sh.index[i] = 0
	sh.n--
	sh.freeAttrs(w)
	*w = window{}
	sh.slab.release(slot)
	if !sh.iterating {
		sh.shrink()
	}
	if sh.dead > sh.live && sh.dead >= arenaChunkMax {
		sh.compact()
	}
}

// holds reports whether w is a window filed in sh (not a freed slot).
func (sh *shard) holds(w *window) bool { return w.d != nil }

// each calls fn for every window; fn may call del (for the window it was
// given). It walks the index downwards from an empty entry: no probe run
// wraps past an empty entry, and del only moves entries of the run it
// deletes from to lower positions, so every window is visited exactly once.
func (sh *shard) each(fn func(w *window)) {
	n := len(sh.index)
	if sh.n == 0 {
		return
	}
	empty := 0
	for sh.index[empty] != 0 {
		empty++ // the index is at most 3/4 full
	}
	sh.iterating = true
	defer func() { sh.iterating = false }()
	for k := 1; k < n; k++ {
		i := (empty - k + n) % n
		if e := sh.index[i]; e != 0 {
			fn(sh.at(uint32(e) - 1))
		}
	}
	sh.shrink()
}

// shrink halves the index while it is less than 1/8 full.
func (sh *shard) shrink() {
	size := len(sh.index)
	for sh.n*8 < size && size > indexMin {
		size /= 2
	}
	if size != len(sh.index) {
		sh.rehash(size)
	}
}

// appendFullKey appends a window's in-memory key (see keyHeader).
func appendFullKey(k []byte, dsc *Desc, iv calendar.Interval, start int64, attrs []byte) []byte {
	k = binary.LittleEndian.AppendUint64(k, dsc.id)
	k = append(k, byte(iv))
	k = binary.LittleEndian.AppendUint64(k, uint64(start))
	return append(k, attrs...)
}

// addAttrs stores b for w and returns its reference.
func (sh *shard) addAttrs(w *window, b []byte) uint32 {
	need := binary.MaxVarintLen32 + len(b)
	if need > arenaChunkMax/4 {
		return sh.bigAttrs(w, b)
	}
	c := len(sh.arena) - 1
	if c < 0 || cap(sh.arena[c])-len(sh.arena[c]) < need {
		if c+1 >= 0xffff { // reference space exhausted (4 GiB in one shard)
			return sh.bigAttrs(w, b)
		}
		size := arenaChunkFirst
		if c >= 0 {
			size = min(arenaChunkMax, 2*cap(sh.arena[c]))
		}
		sh.arena = append(sh.arena, make([]byte, 0, size))
		c++
	}
	off := len(sh.arena[c])
	a := binary.AppendUvarint(sh.arena[c], uint64(len(b)))
	sh.arena[c] = append(a, b...)
	sh.live += len(sh.arena[c]) - off
	return uint32(c)<<16 | uint32(off)
}

func (sh *shard) bigAttrs(w *window, b []byte) uint32 {
	if sh.big == nil {
		sh.big = map[*window]string{}
	}
	sh.big[w] = string(b)
	return bigAttr
}

func (sh *shard) freeAttrs(w *window) {
	if w.attr == bigAttr {
		delete(sh.big, w)
		return
	}
	n := len(sh.attrs(w))
	n += len(binary.AppendUvarint(nil, uint64(n)))
	sh.live -= n
	sh.dead += n
}

// compact copies the live attribute encodings to fresh chunks. Slices of the
// old ones stay valid (they are left to the GC unchanged).
func (sh *shard) compact() {
	old := sh.arena
	sh.arena, sh.live, sh.dead = nil, 0, 0
	for _, e := range sh.index {
		if e == 0 {
			continue
		}
		w := sh.at(uint32(e) - 1)
		if w.attr == bigAttr {
			continue
		}
		c := old[w.attr>>16][w.attr&0xffff:]
		n, k := binary.Uvarint(c)
		w.attr = sh.addAttrs(w, c[k:k+int(n)])
	}
}
