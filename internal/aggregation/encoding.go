package aggregation

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Binary layout, version 1 (EncodedSize bytes): a version byte followed by
// twelve little-endian 8-byte fields in declaration order: count, sum, min,
// max, first value, first timestamp, first sequence, last value, last
// timestamp, last sequence, sum(v*w), sum(w). Floats are IEEE-754 bits, so
// the round trip is bit-exact. A new layout must use a new version byte.
const (
	EncodingVersion = 1
	EncodedSize     = 1 + 12*8
)

// Decoding errors; test with errors.Is.
var (
	ErrTruncated = errors.New("aggregation: encoded state has wrong length")
	ErrVersion   = errors.New("aggregation: unsupported encoded state version")
	ErrCorrupt   = errors.New("aggregation: encoded state violates invariants")
)

// AppendBinary appends the encoding of s to dst. It does not allocate when
// dst has EncodedSize bytes of spare capacity.
func (s *State) AppendBinary(dst []byte) []byte {
	le := binary.LittleEndian
	dst = append(dst, EncodingVersion)
	dst = le.AppendUint64(dst, s.count)
	dst = le.AppendUint64(dst, math.Float64bits(s.sum))
	dst = le.AppendUint64(dst, math.Float64bits(s.min))
	dst = le.AppendUint64(dst, math.Float64bits(s.max))
	dst = le.AppendUint64(dst, math.Float64bits(s.firstV))
	dst = le.AppendUint64(dst, uint64(s.firstTs))
	dst = le.AppendUint64(dst, s.firstSeq)
	dst = le.AppendUint64(dst, math.Float64bits(s.lastV))
	dst = le.AppendUint64(dst, uint64(s.lastTs))
	dst = le.AppendUint64(dst, s.lastSeq)
	dst = le.AppendUint64(dst, math.Float64bits(s.sumVW))
	dst = le.AppendUint64(dst, math.Float64bits(s.sumW))
	return dst
}

// MarshalBinary implements encoding.BinaryMarshaler.
func (s State) MarshalBinary() ([]byte, error) {
	return s.AppendBinary(make([]byte, 0, EncodedSize)), nil
}

// UnmarshalBinary implements encoding.BinaryUnmarshaler.
func (s *State) UnmarshalBinary(b []byte) error {
	v, err := DecodeState(b)
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// DecodeState decodes an AppendBinary encoding. It rejects input of the
// wrong length, an unknown version, or a state no sequence of Add/Merge
// could produce (e.g. min > max, NaN fields, a non-zero empty state), so a
// corrupt stored row fails loudly instead of poisoning later merges.
func DecodeState(b []byte) (State, error) {
	if len(b) != EncodedSize {
		if len(b) > 0 && b[0] != EncodingVersion {
			return State{}, fmt.Errorf("%w: %d", ErrVersion, b[0])
		}
		return State{}, fmt.Errorf("%w: got %d bytes, want %d", ErrTruncated, len(b), EncodedSize)
	}
	if b[0] != EncodingVersion {
		return State{}, fmt.Errorf("%w: %d", ErrVersion, b[0])
	}
	le := binary.LittleEndian
	u := func(i int) uint64 { return le.Uint64(b[1+8*i:]) }
	f := func(i int) float64 { return math.Float64frombits(u(i)) }
	s := State{
		count: u(0), sum: f(1), min: f(2), max: f(3),
		firstV: f(4), firstTs: int64(u(5)), firstSeq: u(6),
		lastV: f(7), lastTs: int64(u(8)), lastSeq: u(9),
		sumVW: f(10), sumW: f(11),
	}
	if err := s.validate(); err != nil {
		return State{}, err
	}
	return s, nil
}

func (s *State) validate() error {
	bad := func(why string) error { return fmt.Errorf("%w: %s", ErrCorrupt, why) }
	if s.count == 0 {
		if *s != (State{}) || math.Signbit(s.sum) || math.Signbit(s.min) || math.Signbit(s.max) ||
			math.Signbit(s.firstV) || math.Signbit(s.lastV) || math.Signbit(s.sumVW) || math.Signbit(s.sumW) {
			return bad("empty state with non-zero fields")
		}
		return nil
	}
	finite := func(x float64) bool { return x-x == 0 }
	if !finite(s.min) || !finite(s.max) || !finite(s.firstV) || !finite(s.lastV) {
		return bad("non-finite min/max/first/last")
	}
	// Sums may have overflowed to ±Inf but are never NaN.
	if math.IsNaN(s.sum) || math.IsNaN(s.sumVW) || math.IsNaN(s.sumW) || s.sumW < 0 {
		return bad("NaN sum or negative weight sum")
	}
	if s.min > s.max || s.firstV < s.min || s.firstV > s.max || s.lastV < s.min || s.lastV > s.max {
		return bad("first/last outside [min, max]")
	}
	if before(s.lastTs, s.lastSeq, s.lastV, s.firstTs, s.firstSeq, s.firstV) {
		return bad("last precedes first")
	}
	if s.count == 1 && (s.firstTs != s.lastTs || s.firstSeq != s.lastSeq ||
		math.Float64bits(s.firstV) != math.Float64bits(s.lastV) || s.min != s.max) {
		return bad("single-point state with distinct first and last")
	}
	return nil
}
