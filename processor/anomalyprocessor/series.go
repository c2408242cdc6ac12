package anomalyprocessor // import "github.com/custommetrics/bundle/processor/anomalyprocessor"

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/custommetrics/bundle/processor/anomalyprocessor/internal/detector"
)

// series is what the processor keeps per series: the detector state (904
// bytes) and four words; the tenant's id and the dirty flag share the last
// word (904 + 3*8 + 8 = 936 bytes, checked by TestSeriesSize).
type series struct {
	st      detector.State
	firstTS int64  // unix seconds of the first value (learning_duration)
	lastTS  int64  // timestamp (unix ns) of the last scored value
	seen    int64  // wall clock (unix ns) of the last data point (series_ttl)
	dirty   bool   // changed since the last snapshot
	tenant  uint32 // id in the processor's tenantTable; noTenant until known
}

const nShards = 64

// shard is one part of the series map with its own lock.
type shard struct {
	mu   sync.Mutex
	m    map[seriesKey]*series
	free []*series // unused slots of allocated chunks
	_    [16]byte  // keep hot locks on separate cache lines
}

// seriesChunk: series are allocated in chunks, so that a series costs its
// size (936 bytes) and not the allocator's next size class (1024 bytes).
const seriesChunk = 35 // 35*936 = 32760 bytes: four pages, nothing rounded up

// alloc returns a zero series (sh is locked).
func (sh *shard) alloc() *series {
	if n := len(sh.free); n > 0 {
		s := sh.free[n-1]
		sh.free = sh.free[:n-1]
		*s = series{}
		return s
	}
	chunk := make([]series, seriesChunk)
	for i := seriesChunk - 1; i > 0; i-- {
		sh.free = append(sh.free, &chunk[i])
	}
	return &chunk[0]
}

// release removes series k (sh is locked).
func (sh *shard) release(k seriesKey, s *series) {
	delete(sh.m, k)
	sh.free = append(sh.free, s)
}

// Stored value (version 2): 'S' | 2 | seen i64 | firstTS i64 | lastTS i64 |
// uvarint len(tenant) | tenant | detector state. Version 1 had no tenant.
const (
	seriesMagic   = 'S'
	seriesVersion = 2
	seriesHeader  = 2 + 3*8
)

func (s *series) appendBinary(b []byte, tenant string) []byte {
	le := binary.LittleEndian
	b = append(b, seriesMagic, seriesVersion)
	b = le.AppendUint64(b, uint64(s.seen))
	b = le.AppendUint64(b, uint64(s.firstTS))
	b = le.AppendUint64(b, uint64(s.lastTS))
	b = binary.AppendUvarint(b, uint64(len(tenant)))
	b = append(b, tenant...)
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
	rest := data[seriesHeader:]
	switch data[1] {
	case 1:
	case seriesVersion:
		n, w := binary.Uvarint(rest)
		if w <= 0 || n > uint64(len(rest)-w) {
			return "", false, errors.New("truncated series state")
		}
		tenant, known = string(rest[w:w+int(n)]), true
		rest = rest[w+int(n):]
	default:
		return "", false, fmt.Errorf("unsupported series state version %d", data[1])
	}
	var t series
	if err := t.st.UnmarshalBinary(rest); err != nil {
		return "", false, err
	}
	le := binary.LittleEndian
	t.seen = int64(le.Uint64(data[2:]))
	t.firstTS = int64(le.Uint64(data[10:]))
	t.lastTS = int64(le.Uint64(data[18:]))
	*s = t
	return tenant, known, nil
}
