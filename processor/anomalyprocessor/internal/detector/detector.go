package detector

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Seasonality selects the seasonal baseline used for the expected value.
type Seasonality uint8

const (
	// SeasonalityAuto maintains a non-seasonal, a daily and a weekly model side
	// by side and uses whichever currently predicts best (a seasonal model must
	// beat the simpler one by a margin, and only after it has seen two periods).
	SeasonalityAuto Seasonality = iota
	// SeasonalityNone uses a plain exponentially weighted level.
	SeasonalityNone
	// SeasonalityDaily uses a level plus a time-of-day profile.
	SeasonalityDaily
	// SeasonalityWeekly uses a level plus a time-of-week profile.
	SeasonalityWeekly
)

// String returns the configuration name of s.
func (s Seasonality) String() string {
	switch s {
	case SeasonalityAuto:
		return "auto"
	case SeasonalityNone:
		return "none"
	case SeasonalityDaily:
		return "daily"
	case SeasonalityWeekly:
		return "weekly"
	}
	return fmt.Sprintf("Seasonality(%d)", uint8(s))
}

// ParseSeasonality parses "auto", "none", "daily" or "weekly".
func ParseSeasonality(s string) (Seasonality, error) {
	for v := SeasonalityAuto; v <= SeasonalityWeekly; v++ {
		if v.String() == s {
			return v, nil
		}
	}
	return 0, fmt.Errorf("unknown seasonality %q (want auto, none, daily or weekly)", s)
}

// Direction selects which deviations from the expected value may be anomalous.
type Direction uint8

const (
	// DirectionBoth flags deviations in either direction and changes in variance.
	DirectionBoth Direction = iota
	// DirectionUp flags only values above the expected value.
	DirectionUp
	// DirectionDown flags only values below the expected value.
	DirectionDown
)

// String returns the configuration name of d.
func (d Direction) String() string {
	switch d {
	case DirectionBoth:
		return "both"
	case DirectionUp:
		return "up"
	case DirectionDown:
		return "down"
	}
	return fmt.Sprintf("Direction(%d)", uint8(d))
}

// ParseDirection parses "both", "up" or "down".
func ParseDirection(s string) (Direction, error) {
	for v := DirectionBoth; v <= DirectionDown; v++ {
		if v.String() == s {
			return v, nil
		}
	}
	return 0, fmt.Errorf("unknown direction %q (want both, up or down)", s)
}

// Config parameterises the detector. The zero value is not meaningful; start
// from DefaultConfig. A Config is read-only while scoring and may be shared by
// any number of series.
type Config struct {
	// Sensitivity in [0,1]: the flag threshold on the score is 1-Sensitivity,
	// and the band [Lower, Upper] narrows as it grows.
	Sensitivity float64
	// LearningPeriod is the number of values a series must have seen before
	// any value is scored above 0 or flagged.
	LearningPeriod int
	// Seasonality of the expected value.
	Seasonality Seasonality
	// Direction of deviations that may be anomalous.
	Direction Direction
	// MinRelativeChange: a value is flagged only if |value-expected| is at
	// least MinRelativeChange*|expected| (0 disables the check).
	MinRelativeChange float64
	// Cooldown is the number of values after a flagged one during which the
	// score is damped and nothing is flagged, so that one incident raises one
	// alert (0 disables it).
	Cooldown int
}

// DefaultConfig returns the configuration measured on NAB (see DETECTOR.md).
func DefaultConfig() Config {
	return Config{
		Sensitivity:       0.5,
		LearningPeriod:    tune.learning,
		Seasonality:       SeasonalityAuto,
		Direction:         DirectionBoth,
		MinRelativeChange: 0,
		Cooldown:          tune.cooldown,
	}
}

// Validate reports whether c is usable.
func (c *Config) Validate() error {
	var errs []error
	if !(c.Sensitivity >= 0 && c.Sensitivity <= 1) {
		errs = append(errs, fmt.Errorf("sensitivity must be within [0,1], got %v", c.Sensitivity))
	}
	if c.LearningPeriod < 0 {
		errs = append(errs, fmt.Errorf("learning period must not be negative, got %d", c.LearningPeriod))
	}
	if c.Seasonality > SeasonalityWeekly {
		errs = append(errs, fmt.Errorf("unknown seasonality %d", c.Seasonality))
	}
	if c.Direction > DirectionDown {
		errs = append(errs, fmt.Errorf("unknown direction %d", c.Direction))
	}
	if !(c.MinRelativeChange >= 0) || math.IsInf(c.MinRelativeChange, 0) {
		errs = append(errs, fmt.Errorf("minimum relative change must be a non-negative number, got %v", c.MinRelativeChange))
	}
	if c.Cooldown < 0 {
		errs = append(errs, fmt.Errorf("cooldown must not be negative, got %d", c.Cooldown))
	}
	return errors.Join(errs...)
}

// Threshold returns the score at or above which a value is flagged.
func (c Config) Threshold() float64 { return 1 - c.Sensitivity }

// Result is the outcome of scoring one value.
type Result struct {
	// Score in [0,1]; higher is more anomalous.
	Score float64
	// Expected is the value the baseline predicted for this point, Lower and
	// Upper the band of values that would not have been unusual on their own.
	Expected, Lower, Upper float64
	// Anomaly is true when the value is flagged.
	Anomaly bool
	// Ready is false during the learning period (and for values that were
	// skipped because they are not finite).
	Ready bool
}

// Detector bundles a Config and the State of one series.
type Detector struct {
	Config Config
	State  State
}

// New returns a detector for one series; it fails if cfg is invalid.
func New(cfg Config) (*Detector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Detector{Config: cfg}, nil
}

// Update scores v observed at t and then learns from it.
func (d *Detector) Update(t time.Time, v float64) Result {
	return d.State.Update(&d.Config, t.Unix(), v)
}

// tuning holds the internal constants. They are a variable only so that the
// experiment harness in the tests can vary them; nothing changes them at run
// time. DETECTOR.md documents how each value was chosen.
type tuning struct {
	learning     int     // default learning period (values)
	cooldown     int     // default cooldown (values)
	alphaLevel   float64 // smoothing of the level, per value
	alphaScale   float64 // smoothing of the mean absolute error, per value
	seasonMemory float64 // memory of a seasonal profile slot, in periods
	selMargin    float64 // a seasonal model must have error < selMargin * simpler model's
	clip         float64 // residuals are clipped at clip*sigma before they are learned
	alphaLik     float64 // smoothing of the long-term distribution of the averaged surprisal
	likVarFloor  float64 // minimum variance of the averaged surprisal
	rawCap       float64 // surprisal cap (nats) of one value
	alphaLong    float64 // smoothing of the long (exponential) surprisal average; 0 disables
	spatial      float64 // out-of-range tolerance as a fraction of the range seen; 0 disables
	likStart     int
	spatialZ     float64 // an out-of-range value must also be this many sigmas from expected
	scaleFloor   float64 // floor of the scale relative to 1+|expected|
	minLearn     int     // fewest values before a series may be scored
	minSpan      float64 // ... and the span (seconds) they must cover, unless LearningPeriod is reached first
	earlyWiden   float64 // sigma is widened by 1+earlyWiden*sqrt(settle/n-1) while n < settle values are seen
	settle       int
	likWarm      float64 // the likelihood statistics learn at least at likWarm/values seen
	likPrior     bool    // the likelihood statistics start at their values for a calibrated model
	likMu0       float64 // first value of the long-term mean of the short average (0: the first average)
	longMu0      float64 // first value of the long-term mean of the long average (0: the first average)
	learnWiden   float64 // the surprisal's deviation is divided by 1+learnWiden*sqrt(settle/n-1) while n < settle
	// Experiments on the start of the likelihood statistics (round 3 of
	// #15, DETECTOR.md; all off by default, none kept):
	likK    float64 // the fixed start weighs likK values: the statistics learn at >= 1/(n-1+likK)
	likVar0 float64 // start of the variances (instead of 0)
}

var tune = tuning{
	learning:     300,
	cooldown:     50,
	alphaLevel:   0.03,
	alphaScale:   0.01,
	seasonMemory: 3,
	selMargin:    0.85,
	clip:         3,
	alphaLik:     1.0 / 2000,
	likVarFloor:  1e-4,
	rawCap:       20,
	alphaLong:    0.01,
	spatial:      0.05,
	spatialZ:     3,
	scaleFloor:   1e-6,
	minLearn:     14,
	minSpan:      4 * secondsPerDay,
	earlyWiden:   0.5,
	settle:       300,
	likWarm:      0,
	likMu0:       1.0 / likWindow, // a window holding one capped surprisal
	longMu0:      0.01,            // = alphaLong: the long average after one capped surprisal
	learnWiden:   0.25,
}

const (
	daySlots     = 96     // 15-minute time-of-day profile
	weekSlots    = 7 * 12 // 2-hour time-of-week profile
	likWindow    = 10     // short window of the surprisal average
	stateVersion = 1

	secondsPerDay = 86400
	// sigmaPerMAE converts a mean absolute error to a normal standard deviation.
	sigmaPerMAE = 1.2533141373155003 // sqrt(pi/2)
	// maxAbsValue: values of larger magnitude are treated like NaN (they would
	// overflow the squared residuals).
	maxAbsValue = 1e150
)

const (
	modelNone = iota
	modelDaily
	modelWeekly
	nModels
)

// State is the fixed-size state of one series: 904 bytes, no pointers, maps
// or slices, so copying it copies the series. The zero value is a series that
// has seen nothing. Persist it with MarshalBinary / UnmarshalBinary.
type State struct {
	n      int64   // finite values learned
	lastTS int64   // unix seconds of the last value
	dt     float64 // smoothed sampling interval (seconds)

	level [nModels]float64 // level of each model
	err   [nModels]float64 // smoothed absolute one-step error of each model

	sel    uint8 // model in use (Seasonality auto)
	ringAt uint8 // next slot of ring
	_      [2]uint8
	cool   int32 // cooldown values left

	rawSum  float64 // sum of ring
	likMu   float64 // long-term mean of the short surprisal average
	likVar  float64 // long-term variance of the short surprisal average
	long    float64 // long exponential average of the surprisal
	longMu  float64 // long-term mean of long
	longVar float64 // long-term variance of long
	min     float64 // smallest value seen
	max     float64 // largest value seen

	ring   [likWindow]float32 // last surprisals (scaled to [0,1])
	daily  [daySlots]float32  // time-of-day offsets from the level (NaN: unseen)
	weekly [weekSlots]float32 // time-of-week offsets from the level (NaN: unseen)
}

// Ready reports whether the series has learned enough to be scored: it has
// seen LearningPeriod values, or at least 14 values covering at least 4 days
// (so that a daily series is scored after two weeks and an hourly one after
// four days, while a 5-minute series still learns LearningPeriod values).
func (s *State) Ready(c *Config) bool {
	return s.n >= int64(c.LearningPeriod) ||
		(s.n >= int64(tune.minLearn) && float64(s.n)*s.dt >= tune.minSpan)
}

// Count returns the number of finite values the series has learned from.
func (s *State) Count() int64 { return s.n }

func slotPos(ts, period int64, slots int) (i0, i1 int, w float32) {
	sec := ts % period
	if sec < 0 {
		sec += period
	}
	p := float64(sec)/float64(period)*float64(slots) - 0.5
	if p < 0 {
		p += float64(slots)
	}
	f := math.Floor(p)
	i0 = int(f) % slots
	i1 = (i0 + 1) % slots
	return i0, i1, float32(p - f)
}

// interp interpolates linearly between two profile slots; unseen slots count
// as the other one, or 0.
func interp(a, b, w float32) float64 {
	an, bn := a != a, b != b
	switch {
	case an && bn:
		return 0
	case an:
		return float64(b)
	case bn:
		return float64(a)
	}
	return float64(a + (b-a)*w)
}

func directional(d Direction, z float64) float64 {
	switch d {
	case DirectionUp:
		return math.Max(z, 0)
	case DirectionDown:
		return math.Max(-z, 0)
	}
	return math.Abs(z)
}

// Update scores v observed at unix second ts against what the state learned
// from earlier values, then learns from v. Values that are not finite (or of
// magnitude above 1e150) are scored 0 and not learned. It does not allocate.
func (s *State) Update(c *Config, ts int64, v float64) Result {
	if s.n == 0 {
		s.reset()
	}
	if math.IsNaN(v) || math.Abs(v) > maxAbsValue {
		e := s.level[s.sel]
		return Result{Expected: e, Lower: e, Upper: e}
	}
	if s.n == 0 {
		for m := range s.level {
			s.level[m] = v
		}
		s.lastTS = ts
		s.min, s.max = v, v
		if tune.likPrior {
			s.priorLik()
		}
		s.n = 1
		return Result{Expected: v, Lower: v, Upper: v, Ready: s.Ready(c)}
	}
	if d := ts - s.lastTS; d > 0 {
		if s.dt == 0 {
			s.dt = float64(d)
		} else {
			s.dt += 0.05 * (float64(d) - s.dt)
		}
		s.lastTS = ts
	}

	// predictions of the three models
	d0, d1, dw := slotPos(ts, secondsPerDay, daySlots)
	// +3 days: weeks start on Monday (1970-01-01 was a Thursday)
	w0, w1, ww := slotPos(ts+3*secondsPerDay, 7*secondsPerDay, weekSlots)
	var pred [nModels]float64
	pred[modelNone] = s.level[modelNone]
	pred[modelDaily] = s.level[modelDaily] + interp(s.daily[d0], s.daily[d1], dw)
	pred[modelWeekly] = s.level[modelWeekly] + interp(s.weekly[w0], s.weekly[w1], ww)

	m := int(s.sel)
	seasonOK := s.dt > 0 && s.dt <= 4*3600 // profiles need sub-4h sampling
	switch {
	case c.Seasonality == SeasonalityNone || (!seasonOK && c.Seasonality != SeasonalityAuto):
		m = modelNone
	case c.Seasonality == SeasonalityDaily:
		m = modelDaily
	case c.Seasonality == SeasonalityWeekly:
		m = modelWeekly
	}
	expected := pred[m]
	r := v - expected
	sigma := sigmaPerMAE * math.Max(s.err[m], tune.scaleFloor*(1+math.Abs(expected)))
	zd := directional(c.Direction, r/sigma)
	// While few values are seen, the statistics are uncertain: the band and
	// the score's deviations are widened by wide, which narrows to 1 at
	// settle values. (What is learned is not widened.)
	wide := 1.0
	if s.n < int64(tune.settle) {
		wide += tune.earlyWiden * math.Sqrt(float64(tune.settle)/float64(s.n)-1)
	}

	// Surprisal of this value, averaged over a short and a long window (the
	// likelihood statistics learn these averages). While few values are seen
	// the deviation is discounted, so that the uncertain early errors weigh
	// less in what the statistics remember.
	zl := zd
	if tune.learnWiden > 0 && s.n < int64(tune.settle) {
		zl /= 1 + tune.learnWiden*math.Sqrt(float64(tune.settle)/float64(s.n)-1)
	}
	raw := surprisal(zl) / tune.rawCap
	if raw > 1 {
		raw = 1
	}
	old := float64(s.ring[s.ringAt])
	s.ring[s.ringAt] = float32(raw)
	s.ringAt++
	if s.ringAt >= likWindow {
		s.ringAt = 0
	}
	s.rawSum += raw - old
	avg := s.rawSum / likWindow
	long := s.long + tune.alphaLong*(raw-s.long)
	zS := (avg - s.likMu) / (wide * math.Sqrt(math.Max(s.likVar, tune.likVarFloor)))
	zL := (long - s.longMu) / (wide * math.Sqrt(math.Max(s.longVar, tune.likVarFloor)))
	score := tailScore(zS)
	if tune.alphaLong > 0 {
		score = math.Max(score, tailScore(zL))
	}
	// a value beyond the range seen so far (with a tolerance) is anomalous
	if tune.spatial > 0 && s.max > s.min && zd >= wide*tune.spatialZ {
		tol := tune.spatial * (s.max - s.min)
		if (v > s.max+tol && c.Direction != DirectionDown) || (v < s.min-tol && c.Direction != DirectionUp) {
			score = 1
		}
	}

	ready := s.Ready(c)
	if !ready || !(score >= 0) {
		score = 0
	} else if score > 1 {
		score = 1
	}
	k := (2 + 4*(1-c.Sensitivity)) * wide
	res := Result{Score: score, Expected: expected, Lower: expected - k*sigma, Upper: expected + k*sigma, Ready: ready}
	if s.cool > 0 {
		// one incident, one alert
		s.cool--
		res.Score = 0
	} else if ready && score >= c.Threshold() {
		if c.MinRelativeChange > 0 && math.Abs(r) < c.MinRelativeChange*math.Abs(expected) {
			res.Score = math.Nextafter(c.Threshold(), 0)
		} else {
			res.Anomaly = true
			s.cool = int32(c.Cooldown)
		}
	}

	// learn
	al, nl := tune.alphaLik, s.n
	if tune.likStart > 0 {
		nl = s.n - int64(tune.likStart) + 1
		al = math.Max(al, 1/float64(max(nl, 1)))
	}
	if tune.likWarm > 0 {
		al = math.Max(al, tune.likWarm/float64(s.n))
	}
	if tune.likK > 0 {
		al = math.Max(al, 1/(float64(s.n-1)+tune.likK))
	}
	if tune.likPrior {
		nl = 2 // the statistics start from their prior, not from the first value
	}
	s.likMu, s.likVar = ewStats(s.likMu, s.likVar, avg, al, nl)
	s.longMu, s.longVar = ewStats(s.longMu, s.longVar, long, al, nl)
	if nl <= 1 {
		// The long-term means start where a two-sided detector's first
		// averages are (the second value of a series meets an error scale
		// of 0, so its surprisal is the cap), whatever the direction and
		// the first residual. They forget slowly (alphaLik): starting from
		// the first averages themselves, a one-sided detector started at 0
		// or at the cap by the sign of one residual, and from 0 it was
		// over-sensitive for thousands of values.
		if tune.likMu0 > 0 {
			s.likMu = tune.likMu0
		}
		if tune.longMu0 > 0 {
			s.longMu = tune.longMu0
		}
		s.likVar, s.longVar = tune.likVar0, tune.likVar0
	}
	s.long = long
	s.min, s.max = math.Min(s.min, v), math.Max(s.max, v)
	s.learnModels(v, &pred, d0, d1, dw, w0, w1, ww)
	s.n++
	if !s.finite() {
		s.reset()
	}
	return res
}

// priorLik starts the likelihood statistics where they are for a model whose
// residuals are what it expects: the surprisal -ln P(|Z| >= |z|) of a
// calibrated value is Exp(1)-distributed (mean 1, variance 1 nat²), so the
// scaled surprisal has mean and variance 1/rawCap and 1/rawCap², its 10-value
// mean the variance 1/(10*rawCap²), its exponential average (alpha a) the
// variance a/(2-a)/rawCap². Starting here (instead of at the first, often
// inflated, values) a short series is judged against sensible statistics
// from its first days.
func (s *State) priorLik() {
	m := 1 / tune.rawCap
	v := m * m
	for i := range s.ring {
		s.ring[i] = float32(m)
	}
	s.rawSum = likWindow * m
	s.likMu, s.likVar = m, v/likWindow
	s.long, s.longMu = m, m
	s.longVar = v * tune.alphaLong / (2 - tune.alphaLong)
}

// ewStats updates an exponentially weighted mean and variance.
func ewStats(mu, vr, x, a float64, n int64) (float64, float64) {
	if n <= 1 {
		return x, 0
	}
	d := x - mu
	return mu + a*d, (1 - a) * (vr + a*d*d)
}

func (s *State) learnModels(v float64, pred *[nModels]float64, d0, d1 int, dw float32, w0, w1 int, ww float32) {
	for m := 0; m < nModels; m++ {
		r := v - pred[m]
		if s.n < 10 {
			// warm-up: plain average of the absolute error
			s.err[m] += (math.Abs(r) - s.err[m]) / float64(s.n+1)
		} else {
			// Huber-style clipping keeps spikes out of the baseline; a level
			// shift is still followed, at alphaLevel*clip*sigma per value.
			lim := tune.clip * sigmaPerMAE * math.Max(s.err[m], tune.scaleFloor*(1+math.Abs(pred[m])))
			r = math.Max(-lim, math.Min(lim, r))
			s.err[m] += tune.alphaScale * (math.Abs(r) - s.err[m])
		}
		s.level[m] += tune.alphaLevel * r
	}
	if s.dt > 0 {
		// a slot learns with memory seasonMemory periods whatever the sampling
		bd := float32(1 / (tune.seasonMemory * math.Max(secondsPerDay/daySlots/s.dt, 1)))
		bw := float32(1 / (tune.seasonMemory * math.Max(7*secondsPerDay/weekSlots/s.dt, 1)))
		od := float32(v - s.level[modelDaily])
		ow := float32(v - s.level[modelWeekly])
		updSlot(&s.daily[d0], od, bd*(1-dw))
		updSlot(&s.daily[d1], od, bd*dw)
		updSlot(&s.weekly[w0], ow, bw*(1-ww))
		updSlot(&s.weekly[w1], ow, bw*ww)
	}
	// model selection: a seasonal model needs two periods of data and must
	// beat the simpler model by a margin.
	span := float64(s.n) * s.dt
	sel := modelNone
	if s.dt <= 4*3600 {
		if span > 2*secondsPerDay && s.err[modelDaily] < tune.selMargin*s.err[modelNone] {
			sel = modelDaily
		}
		if span > 14*secondsPerDay && s.err[modelWeekly] < tune.selMargin*s.err[sel] {
			sel = modelWeekly
		}
	}
	s.sel = uint8(sel)
}

func updSlot(p *float32, target, b float32) {
	if *p != *p {
		if b > 0 {
			*p = target
		}
		return
	}
	*p += min(b, 1) * (target - *p)
}

func (s *State) reset() {
	*s = State{}
	nan := float32(math.NaN())
	for i := range s.daily {
		s.daily[i] = nan
	}
	for i := range s.weekly {
		s.weekly[i] = nan
	}
}

func (s *State) finite() bool {
	x := s.dt + s.rawSum + s.likMu + s.likVar + s.long + s.longMu + s.longVar + s.min + s.max
	for m := 0; m < nModels; m++ {
		x += s.level[m] + s.err[m]
	}
	return !math.IsNaN(x) && !math.IsInf(x, 0)
}

// surprisal returns -ln P(|Z| >= z) for a standard normal Z.
func surprisal(z float64) float64 {
	if z < 8 {
		return -math.Log(math.Erfc(z / math.Sqrt2))
	}
	// Mills ratio asymptote: P(|Z|>=z) ~ 2 phi(z)/z
	return z*z/2 + math.Log(z*math.Sqrt(math.Pi/2))
}

// tailScore maps a standardised deviation of an averaged surprisal to a
// score: -log10 of its upper-tail probability over 10, capped at 1, so that a
// tail probability of 1e-5 scores 0.5 (Numenta's log-likelihood scale).
func tailScore(z float64) float64 {
	if !(z > 0) {
		return 0
	}
	var lq float64 // log10 P(Z >= z)
	if z < 8 {
		lq = math.Log10(0.5 * math.Erfc(z/math.Sqrt2))
	} else {
		lq = (-z*z/2 - math.Log(z*math.Sqrt(2*math.Pi))) / math.Ln10
	}
	return math.Min(1, -lq/10)
}
