package aggregation

import (
	"encoding"
	"errors"
	"math"
	"math/rand/v2"
	"testing"
	"unsafe"
)

var (
	_ encoding.TextUnmarshaler   = (*Func)(nil)
	_ encoding.BinaryMarshaler   = State{}
	_ encoding.BinaryUnmarshaler = (*State)(nil)
)

func TestParseFunc(t *testing.T) {
	for in, want := range map[string]Func{
		"sum": Sum, "Sum": Sum, "COUNT": Count, "Min": Min, "max": Max, "First": First,
		"last": Last, "Average": Average, "avg": Average, " AVG ": Average,
	} {
		got, err := ParseFunc(in)
		if err != nil || got != want {
			t.Errorf("ParseFunc(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "mean", "median", "sums"} {
		if _, err := ParseFunc(bad); err == nil {
			t.Errorf("ParseFunc(%q) succeeded", bad)
		}
	}
	for _, f := range Funcs {
		b, err := f.MarshalText()
		var back Func
		if err != nil || back.UnmarshalText(b) != nil || back != f || f.String() != string(b) {
			t.Errorf("round trip of %v failed", f)
		}
		if f.IsSum() != (f == Sum || f == Count) {
			t.Errorf("%v.IsSum() = %v", f, f.IsSum())
		}
	}
	if _, err := Func(0).MarshalText(); err == nil {
		t.Error("marshal of zero Func succeeded")
	}
}

func TestStateSize(t *testing.T) {
	if sz := unsafe.Sizeof(State{}); sz != 96 {
		t.Errorf("State is %d bytes, want 96", sz)
	}
}

type pt struct {
	v, w float64
	ts   int64
	seq  uint64
}

func addAll(pts []pt) State {
	var s State
	for _, p := range pts {
		if !s.Add(p.v, p.w, p.ts, p.seq) {
			panic("rejected")
		}
	}
	return s
}

func TestValueTable(t *testing.T) {
	nan := math.NaN()
	for _, tc := range []struct {
		name string
		pts  []pt
		want map[Func]float64
	}{
		{"empty", nil, map[Func]float64{Sum: 0, Count: 0, Min: nan, Max: nan, First: nan, Last: nan, Average: nan}},
		{"single", []pt{{5, 1, 10, 1}}, map[Func]float64{Sum: 5, Count: 1, Min: 5, Max: 5, First: 5, Last: 5, Average: 5}},
		{"out of order timestamps", []pt{{1, 1, 30, 1}, {2, 1, 10, 2}, {3, 1, 20, 3}},
			map[Func]float64{Sum: 6, Count: 3, Min: 1, Max: 3, First: 2, Last: 1, Average: 2}},
		{"timestamp ties by arrival", []pt{{7, 1, 10, 1}, {8, 1, 10, 2}, {9, 1, 10, 3}},
			map[Func]float64{First: 7, Last: 9}},
		{"tie, arrival seq not in call order", []pt{{8, 1, 10, 5}, {7, 1, 10, 4}, {9, 1, 10, 6}},
			map[Func]float64{First: 7, Last: 9}},
		{"weighted average", []pt{{10, 1, 1, 1}, {20, 3, 2, 2}},
			map[Func]float64{Average: 17.5, Sum: 30, Count: 2}},
		{"zero weights", []pt{{10, 0, 1, 1}}, map[Func]float64{Average: nan, Sum: 10, Count: 1}},
		{"negative values and pre-1970", []pt{{-3, 1, -5e18, 1}, {-1, 1, -4e18, 2}},
			map[Func]float64{Min: -3, Max: -1, First: -3, Last: -1, Sum: -4}},
		{"signed zeros", []pt{{0, 1, 1, 1}, {math.Copysign(0, -1), 1, 2, 2}},
			map[Func]float64{Min: math.Copysign(0, -1), Max: 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := addAll(tc.pts)
			for f, want := range tc.want {
				if got := s.Value(f); math.Float64bits(got) != math.Float64bits(want) && !(math.IsNaN(got) && math.IsNaN(want)) {
					t.Errorf("%v = %v, want %v", f, got, want)
				}
			}
			if s.IsEmpty() != (len(tc.pts) == 0) || s.Count() != uint64(len(tc.pts)) {
				t.Errorf("IsEmpty/Count wrong")
			}
		})
	}
}

func TestRejectNonFinite(t *testing.T) {
	var s State
	s.Add(1, 1, 1, 1)
	before := s
	for _, p := range []pt{
		{math.NaN(), 1, 2, 2}, {math.Inf(1), 1, 2, 2}, {math.Inf(-1), 1, 2, 2},
		{1, math.NaN(), 2, 2}, {1, math.Inf(1), 2, 2}, {1, -1, 2, 2},
		{1e200, 1e200, 2, 2}, // v*w overflows
	} {
		if s.Add(p.v, p.w, p.ts, p.seq) {
			t.Errorf("Add(%v, %v) accepted", p.v, p.w)
		}
		if s != before {
			t.Fatalf("rejected Add(%v, %v) modified the state", p.v, p.w)
		}
	}
	// Finite overflow of the sum is IEEE behaviour and stays visible.
	s.Add(math.MaxFloat64, 1, 3, 3)
	s.Add(math.MaxFloat64, 0, 4, 4)
	if !math.IsInf(s.Value(Sum), 1) || s.Value(Max) != math.MaxFloat64 || s.Count() != 3 {
		t.Errorf("overflowed state: %+v", s)
	}
}

func TestValueInvalidFuncPanics(t *testing.T) {
	for _, s := range []State{{}, addAll([]pt{{1, 1, 1, 1}})} {
		func() {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			s.Value(0)
		}()
	}
}

// naive recomputes every function straight from the definition.
func naive(pts []pt) map[Func]float64 {
	out := map[Func]float64{Count: float64(len(pts)), Sum: 0}
	if len(pts) == 0 {
		return out
	}
	var sum, svw, sw float64
	mn, mx := pts[0].v, pts[0].v
	first, last := pts[0], pts[0]
	// pts are in arrival order (seq increasing): the first with the minimal
	// timestamp and the last with the maximal one win.
	for _, p := range pts {
		sum += p.v
		svw += p.v * p.w
		sw += p.w
		mn, mx = min(mn, p.v), max(mx, p.v)
		if p.ts < first.ts {
			first = p
		}
		if p.ts >= last.ts {
			last = p
		}
	}
	out[Sum], out[Min], out[Max], out[First], out[Last] = sum, mn, mx, first.v, last.v
	out[Average] = svw / sw
	return out
}

func randomStream(rng *rand.Rand, n int, integral bool) []pt {
	pts := make([]pt, n)
	seq := rng.Uint64N(1 << 40)
	for i := range pts {
		seq += 1 + rng.Uint64N(3)
		var v, w float64
		if integral {
			v, w = float64(rng.IntN(2001)-1000), float64(1+rng.IntN(4))
		} else {
			v, w = rng.NormFloat64()*math.Pow(10, float64(rng.IntN(12)-6)), rng.Float64()*3
		}
		// Few distinct timestamps so ties are common; some pre-1970.
		pts[i] = pt{v, w, int64(rng.IntN(20)-5) * 1e9, seq}
	}
	return pts
}

// mergeRandomly partitions pts into k partial states (arbitrary, non-
// contiguous assignment) and merges them with random order and grouping.
func mergeRandomly(rng *rand.Rand, pts []pt, k int) State {
	parts := make([]State, k)
	for _, p := range pts {
		parts[rng.IntN(k)].Add(p.v, p.w, p.ts, p.seq)
	}
	for len(parts) > 1 {
		i, j := rng.IntN(len(parts)), rng.IntN(len(parts)-1)
		if j >= i {
			j++
		}
		parts[i].Merge(parts[j])
		parts[j] = parts[len(parts)-1]
		parts = parts[:len(parts)-1]
	}
	return parts[0]
}

func TestMergeMatchesNaiveIntegral(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for iter := range 2000 {
		pts := randomStream(rng, rng.IntN(60), true)
		one := addAll(pts)
		merged := mergeRandomly(rng, pts, 1+rng.IntN(8))
		if merged != one {
			t.Fatalf("iter %d: merged %+v != sequential %+v", iter, merged, one)
		}
		want := naive(pts)
		for _, f := range Funcs {
			got := merged.Value(f)
			if w, ok := want[f]; ok && got != w && !(len(pts) == 0 && math.IsNaN(got)) {
				t.Fatalf("iter %d: %v = %v, naive %v", iter, f, got, w)
			}
		}
	}
}

func TestMergeMatchesNaiveReal(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	for iter := range 2000 {
		pts := randomStream(rng, 1+rng.IntN(60), false)
		merged := mergeRandomly(rng, pts, 1+rng.IntN(8))
		want := naive(pts)
		var absSum, absVW, sumW float64
		for _, p := range pts {
			absSum += math.Abs(p.v)
			absVW += math.Abs(p.v * p.w)
			sumW += p.w
		}
		tol := map[Func]float64{Sum: 1e-13 * absSum, Average: 1e-13 * absVW / sumW}
		for _, f := range Funcs {
			got, w := merged.Value(f), want[f]
			if math.Abs(got-w) > tol[f] { // tol is 0 (exact) for the other functions
				t.Fatalf("iter %d: %v = %v, naive %v (tol %g)", iter, f, got, w, tol[f])
			}
		}
	}
}

func TestMergeCommutativeBitExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	for range 2000 {
		a := addAll(randomStream(rng, rng.IntN(10), false))
		b := addAll(randomStream(rng, rng.IntN(10), false))
		ab, ba := a, b
		ab.Merge(b)
		ba.Merge(a)
		if ab != ba {
			t.Fatalf("a+b %+v != b+a %+v", ab, ba)
		}
	}
	// Duplicate (timestamp, seq) pairs still merge deterministically.
	x, y := addAll([]pt{{1, 1, 5, 5}}), addAll([]pt{{2, 1, 5, 5}})
	xy, yx := x, y
	xy.Merge(y)
	yx.Merge(x)
	if xy != yx || xy.Value(First) != 1 || xy.Value(Last) != 2 {
		t.Fatalf("duplicate keys: %+v vs %+v", xy, yx)
	}
}

func TestMergeEmpty(t *testing.T) {
	s := addAll([]pt{{3, 2, 1, 1}, {4, 1, 2, 2}})
	c := s
	c.Merge(State{})
	var e State
	e.Merge(s)
	if c != s || e != s {
		t.Fatal("merging with empty changed the state")
	}
	c.Reset()
	if !c.IsEmpty() || c != (State{}) {
		t.Fatal("Reset did not empty")
	}
}

func TestEncodingRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(10, 10))
	for range 1000 {
		s := addAll(randomStream(rng, rng.IntN(20), rng.IntN(2) == 0))
		b := s.AppendBinary(nil)
		if len(b) != EncodedSize || b[0] != EncodingVersion {
			t.Fatalf("encoding length %d", len(b))
		}
		got, err := DecodeState(b)
		if err != nil || got != s {
			t.Fatalf("round trip: %v %+v != %+v", err, got, s)
		}
		var u State
		mb, _ := s.MarshalBinary()
		if err := u.UnmarshalBinary(mb); err != nil || u != s {
			t.Fatalf("Marshal/UnmarshalBinary: %v", err)
		}
	}
	// Appends after existing bytes.
	prefix := []byte("key:")
	one := addAll([]pt{{1, 1, 1, 1}})
	out := one.AppendBinary(prefix)
	if string(out[:4]) != "key:" || len(out) != 4+EncodedSize {
		t.Fatal("AppendBinary clobbered the prefix")
	}
}

// TestEncodingGolden pins the byte layout: stored rows must stay readable.
func TestEncodingGolden(t *testing.T) {
	s := addAll([]pt{{2, 1, 100, 7}, {-1, 3, 50, 8}})
	b := s.AppendBinary(nil)
	want := "01" + "0200000000000000" + "000000000000f03f" + "000000000000f0bf" + "0000000000000040" +
		"000000000000f0bf" + "3200000000000000" + "0800000000000000" +
		"0000000000000040" + "6400000000000000" + "0700000000000000" +
		"000000000000f0bf" + "0000000000001040"
	if got := hexString(b); got != want {
		t.Fatalf("layout changed:\n got %s\nwant %s", got, want)
	}
}

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

func TestDecodeRejects(t *testing.T) {
	g := addAll([]pt{{2, 1, 100, 7}, {-1, 3, 50, 8}})
	good := g.AppendBinary(nil)
	mut := func(f func(b []byte)) []byte {
		b := append([]byte(nil), good...)
		f(b)
		return b
	}
	setF := func(b []byte, field int, v float64) {
		bits := math.Float64bits(v)
		for i := range 8 {
			b[1+8*field+i] = byte(bits >> (8 * i))
		}
	}
	for name, tc := range map[string]struct {
		in   []byte
		want error
	}{
		"nil":           {nil, ErrTruncated},
		"version only":  {[]byte{1}, ErrTruncated},
		"truncated":     {good[:EncodedSize-1], ErrTruncated},
		"trailing":      {append(append([]byte(nil), good...), 0), ErrTruncated},
		"version 0":     {mut(func(b []byte) { b[0] = 0 }), ErrVersion},
		"version 2":     {mut(func(b []byte) { b[0] = 2 }), ErrVersion},
		"short v2":      {[]byte{2, 0}, ErrVersion},
		"NaN min":       {mut(func(b []byte) { setF(b, 2, math.NaN()) }), ErrCorrupt},
		"min > max":     {mut(func(b []byte) { setF(b, 2, 5) }), ErrCorrupt},
		"first > max":   {mut(func(b []byte) { setF(b, 4, 9) }), ErrCorrupt},
		"NaN sum":       {mut(func(b []byte) { setF(b, 1, math.NaN()) }), ErrCorrupt},
		"negative sumW": {mut(func(b []byte) { setF(b, 11, -1) }), ErrCorrupt},
		"last < first":  {mut(func(b []byte) { b[1+8*8] = 0 }), ErrCorrupt},
		"empty garbage": {mut(func(b []byte) { b[1] = 0 }), ErrCorrupt},
		"single split":  {mut(func(b []byte) { b[1] = 1 }), ErrCorrupt},
	} {
		_, err := DecodeState(tc.in)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", name, err, tc.want)
		}
	}
	var empty State
	if s, err := DecodeState(empty.AppendBinary(nil)); err != nil || !s.IsEmpty() {
		t.Errorf("empty state: %v", err)
	}
}

func FuzzDecodeState(f *testing.F) {
	g := addAll([]pt{{2, 1, 100, 7}, {-1, 3, 50, 8}})
	f.Add(g.AppendBinary(nil))
	f.Add((&State{}).AppendBinary(nil))
	f.Add([]byte{})
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := DecodeState(b)
		if err != nil {
			return
		}
		// Accepted input is canonical and the state is usable.
		if got := s.AppendBinary(nil); string(got) != string(b) {
			t.Fatalf("re-encoding differs")
		}
		for _, fn := range Funcs {
			_ = s.Value(fn)
		}
		m := s
		m.Merge(s)
		finite := func(x float64) bool { return x-x == 0 }
		if s.Count() <= math.MaxUint64/2 && finite(m.sum) && finite(m.sumVW) && finite(m.sumW) {
			if _, err := DecodeState(m.AppendBinary(nil)); err != nil {
				t.Fatalf("self-merge of a valid state is invalid: %v", err)
			}
		}
	})
}
