package aggregation

import "testing"

var (
	sinkState State
	sinkBuf   []byte
)

func BenchmarkStateAdd(b *testing.B) {
	var s State
	var i uint64
	b.ReportAllocs()
	for b.Loop() {
		i++
		s.Add(float64(i&1023), 1, int64(i*997&0xffff), i)
	}
	sinkState = s
}

func BenchmarkStateMerge(b *testing.B) {
	parts := make([]State, 64)
	for i := range parts {
		for j := range 10 {
			parts[i].Add(float64(i*j), 1, int64((i*7+j)%13), uint64(i*10+j))
		}
	}
	var s State
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		s.Merge(parts[i&63])
		i++
	}
	sinkState = s
}

func BenchmarkAppendBinary(b *testing.B) {
	s := addAll([]pt{{2, 1, 100, 7}, {-1, 3, 50, 8}})
	buf := make([]byte, 0, EncodedSize)
	b.ReportAllocs()
	for b.Loop() {
		buf = s.AppendBinary(buf[:0])
	}
	sinkBuf = buf
}

func BenchmarkDecodeState(b *testing.B) {
	s := addAll([]pt{{2, 1, 100, 7}, {-1, 3, 50, 8}})
	buf := s.AppendBinary(nil)
	b.ReportAllocs()
	for b.Loop() {
		sinkState, _ = DecodeState(buf)
	}
}
