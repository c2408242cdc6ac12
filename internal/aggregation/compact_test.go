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
