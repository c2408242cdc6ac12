package detector

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"testing"
)

// poisson draws a Poisson variate (Knuth for small means, normal
// approximation for large ones).
func poisson(r *rand.Rand, lambda float64) float64 {
	if lambda > 50 {
		return math.Max(0, math.Round(lambda+math.Sqrt(lambda)*r.NormFloat64()))
	}
	l, k, p := math.Exp(-lambda), 0.0, 1.0
	for {
		p *= r.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

// bursty returns n 5-minute counts like a social-media mention volume: a
// daily cycle, a slowly wandering log-intensity and bursts of Pareto size
// (tail index 1.5) that decay within a few samples. Nothing in it is an
// anomaly in NAB's sense; the bursts are its normal heavy tail.
func bursty(seed uint64, n int, base float64) []float64 {
	r := rand.New(rand.NewPCG(seed, 2))
	xs := make([]float64, n)
	ar, burst := 0.0, 0.0
	for i := range xs {
		ar = 0.98*ar + 0.06*r.NormFloat64()
		if r.Float64() < 0.003 {
			burst += 2 * math.Pow(r.Float64(), -1/1.5)
		}
		burst *= 0.7
		lambda := base * (1 + 0.6*math.Sin(2*math.Pi*float64(i)/288)) * math.Exp(ar) * (1 + burst)
		xs[i] = poisson(r, lambda)
	}
	return xs
}

// hourly returns n hourly values like an ad exchange's cost per click:
// positive, multiplicative noise, a daily cycle and a slow drift.
func hourly(seed uint64, n int) []float64 {
	r := rand.New(rand.NewPCG(seed, 3))
	xs := make([]float64, n)
	drift := 0.0
	for i := range xs {
		drift = 0.995*drift + 0.01*r.NormFloat64()
		xs[i] = 0.2 * (1 + 0.3*math.Sin(2*math.Pi*float64(i)/24)) * math.Exp(drift+0.15*r.NormFloat64())
	}
	return xs
}

// runAt scores xs sampled every stepSec seconds.
func runAt(cfg Config, xs []float64, stepSec int64) []Result {
	var s State
	out := make([]Result, len(xs))
	for i, x := range xs {
		out[i] = s.Update(&cfg, t0+int64(i)*stepSec, x)
	}
	return out
}

// TestSynthRates prints false-alarm rates on the synthetic must-not-flag
// workloads (set NAB_EXPERIMENT like TestExperiment to compare variants).
func TestSynthRates(t *testing.T) {
	spec, ok := os.LookupEnv("NAB_EXPERIMENT")
	if !ok {
		t.Skip("set NAB_EXPERIMENT to run")
	}
	base := tune
	defer func() { tune = base }()
	for _, variant := range splitVariants(spec) {
		tune = base
		if err := applyTune(&tune, variant); err != nil {
			t.Fatal(err)
		}
		var nb, fb, nh, fh, nn, fn, fu, fd int
		up, down := DefaultConfig(), DefaultConfig()
		up.Direction, down.Direction = DirectionUp, DirectionDown
		for seed := uint64(0); seed < 10; seed++ {
			rs := runAt(DefaultConfig(), bursty(seed, 16000, []float64{3, 30, 300}[seed%3]), 300)
			nb += len(rs)
			fb += len(flags(rs, 0, len(rs)))
			rs = runAt(DefaultConfig(), hourly(seed, 1600), 3600)
			nh += len(rs)
			fh += len(flags(rs, 0, len(rs)))
			rs = run(DefaultConfig(), noise(seed+100, 4000, 10, 3))
			nn += len(rs)
			fn += len(flags(rs, 0, len(rs)))
			fu += len(flags(run(up, noise(seed+100, 4000, 10, 3)), 0, 4000))
			fd += len(flags(run(down, noise(seed+100, 4000, 10, 3)), 0, 4000))
		}
		fmt.Printf("%-50s FP/1000: bursty %.2f hourly %.2f noise %.2f up %.2f down %.2f\n", variant,
			1000*float64(fb)/float64(nb), 1000*float64(fh)/float64(nh), 1000*float64(fn)/float64(nn),
			1000*float64(fu)/float64(nn), 1000*float64(fd)/float64(nn))
	}
}

// TestBurstyCountsAndShortHourly: heavy-tailed bursty counts and short
// hourly series are must-not-flag workloads. Short hourly series stay within
// the i.i.d. noise rate. Bursty counts still raise about 1.4 alarms per 1000
// values (measured over 30 series of 16,000 values: see DETECTOR.md, known
// limitations); the bound asserted is that measured rate with a margin. Short
// hourly series stay below one alarm per 1000 values (at most 3 in a series).
func TestBurstyCountsAndShortHourly(t *testing.T) {
	var n, f int
	for seed := uint64(0); seed < 30; seed++ {
		rs := runAt(DefaultConfig(), bursty(seed, 16000, []float64{3, 30, 300}[seed%3]), 300)
		n += len(rs)
		got := len(flags(rs, 0, len(rs)))
		f += got
		if got > 40 {
			t.Errorf("bursty seed %d: %d alarms in %d values", seed, got, len(rs))
		}
	}
	if rate := 1000 * float64(f) / float64(n); rate > 1.8 {
		t.Errorf("bursty counts: %.2f alarms per 1000 values, documented about 1.4", rate)
	}
	hf := 0
	for seed := uint64(0); seed < 30; seed++ {
		rs := runAt(DefaultConfig(), hourly(seed, 1600), 3600)
		if !rs[4*24].Ready {
			t.Fatalf("hourly seed %d: not scored after 4 days", seed)
		}
		got := flags(rs, 0, len(rs))
		hf += len(got)
		if len(got) > 3 {
			t.Errorf("hourly seed %d: alarms at %v", seed, got)
		}
	}
	// measured: 0.69 per 1000 values, at most 3 in one series of 1600
	if hf > 30*1600/1000 {
		t.Errorf("short hourly series: %d alarms in 30 series of 1600 values", hf)
	}
}

// TestDailySeries: a series of one value a day is scored within its first
// weeks (14 values spanning 14 days), not after learning_period (300) days,
// and a 12-sigma spike on day 40 is flagged; the weeks before are not. With
// 40 values the scale is still uncertain (the band is wide): the spike is
// flagged in 8 of the 10 seeds, which is what is asserted.
func TestDailySeries(t *testing.T) {
	missed := 0
	for seed := uint64(0); seed < 10; seed++ {
		xs := noise(seed+200, 60, 1000, 50)
		xs[40] += 600 // 12 sigma
		rs := runAt(DefaultConfig(), xs, secondsPerDay)
		first := -1
		for i, r := range rs {
			if r.Ready {
				first = i
				break
			}
		}
		if first < 0 || first > 21 {
			t.Fatalf("seed %d: first score on day %d", seed, first)
		}
		if f := flags(rs, 0, 40); len(f) > 0 {
			t.Errorf("seed %d: false alarms on days %v", seed, f)
		}
		if !rs[40].Anomaly {
			missed++
			t.Logf("seed %d: day-40 spike not flagged (score %.3f, band [%.0f, %.0f])", seed, rs[40].Score, rs[40].Lower, rs[40].Upper)
		}
	}
	if missed > 2 {
		t.Errorf("day-40 spike missed in %d of 10 series", missed)
	}
}
