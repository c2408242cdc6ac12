package anomalyprocessor // import "github.com/custommetrics/bundle/processor/anomalyprocessor"

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/custommetrics/bundle/processor/anomalyprocessor/internal/detector"
)

// series is what the processor keeps per series: the detector state (904
// bytes) and four words.
type series struct {
	st      detector.State
	firstTS int64 // unix seconds of the first value (learning_duration)
	lastTS  int64 // timestamp (unix ns) of the last scored value
	seen    int64 // wall clock (unix ns) of the last data point (series_ttl)
	dirty   bool  // changed since the last snapshot
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

// Stored value: 'S' | version | seen i64 | firstTS i64 | lastTS i64 | detector state.
const (
	seriesMagic   = 'S'
	seriesVersion = 1
	seriesHeader  = 2 + 3*8
)

func (s *series) appendBinary(b []byte) []byte {
	le := binary.LittleEndian
	b = append(b, seriesMagic, seriesVersion)
	b = le.AppendUint64(b, uint64(s.seen))
	b = le.AppendUint64(b, uint64(s.firstTS))
	b = le.AppendUint64(b, uint64(s.lastTS))
	b, _ = s.st.AppendBinary(b) // never fails
	return b
}

func (s *series) unmarshalBinary(data []byte) error {
	if len(data) < seriesHeader || data[0] != seriesMagic {
		return errors.New("not an anomaly processor series state")
	}
	if data[1] != seriesVersion {
		return fmt.Errorf("unsupported series state version %d", data[1])
	}
	var t series
	if err := t.st.UnmarshalBinary(data[seriesHeader:]); err != nil {
		return err
	}
	le := binary.LittleEndian
	t.seen = int64(le.Uint64(data[2:]))
	t.firstTS = int64(le.Uint64(data[10:]))
	t.lastTS = int64(le.Uint64(data[18:]))
	*s = t
	return nil
}
