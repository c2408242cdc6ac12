package aggregation

import (
	"math"
	"math/rand/v2"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestCompactAnswersLikeState: for every function, a Compact fed a random
// stream (ties, zero weights, rejected points) answers what a State fed the
// same stream answers, after every point, and survives a round trip through
// State (the storage encoding).
func TestCompactAnswersLikeState(t *testing.T) {
	require.EqualValues(t, 32, unsafe.Sizeof(Compact{}))
	rng := rand.New(rand.NewPCG(1, 2))
	for _, f := range []Func{Sum, Count, Min, Max, First, Last, Average} {
		for stream := range 200 {
			var s State
			var c Compact
			for i := range 1 + rng.IntN(30) {
				v := float64(rng.IntN(21) - 10)
				w := float64(rng.IntN(3))
				switch rng.IntN(20) {
				case 0:
					v = math.NaN()
				case 1:
					v = math.Copysign(0, -1) // -0 orders below +0 for Min/Max
				}
				ts := int64(rng.IntN(5)) // many ties on the timestamp
				seq := uint64(i + 1)
				okS := s.Add(v, w, ts, seq)
				okC := c.Add(f, v, w, ts, seq)
				require.Equal(t, okS, okC)
				want, got := s.Value(f), c.Value(f)
				if math.IsNaN(want) {
					assert.True(t, math.IsNaN(got), "%v stream %d point %d", f, stream, i)
				} else {
					assert.Equal(t, math.Float64bits(want), math.Float64bits(got), "%v stream %d point %d: %v vs %v", f, stream, i, want, got)
				}
				assert.Equal(t, s.Count(), c.Count())
				assert.Equal(t, c, CompactOf(f, c.State(f)), "round trip through State")
				st := c.State(f)
				back, err := DecodeState(st.AppendBinary(nil))
				require.NoError(t, err, "the State of a Compact is a valid one (storage)")
				assert.Equal(t, c, CompactOf(f, back), "round trip through the binary encoding")
			}
		}
	}
}

// TestCompactMergeLikeState: a stream split in two at random, each half fed
// to its own Compact, merges into what a State fed the whole stream answers.
func TestCompactMergeLikeState(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, f := range []Func{Sum, Count, Min, Max, First, Last, Average} {
		for stream := range 300 {
			var s State
			var a, b Compact
			for range rng.IntN(20) {
				v := float64(rng.IntN(21) - 10)
				w := float64(1 + rng.IntN(3))
				ts := int64(rng.IntN(5))
				seq := uint64(rng.IntN(1000)) // arrival order is not the order of the halves
				s.Add(v, w, ts, seq)
				if rng.IntN(2) == 0 {
					a.Add(f, v, w, ts, seq)
				} else {
					b.Add(f, v, w, ts, seq)
				}
			}
			a.Merge(f, b)
			assert.Equal(t, CompactOf(f, s), a, "%v stream %d", f, stream)
		}
	}
}

// TestCompactFinite: the figures a window may not hold.
func TestCompactFinite(t *testing.T) {
	var c Compact
	assert.True(t, c.Finite(Sum), "empty")
	c.Add(Sum, 1e308, 1, 0, 1)
	assert.True(t, c.Finite(Sum))
	c.Add(Sum, 1e308, 1, 0, 2)
	assert.False(t, c.Finite(Sum), "1e308 + 1e308 overflows")

	var avg Compact
	avg.Add(Average, 5, 0, 0, 1)
	assert.False(t, avg.Finite(Average), "weights summing to 0 give no figure")
	avg.Add(Average, 5, 1, 0, 2)
	assert.True(t, avg.Finite(Average))
	avg.Add(Average, 1e308, 1, 0, 3)
	avg.Add(Average, 1e308, 1, 0, 4)
	assert.False(t, avg.Finite(Average), "sum(v*w) overflows")

	var mx Compact
	mx.Add(Max, math.MaxFloat64, 1, 0, 1)
	mx.Add(Max, math.MaxFloat64, 1, 0, 2)
	assert.True(t, mx.Finite(Max))
}
