package anomalyprocessor // import "github.com/custommetrics/bundle/processor/anomalyprocessor"

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/custommetrics/bundle/processor/anomalyprocessor/internal/detector"
)

// series is what the processor keeps per series: the detector state (904
// bytes), four words, the last result (40 bytes); the tenant's id and the
// dirty flag share the last word (904 + 4*8 + 40 + 8 = 984 bytes, checked by
// TestSeriesSize).
type series struct {
	st        detector.State
	firstTS   int64 // unix seconds of the first value (learning_duration)
	lastTS    int64 // timestamp (unix ns) of the last scored value; noPoint before the first
	lastValue float64
	// last is the result of the value at lastTS. A point that comes again
	// with the same timestamp and value (the aggregate processor emits a
	// window again when its export failed) gets it again: the detector has
	// already learned the value, and a repeat without its score would store
	// the window without one.
	last   detector.Result
	seen   int64  // wall clock (unix ns) of the last data point (series_ttl)
	dirty  bool   // changed since the last snapshot
	tenant uint32 // id in the processor's tenantTable; noTenant until known
}

// noPoint is lastTS before a series' first value: every timestamp, even
// one before 1970, comes after it.
const noPoint = math.MinInt64

// newState is the state of a series without values.
func newState() series { return series{lastTS: noPoint} }

const nShards = 64

// shard is one part of the series map with its own lock.
type shard struct {
	mu   sync.Mutex
	m    map[seriesKey]*series
	free []*series // unused slots of allocated chunks
	_    [16]byte  // keep hot locks on separate cache lines
}

// seriesChunk: series are allocated in chunks, so that a series costs its
// size (984 bytes) and not the allocator's next size class (1024 bytes).
const seriesChunk = 33 // 33*984 = 32472 bytes, in the allocator's 32 KiB class

// alloc returns a zero series (sh is locked).
func (sh *shard) alloc() *series {
	if n := len(sh.free); n > 0 {
		s := sh.free[n-1]
		sh.free = sh.free[:n-1]
		*s = newState()
		return s
	}
	chunk := make([]series, seriesChunk)
	for i := seriesChunk - 1; i > 0; i-- {
		sh.free = append(sh.free, &chunk[i])
	}
	chunk[0] = newState()
	return &chunk[0]
}

// release removes series k (sh is locked).
func (sh *shard) release(k seriesKey, s *series) {
	delete(sh.m, k)
	sh.free = append(sh.free, s)
}

// Stored value (version 3): 'S' | 3 | seen i64 | firstTS i64 | lastTS i64 |
// uvarint len(tenant) | tenant | last result: flags u8 (1 ready, 2 anomaly),
// lastValue, score, expected, lower, upper f64 | detector state. Version 2
// had no last result, version 1 no tenant either.
const (
	seriesMagic   = 'S'
	seriesVersion = 3
	seriesHeader  = 2 + 3*8
	lastSize      = 1 + 5*8
)

func (s *series) appendBinary(b []byte, tenant string) []byte {
	le := binary.LittleEndian
	b = append(b, seriesMagic, seriesVersion)
	b = le.AppendUint64(b, uint64(s.seen))
	b = le.AppendUint64(b, uint64(s.firstTS))
	b = le.AppendUint64(b, uint64(s.lastTS))
	b = binary.AppendUvarint(b, uint64(len(tenant)))
	b = append(b, tenant...)
	var flags byte
	if s.last.Ready {
		flags |= 1
	}
	if s.last.Anomaly {
		flags |= 2
	}
	b = append(b, flags)
	for _, f := range [...]float64{s.lastValue, s.last.Score, s.last.Expected, s.last.Lower, s.last.Upper} {
		b = le.AppendUint64(b, math.Float64bits(f))
	}
	b, _ = s.st.AppendBinary(b) // never fails
	return b
}

func (s *series) unmarshalBinary(data []byte) error {
	_, _, err := s.unmarshalWithTenant(data)
	return err
}

// unmarshalWithTenant decodes a stored state and its tenant; known is false
// for version 1 states, which did not record it. s.tenant is left unset.
func (s *series) unmarshalWithTenant(data []byte) (tenant string, known bool, err error) {
	if len(data) < seriesHeader || data[0] != seriesMagic {
		return "", false, errors.New("not an anomaly processor series state")
	}
	version := data[1]
	if version < 1 || version > seriesVersion {
		return "", false, fmt.Errorf("unsupported series state version %d", version)
	}
	rest := data[seriesHeader:]
	t := newState()
	le := binary.LittleEndian
	if version >= 2 {
		n, w := binary.Uvarint(rest)
		if w <= 0 || n > uint64(len(rest)-w) {
			return "", false, errors.New("truncated series state")
		}
		tenant, known = string(rest[w:w+int(n)]), true
		rest = rest[w+int(n):]
	}
	if version >= 3 {
		if len(rest) < lastSize {
			return "", false, errors.New("truncated series state")
		}
		flags := rest[0]
		var f [5]float64
		for i := range f {
			f[i] = math.Float64frombits(le.Uint64(rest[1+8*i:]))
		}
		t.lastValue = f[0]
		t.last = detector.Result{Score: f[1], Expected: f[2], Lower: f[3], Upper: f[4], Anomaly: flags&2 != 0, Ready: flags&1 != 0}
		rest = rest[lastSize:]
	}
	if err := t.st.UnmarshalBinary(rest); err != nil {
		return "", false, err
	}
	t.seen = int64(le.Uint64(data[2:]))
	t.firstTS = int64(le.Uint64(data[10:]))
	t.lastTS = int64(le.Uint64(data[18:]))
	*s = t
	return tenant, known, nil
}
