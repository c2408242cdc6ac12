// Package windowstore keeps durable running aggregates per series and calendar
// window: the figures behind ThreatConnect's ?returnValue=true. Windows and
// aggregation come from internal/calendar and internal/aggregation, the same
// code the aggregate processor uses, so both report the same figure.
//
// Every Add writes the window's whole state through to the backend before it
// returns, so a figure survives a restart; a failed write is healed by the
// next successful write of the same window (the state in memory is the truth).
package windowstore // import "github.com/custommetrics/bundle/internal/windowstore"

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/custommetrics/bundle/internal/aggregation"
	"github.com/custommetrics/bundle/internal/calendar"
)

// Backend persists opaque documents by key (a Collector storage client satisfies it).
type Backend interface {
	Get(ctx context.Context, key string) ([]byte, error)
	Set(ctx context.Context, key string, value []byte) error
}

// Series identifies one aggregated series.
type Series struct {
	Tenant string
	Metric string // a stable identity of the metric definition
	Key    string // key of a keyed metric; "" otherwise
}

type windowKey struct {
	Series
	interval calendar.Interval
	start    int64
}

func (k windowKey) storageKey() string {
	return "windows/" + strconv.Quote(k.Tenant) + "/" + strconv.Quote(k.Metric) + "/" + strconv.Quote(k.Key) + "/" +
		k.interval.String() + "/" + strconv.FormatInt(k.start, 10)
}

// Store holds the windows; safe for concurrent use.
type Store struct {
	backend Backend
	cal     *calendar.Calendar

	mu      sync.Mutex
	seq     uint64
	windows map[windowKey]*entry
}

type entry struct {
	mu     sync.Mutex
	loaded bool
	state  aggregation.State
	buf    []byte
}

// New returns a Store persisted through backend, with windows of cal.
func New(backend Backend, cal *calendar.Calendar) *Store {
	return &Store{backend: backend, cal: cal, windows: map[windowKey]*entry{}}
}

// Add adds value v with weight w at tsNanos to the series' window of interval
// iv, and returns the window's state after the addition and its start.
func (s *Store) Add(ctx context.Context, series Series, iv calendar.Interval, tsNanos int64, v, w float64) (aggregation.State, int64, error) {
	start, _ := s.cal.WindowNanos(iv, tsNanos)
	k := windowKey{Series: series, interval: iv, start: start}

	s.mu.Lock()
	e, ok := s.windows[k]
	if !ok {
		e = &entry{}
		s.windows[k] = e
	}
	// Arrival order breaks first/last ties. It must keep increasing across
	// restarts, so it follows the wall clock and never repeats.
	s.seq = max(s.seq+1, uint64(time.Now().UnixNano()))
	seq := s.seq
	s.mu.Unlock()

	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.loaded {
		raw, err := s.backend.Get(ctx, k.storageKey())
		if err != nil {
			return aggregation.State{}, start, fmt.Errorf("windowstore: loading window: %w", err)
		}
		if len(raw) > 0 {
			st, err := aggregation.DecodeState(raw)
			if err != nil {
				return aggregation.State{}, start, fmt.Errorf("windowstore: decoding window: %w", err)
			}
			e.state = st
		}
		e.loaded = true
	}
	e.state.Add(v, w, tsNanos, seq)
	e.buf = e.state.AppendBinary(e.buf[:0])
	if err := s.backend.Set(ctx, k.storageKey(), e.buf); err != nil {
		return e.state, start, fmt.Errorf("windowstore: persisting window: %w", err)
	}
	return e.state, start, nil
}
