package windows

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/custommetrics/bundle/internal/calendar"
)

// TestWindowSize: the sizes index.go states.
func TestWindowSize(t *testing.T) {
	require.EqualValues(t, 80, unsafe.Sizeof(window{}), "a window is 80 bytes of slab")
	require.Zero(t, unsafe.Sizeof(shard{})%64, "shards fill whole cache lines")
	require.GreaterOrEqual(t, unsafe.Sizeof(shard{}), uintptr(64), "hot mutexes on separate cache lines")
}

func testKey(d *Desc, start int64, attrs string) []byte {
	return appendFullKey(nil, d, calendar.Hour, start, []byte(attrs))
}

// TestShardHashCollision: two windows whose keys hash alike are both found,
// each under its own identity, and removed independently.
func TestShardHashCollision(t *testing.T) {
	d := &Desc{id: 7}
	sh := shard{slab: &slab{}}
	const h = 42 << 32 // both hash to 42
	ka, kb := testKey(d, 100, "a"), testKey(d, 100, "b")
	require.Nil(t, sh.get(h, ka))
	a := sh.put(h, ka, d, calendar.Hour, 100, 3600, 0)
	require.Nil(t, sh.get(h, kb), "same hash, other key: not found")
	b := sh.put(h, kb, d, calendar.Hour, 100, 3600, 0)
	assert.Same(t, a, sh.get(h, ka))
	assert.Same(t, b, sh.get(h, kb))
	n := 0
	sh.each(func(*window) { n++ })
	assert.Equal(t, 2, n)
	sh.del(h, a)
	assert.Nil(t, sh.get(h, ka))
	assert.Same(t, b, sh.get(h, kb))
	assert.True(t, sh.holds(b))
	assert.Equal(t, "b", string(sh.attrs(b)))
	sh.del(h, b)
	assert.Nil(t, sh.get(h, kb))
	assert.Zero(t, sh.n)
}

// TestShardLikeMap: random puts and deletes, with hashes drawn from a small
// set (so probe runs are long, wrap around the index and collide), long and
// short attribute encodings (arena and big), growth, shrinking and arena
// compaction, agree with a map at every step: every window is found under
// its key with its own attributes and fields, and nothing else is found.
func TestShardLikeMap(t *testing.T) {
	for seed := range uint64(20) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rnd := rand.New(rand.NewPCG(seed, 1))
			d := &Desc{id: 3}
			sh := shard{slab: &slab{}}
			type entry struct {
				h     uint64
				start int64
				attrs string
				w     *window
			}
			want := map[string]*entry{}
			keys := []string{}
			hashes := []uint64{0, 1 << 32, 0xffffffff << 32, 15 << 32, 16 << 32, 17 << 32, 31 << 32}
			check := func() {
				require.Equal(t, len(want), sh.n)
				require.LessOrEqual(t, sh.n*4, len(sh.index)*3, "at most 3/4 full")
				live := 0
				sh.each(func(*window) { live++ })
				require.Equal(t, len(want), live)
				for k, e := range want {
					w := sh.get(e.h, []byte(k))
					require.Same(t, e.w, w)
					require.Equal(t, e.attrs, string(sh.attrs(w)))
					require.Equal(t, e.start, w.start)
					require.Equal(t, e.start+3600e9, w.end())
					require.Equal(t, uint32(e.start), w.version, "fields survive compaction and deletes of others")
				}
			}
			for step := range 4000 {
				if len(keys) > 0 && (rnd.IntN(3) == 0 || len(keys) > 600) {
					i := rnd.IntN(len(keys))
					k := keys[i]
					keys[i] = keys[len(keys)-1]
					keys = keys[:len(keys)-1]
					e := want[k]
					delete(want, k)
					sh.del(e.h, e.w)
					require.Nil(t, sh.get(e.h, []byte(k)))
				} else {
					start := int64(rnd.IntN(50))
					n := rnd.IntN(400)
					if rnd.IntN(50) == 0 {
						n = arenaChunkMax/4 + rnd.IntN(100) // big
					}
					attrs := strings.Repeat(string(rune('a'+rnd.IntN(3))), n) + fmt.Sprint(rnd.IntN(200))
					k := string(testKey(d, start, attrs))
					if _, ok := want[k]; ok {
						continue
					}
					h := hashes[rnd.IntN(len(hashes))] | uint64(rnd.IntN(4))
					if rnd.IntN(2) == 0 {
						h = rnd.Uint64()
					}
					require.Nil(t, sh.get(h, []byte(k)))
					w := sh.put(h, []byte(k), d, calendar.Hour, start, 3600, 0)
					w.version = uint32(start)
					want[k] = &entry{h: h, start: start, attrs: attrs, w: w}
					keys = append(keys, k)
				}
				if step%97 == 0 {
					check()
				}
				if step%331 == 0 {
					// each visits every window once, also while fn deletes.
					before := sh.n
					seen := map[*window]int{}
					sh.each(func(w *window) {
						seen[w]++
						if rnd.IntN(3) == 0 {
							k := string(appendFullKey(nil, d, w.iv, w.start, sh.attrs(w)))
							e := want[k]
							delete(want, k)
							keys = slices.DeleteFunc(keys, func(x string) bool { return x == k })
							sh.del(e.h, w)
						}
					})
					require.Len(t, seen, before, "every window visited")
					for _, n := range seen {
						require.Equal(t, 1, n)
					}
					check()
				}
			}
			check()
			for _, k := range keys {
				e := want[k]
				delete(want, k)
				sh.del(e.h, e.w)
			}
			check()
			assert.Equal(t, indexMin, len(sh.index), "the index shrinks")
			assert.Zero(t, sh.live)
			assert.Empty(t, sh.big)
		})
	}
}

// TestArenaCompacts: freed attribute bytes are reclaimed once they outweigh
// the live ones, and slices taken before a compaction keep their bytes.
func TestArenaCompacts(t *testing.T) {
	d := &Desc{id: 1}
	sh := shard{slab: &slab{}}
	var ws []*window
	var hs []uint64
	for i := range 20000 {
		k := testKey(d, int64(i), fmt.Sprintf("attrs-%06d", i))
		h := uint64(i) << 32
		ws = append(ws, sh.put(h, k, d, calendar.Hour, int64(i), 3600, 0))
		hs = append(hs, h)
	}
	kept := sh.attrs(ws[19999])
	chunks := len(sh.arena)
	for i := range 19990 {
		sh.del(hs[i], ws[i])
	}
	assert.Less(t, len(sh.arena), chunks, "compacted")
	assert.LessOrEqual(t, sh.dead, sh.live+arenaChunkMax)
	assert.Equal(t, "attrs-019999", string(kept))
	for i := 19990; i < 20000; i++ {
		assert.Equal(t, fmt.Sprintf("attrs-%06d", i), string(sh.attrs(ws[i])))
		assert.Same(t, ws[i], sh.get(hs[i], testKey(d, int64(i), fmt.Sprintf("attrs-%06d", i))))
	}
}

func TestSpanOf(t *testing.T) {
	s, ok := spanOf(0, 3600e9)
	assert.True(t, ok)
	assert.EqualValues(t, 3600, s)
	for _, bad := range [][2]int64{{0, 0}, {10, 5}, {0, 1}, {0, (1 << 32) * 1e9}} {
		_, ok := spanOf(bad[0], bad[1])
		assert.False(t, ok, "%v", bad)
	}
}
