package calendar

import (
	"math/rand/v2"
	"testing"
	"time"
)

var sinkS, sinkE int64

// BenchmarkWindowNanos measures a live stream (instants advancing ~1ms per
// point, the processor's steady state) and a cache-hostile random pattern
// (uniform over one year).
func BenchmarkWindowNanos(b *testing.B) {
	base := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	rng := rand.New(rand.NewPCG(1, 1))
	random := make([]int64, 1<<12)
	for i := range random {
		random[i] = base + rng.Int64N(int64(365*24*time.Hour))
	}
	for _, zone := range []string{"UTC", "America/New_York"} {
		c := mustCal(b, zone)
		for _, iv := range Intervals {
			b.Run(zone+"/"+iv.String()+"/stream", func(b *testing.B) {
				ns := base
				b.ReportAllocs()
				for b.Loop() {
					sinkS, sinkE = c.WindowNanos(iv, ns)
					ns += int64(time.Millisecond) - 3
				}
			})
			b.Run(zone+"/"+iv.String()+"/random", func(b *testing.B) {
				i := 0
				b.ReportAllocs()
				for b.Loop() {
					sinkS, sinkE = c.WindowNanos(iv, random[i&(len(random)-1)])
					i++
				}
			})
		}
	}
}

func BenchmarkWindowTime(b *testing.B) {
	c := mustCal(b, "America/New_York")
	t := time.Date(2024, 3, 10, 12, 0, 0, 0, time.UTC)
	for _, iv := range Intervals {
		b.Run(iv.String(), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				s, _ := c.Window(iv, t)
				sinkS = s.Unix()
			}
		})
	}
}
