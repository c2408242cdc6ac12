package detector

import (
	"encoding/binary"
	"math"
	"testing"
)

// FuzzDetector feeds arbitrary float sequences (8 bytes each, little endian,
// so NaN, ±Inf, subnormals and huge values all occur) with irregular,
// possibly repeated or backwards timestamps. It must never panic, scores must
// stay within [0,1], and the state must survive a marshal round trip.
func FuzzDetector(f *testing.F) {
	seed := func(xs ...float64) []byte {
		b := make([]byte, 0, 8*len(xs))
		for _, x := range xs {
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(x))
		}
		return b
	}
	f.Add(seed(1, 2, 3, math.NaN(), math.Inf(1), -1e308, 0, 5e-324), uint8(0), int64(300))
	f.Add(seed(1e300, -1e300, 1e150, 0), uint8(1), int64(-60))
	f.Fuzz(func(t *testing.T, data []byte, mode uint8, dt int64) {
		cfg := DefaultConfig()
		cfg.LearningPeriod = int(mode % 8)
		cfg.Seasonality = Seasonality(mode % 4)
		cfg.Direction = Direction((mode / 4) % 3)
		cfg.Cooldown = int(mode/16) % 3
		cfg.MinRelativeChange = float64(mode%5) / 10
		var s State
		ts := int64(1_400_000_000)
		for i := 0; i+8 <= len(data); i += 8 {
			x := math.Float64frombits(binary.LittleEndian.Uint64(data[i:]))
			ts += dt + int64(data[i]%7)*int64(i)
			r := s.Update(&cfg, ts, x)
			if !(r.Score >= 0 && r.Score <= 1) {
				t.Fatalf("value %d (%v): score %v", i/8, x, r.Score)
			}
			if r.Anomaly && r.Score < cfg.Threshold() {
				t.Fatalf("value %d flagged with score %v below the threshold", i/8, r.Score)
			}
		}
		b, err := s.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var u State
		if err := u.UnmarshalBinary(b); err != nil {
			t.Fatalf("round trip: %v", err)
		}
	})
}
