// Package aggregation implements the aggregation functions of custom metrics
// (Sum, Count, Min, Max, First, Last, weighted Average) over one mergeable
// State, shared by the receiver (ThreatConnect ?returnValue=true), the
// aggregate processor and the SQL exporter.
//
// Contract:
//   - A State is a fixed-size value (96 bytes, no pointers) that can answer
//     every Func, so the function can be chosen at read time and one state
//     serves several outputs. Its zero value is the empty state.
//   - Merge is exactly commutative and, for Count/Min/Max/First/Last,
//     exactly associative: merging partial states in any order or grouping
//     equals adding all points to one state. Sum and Average use float64
//     addition, which is exact (hence fully associative) while partial sums
//     are exactly representable, e.g. integer values below 2^53, and
//     otherwise differs only by rounding (relative error about n·2^-53).
//   - First/Last order points by (timestamp, arrival sequence); the caller
//     supplies a sequence number that increases with arrival. Points with the
//     same timestamp and sequence (a caller bug) are ordered by value so the
//     result is still deterministic and order-independent.
//   - Non-finite input is rejected, never absorbed: Add returns false and
//     leaves the state unchanged for NaN or ±Inf values or weights, negative
//     weights, or a v*w product that overflows. Sums of finite values can
//     still overflow to ±Inf (|sum| > 1.8e308); that is IEEE-754 behaviour,
//     visible in Value, and not silent corruption of the other fields.
//   - The binary encoding (AppendBinary/DecodeState) is versioned and
//     stable; decoding validates every invariant and never panics.
//
// A State is a plain value and not safe for concurrent mutation. A holder
// that only ever answers one function keeps a Compact (compact.go) instead.
package aggregation

import (
	"math"
)

// State is the mergeable summary of a set of data points. Field order keeps
// it at 12 words; every field is needed for an exact merge of all seven
// functions (count, sum, min, max, first/last value+timestamp+sequence,
// sum(v*w), sum(w)).
type State struct {
	count    uint64
	sum      float64
	min      float64
	max      float64
	firstV   float64
	firstTs  int64
	firstSeq uint64
	lastV    float64
	lastTs   int64
	lastSeq  uint64
	sumVW    float64
	sumW     float64
}

// Add records a point with value v, weight w (pass 1 when the source has no
// weight; 0 excludes the point from Average only), its own timestamp in Unix
// nanoseconds and its arrival sequence. It reports false, leaving the state
// unchanged, when the point is rejected (see package doc).
func (s *State) Add(v, w float64, tsNanos int64, seq uint64) bool {
	vw, ok := accept(v, w)
	if !ok {
		return false
	}
	if s.count == 0 {
		s.min, s.max = v, v
		s.firstV, s.firstTs, s.firstSeq = v, tsNanos, seq
		s.lastV, s.lastTs, s.lastSeq = v, tsNanos, seq
	} else {
		s.min = min(s.min, v)
		s.max = max(s.max, v)
		if before(tsNanos, seq, v, s.firstTs, s.firstSeq, s.firstV) {
			s.firstV, s.firstTs, s.firstSeq = v, tsNanos, seq
		}
		if before(s.lastTs, s.lastSeq, s.lastV, tsNanos, seq, v) {
			s.lastV, s.lastTs, s.lastSeq = v, tsNanos, seq
		}
	}
	s.count++
	s.sum += v
	s.sumVW += vw
	s.sumW += w
	return true
}

// Accepts reports whether a point with value v and weight w is taken by Add
// (finite value and weight, weight not negative, v*w not overflowing), so
// that a receiver can refuse what the aggregation would drop.
func Accepts(v, w float64) bool {
	_, ok := accept(v, w)
	return ok
}

// accept returns v*w, and whether the point is taken (see package doc).
func accept(v, w float64) (float64, bool) {
	vw := v * w
	// x-x is 0 for finite x and NaN for NaN/±Inf; vw covers overflow.
	return vw, v-v == 0 && w-w == 0 && vw-vw == 0 && w >= 0
}

// Merge folds o into s. It is commutative and associative (see package doc
// for the float rounding caveat on sums), so partial aggregates from
// different processes, batches or stored rows can be combined in any order.
func (s *State) Merge(o State) {
	if o.count == 0 {
		return
	}
	if s.count == 0 {
		*s = o
		return
	}
	s.count += o.count
	s.sum += o.sum
	s.min = min(s.min, o.min)
	s.max = max(s.max, o.max)
	if before(o.firstTs, o.firstSeq, o.firstV, s.firstTs, s.firstSeq, s.firstV) {
		s.firstV, s.firstTs, s.firstSeq = o.firstV, o.firstTs, o.firstSeq
	}
	if before(s.lastTs, s.lastSeq, s.lastV, o.lastTs, o.lastSeq, o.lastV) {
		s.lastV, s.lastTs, s.lastSeq = o.lastV, o.lastTs, o.lastSeq
	}
	s.sumVW += o.sumVW
	s.sumW += o.sumW
}

// before is the strict total order on points: timestamp, then arrival
// sequence, then value (total order on float bits, only for duplicate
// sequence numbers).
func before(ts1 int64, seq1 uint64, v1 float64, ts2 int64, seq2 uint64, v2 float64) bool {
	if ts1 != ts2 {
		return ts1 < ts2
	}
	if seq1 != seq2 {
		return seq1 < seq2
	}
	return floatKey(v1) < floatKey(v2)
}

// floatKey maps float64 bits to uint64 preserving numeric order, with
// -0 < +0 so that distinct bit patterns never tie.
func floatKey(f float64) uint64 {
	b := math.Float64bits(f)
	if b>>63 != 0 {
		return ^b
	}
	return b | 1<<63
}

// Value returns the statistic f of the state. On an empty state Sum and
// Count are 0 and the others NaN (undefined); Average is also NaN when every
// weight was 0. It panics on an invalid Func (validate config with
// ParseFunc).
func (s *State) Value(f Func) float64 {
	switch f {
	case Sum:
		return s.sum
	case Count:
		return float64(s.count)
	}
	if s.count == 0 {
		if !f.Valid() {
			panic("aggregation: invalid Func " + f.String())
		}
		return math.NaN()
	}
	switch f {
	case Min:
		return s.min
	case Max:
		return s.max
	case First:
		return s.firstV
	case Last:
		return s.lastV
	case Average:
		if s.sumW == 0 {
			return math.NaN()
		}
		return s.sumVW / s.sumW
	}
	panic("aggregation: invalid Func " + f.String())
}

// Count returns the number of accepted points.
func (s *State) Count() uint64 { return s.count }

// IsEmpty reports whether no point has been accepted.
func (s *State) IsEmpty() bool { return s.count == 0 }

// Reset empties the state for reuse without reallocation.
func (s *State) Reset() { *s = State{} }

// FirstPoint returns the first point (value, timestamp, sequence); ok is
// false on an empty state. Exporters use the timestamp as the point's time.
func (s *State) FirstPoint() (v float64, tsNanos int64, seq uint64, ok bool) {
	return s.firstV, s.firstTs, s.firstSeq, s.count != 0
}

// LastPoint returns the last point (value, timestamp, sequence); ok is false
// on an empty state.
func (s *State) LastPoint() (v float64, tsNanos int64, seq uint64, ok bool) {
	return s.lastV, s.lastTs, s.lastSeq, s.count != 0
}

// WeightSum returns sum(w), the Average denominator.
func (s *State) WeightSum() float64 { return s.sumW }
