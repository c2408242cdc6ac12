package aggregation

import "math"

// Compact holds what one Func needs of a State: 32 bytes instead of 96. A
// holder that only ever asks one function — an aggregate processor window,
// whose function is part of its identity — keeps a Compact and saves two
// thirds of the state's memory. The rules stay State's (Add shares
// its acceptance of points and its order of points, and Value is State's), so
// a Compact answers exactly what a State fed the same points answers for
// that function (TestCompactAnswersLikeState).
//
// Which fields hold what, by function:
//
//	Sum      count, a = sum
//	Count    count
//	Min/Max  count, a = min or max
//	First    count, a = value, b = timestamp, c = arrival sequence
//	Last     count, a = value, b = timestamp, c = arrival sequence
//	Average  count, a = sum(v*w), b = bits of sum(w)
type Compact struct {
	count uint64
	a     float64
	b     uint64
	c     uint64
}

// CompactOf keeps what f needs of s.
func CompactOf(f Func, s State) Compact {
	c := Compact{count: s.count}
	switch f {
	case Sum:
		c.a = s.sum
	case Min:
		c.a = s.min
	case Max:
		c.a = s.max
	case First:
		c.a, c.b, c.c = s.firstV, uint64(s.firstTs), s.firstSeq
	case Last:
		c.a, c.b, c.c = s.lastV, uint64(s.lastTs), s.lastSeq
	case Average:
		c.a, c.b = s.sumVW, math.Float64bits(s.sumW)
	}
	return c
}

// State returns a State that answers f (and adds points for f) as the one
// c was taken from. The fields f does not need are filled so that the State
// is a valid one (it passes DecodeState): min, max, first and last all hold
// the point f keeps, if any, else zero.
func (c Compact) State(f Func) State {
	s := State{count: c.count}
	if c.count == 0 {
		return s
	}
	switch f {
	case Sum:
		s.sum = c.a
	case Min, Max:
		s.min, s.max, s.firstV, s.lastV = c.a, c.a, c.a, c.a
	case First, Last:
		s.min, s.max = c.a, c.a
		s.firstV, s.firstTs, s.firstSeq = c.a, int64(c.b), c.c
		s.lastV, s.lastTs, s.lastSeq = c.a, int64(c.b), c.c
	case Average:
		s.sumVW, s.sumW = c.a, math.Float64frombits(c.b)
	}
	return s
}

// Add records a point for f, as State.Add does (false: rejected, unchanged):
// the same acceptance and the same order of points, on f's fields only.
func (c *Compact) Add(f Func, v, w float64, tsNanos int64, seq uint64) bool {
	vw, ok := accept(v, w)
	if !ok {
		return false
	}
	first := c.count == 0
	c.count++
	switch f {
	case Sum:
		c.a += v
	case Min:
		if first {
			c.a = v
		}
		c.a = min(c.a, v)
	case Max:
		if first {
			c.a = v
		}
		c.a = max(c.a, v)
	case First:
		if first || before(tsNanos, seq, v, int64(c.b), c.c, c.a) {
			c.a, c.b, c.c = v, uint64(tsNanos), seq
		}
	case Last:
		if first || before(int64(c.b), c.c, c.a, tsNanos, seq, v) {
			c.a, c.b, c.c = v, uint64(tsNanos), seq
		}
	case Average:
		c.a += vw
		c.b = math.Float64bits(math.Float64frombits(c.b) + w)
	}
	return true
}

// Value returns f of the points added, as State.Value does.
func (c Compact) Value(f Func) float64 {
	s := c.State(f)
	return s.Value(f)
}

// Count returns the number of accepted points.
func (c Compact) Count() uint64 { return c.count }

// Merge folds o (kept for the same f) into c, as State.Merge does for f.
func (c *Compact) Merge(f Func, o Compact) {
	if o.count == 0 {
		return
	}
	if c.count == 0 {
		*c = o
		return
	}
	c.count += o.count
	switch f {
	case Sum:
		c.a += o.a
	case Min:
		c.a = min(c.a, o.a)
	case Max:
		c.a = max(c.a, o.a)
	case First:
		if before(int64(o.b), o.c, o.a, int64(c.b), c.c, c.a) {
			c.a, c.b, c.c = o.a, o.b, o.c
		}
	case Last:
		if before(int64(c.b), c.c, c.a, int64(o.b), o.c, o.a) {
			c.a, c.b, c.c = o.a, o.b, o.c
		}
	case Average:
		c.a += o.a
		c.b = math.Float64bits(math.Float64frombits(c.b) + math.Float64frombits(o.b))
	}
}

// Finite reports whether c has a finite figure for f, or no points: what a
// window may hold. Only Sum and Average can leave the finite range (a sum
// overflows; an Average whose weights sum to 0 has no figure); the other
// functions answer one of their finite inputs, or a count.
func (c Compact) Finite(f Func) bool {
	if c.count == 0 {
		return true
	}
	switch f {
	case Sum:
		return c.a-c.a == 0
	case Average:
		w := math.Float64frombits(c.b)
		return c.a-c.a == 0 && w-w == 0 && w > 0
	}
	return true
}

// Fields is a Compact's content, for stores that merge states themselves
// (internal/pgwindows merges them in PostgreSQL's upserts). Which field holds
// what depends on the function: see Compact.
type Fields struct {
	Count uint64
	A     float64
	B, C  uint64
}

// Fields returns c's content.
func (c Compact) Fields() Fields { return Fields{Count: c.count, A: c.a, B: c.b, C: c.c} }

// CompactOfFields returns the Compact whose content is f.
func CompactOfFields(f Fields) Compact { return Compact{count: f.Count, a: f.A, b: f.B, c: f.C} }

// OrderKey maps v to an integer with the order that breaks ties between
// First/Last points of equal timestamp and arrival sequence (-0 < +0), so a
// store can compare points as Merge does.
func OrderKey(v float64) uint64 { return floatKey(v) }
