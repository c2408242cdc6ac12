package detector

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// binary layout (little endian), version 1:
//
//	magic "AD" | version u8 | n i64 | lastTS i64 | dt f64 | level [3]f64 |
//	err [3]f64 | sel u8 | ringAt u8 | cool i32 | rawSum likMu likVar long
//	longMu longVar min max f64 | ring [10]f32 | daily [96]f32 | weekly [84]f32
const encodedSize = 3 + 8*3 + 8*nModels*2 + 2 + 4 + 8*8 + 4*(likWindow+daySlots+weekSlots)

var errShort = errors.New("detector: truncated state")

// MarshalBinary encodes the state (versioned, fixed size).
func (s *State) MarshalBinary() ([]byte, error) {
	return s.AppendBinary(make([]byte, 0, encodedSize))
}

// AppendBinary appends the encoding of MarshalBinary to b.
func (s *State) AppendBinary(b []byte) ([]byte, error) {
	le := binary.LittleEndian
	b = append(b, 'A', 'D', stateVersion)
	b = le.AppendUint64(b, uint64(s.n))
	b = le.AppendUint64(b, uint64(s.lastTS))
	f64 := func(x float64) { b = le.AppendUint64(b, math.Float64bits(x)) }
	f64(s.dt)
	for _, x := range s.level {
		f64(x)
	}
	for _, x := range s.err {
		f64(x)
	}
	b = append(b, s.sel, s.ringAt)
	b = le.AppendUint32(b, uint32(s.cool))
	for _, x := range [...]float64{s.rawSum, s.likMu, s.likVar, s.long, s.longMu, s.longVar, s.min, s.max} {
		f64(x)
	}
	for _, x := range s.ring {
		b = le.AppendUint32(b, math.Float32bits(x))
	}
	for _, x := range s.daily {
		b = le.AppendUint32(b, math.Float32bits(x))
	}
	for _, x := range s.weekly {
		b = le.AppendUint32(b, math.Float32bits(x))
	}
	return b, nil
}

// UnmarshalBinary restores a state encoded by MarshalBinary. On error the
// state is left unchanged.
func (s *State) UnmarshalBinary(data []byte) error {
	if len(data) < 3 || data[0] != 'A' || data[1] != 'D' {
		return errors.New("detector: not an encoded detector state")
	}
	if data[2] != stateVersion {
		return fmt.Errorf("detector: unsupported state version %d (want %d)", data[2], stateVersion)
	}
	if len(data) != encodedSize {
		if len(data) < encodedSize {
			return errShort
		}
		return fmt.Errorf("detector: state has %d bytes, want %d", len(data), encodedSize)
	}
	le := binary.LittleEndian
	p := data[3:]
	u64 := func() uint64 { x := le.Uint64(p); p = p[8:]; return x }
	f64 := func() float64 { return math.Float64frombits(u64()) }
	f32 := func() float32 { x := math.Float32frombits(le.Uint32(p)); p = p[4:]; return x }
	var t State
	t.n = int64(u64())
	t.lastTS = int64(u64())
	t.dt = f64()
	for i := range t.level {
		t.level[i] = f64()
	}
	for i := range t.err {
		t.err[i] = f64()
	}
	t.sel, t.ringAt = p[0], p[1]
	p = p[2:]
	t.cool = int32(le.Uint32(p))
	p = p[4:]
	for _, x := range []*float64{&t.rawSum, &t.likMu, &t.likVar, &t.long, &t.longMu, &t.longVar, &t.min, &t.max} {
		*x = f64()
	}
	for i := range t.ring {
		t.ring[i] = f32()
	}
	for i := range t.daily {
		t.daily[i] = f32()
	}
	for i := range t.weekly {
		t.weekly[i] = f32()
	}
	if t.n < 0 || t.sel >= nModels || t.ringAt >= likWindow || t.cool < 0 || !t.finite() {
		return errors.New("detector: corrupt state")
	}
	*s = t
	return nil
}
