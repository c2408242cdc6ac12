// Package windowstore keeps durable running aggregates per series and calendar
// window: the figures behind ThreatConnect's ?returnValue=true when no
// aggregate processor reports them (see internal/figures). Windows and
// aggregation come from internal/calendar and internal/aggregation, the same
// code the aggregate processor uses, so both report the same figure.
//
// Every Add writes the window's whole state through to the backend before it
// returns, so a figure survives a restart; a failed write is healed by the
// next successful write of the same window (the state in memory is the truth).
// Writes are group-committed (internal/groupcommit): concurrent Adds share one
// write round, so the cost of durability is paid per round, not per value.
package windowstore // import "github.com/custommetrics/bundle/internal/windowstore"

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/collector/extension/xextension/storage"

	"github.com/custommetrics/bundle/internal/aggregation"
	"github.com/custommetrics/bundle/internal/calendar"
	"github.com/custommetrics/bundle/internal/groupcommit"
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

// batcher is implemented by Collector storage clients: one transaction for a
// whole commit round.
type batcher interface {
	Batch(ctx context.Context, ops ...*storage.Operation) error
}

// Store holds the windows; safe for concurrent use. Close stops its committer.
type Store struct {
	backend Backend
	cal     *calendar.Calendar

	mu      sync.Mutex
	seq     uint64
	windows map[windowKey]*entry

	// Group commit: Adds queue their window and wait for the committer,
	// which writes everything queued in one round.
	commits *groupcommit.Committer[queued]
}

type queued struct {
	k windowKey
	e *entry
}

type entry struct {
	mu     sync.Mutex
	loaded bool
	state  aggregation.State
}

// New returns a Store persisted through backend, with windows of cal.
func New(backend Backend, cal *calendar.Calendar) *Store {
	s := &Store{backend: backend, cal: cal, windows: map[windowKey]*entry{}}
	s.commits = groupcommit.New(s.write, 0)
	return s
}

// Add adds value v with weight w at tsNanos to the series' window of interval
// iv, and returns the window's state after the addition and its start. It
// returns once the window is persisted (or persisting it failed).
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
	if !e.loaded {
		raw, err := s.backend.Get(ctx, k.storageKey())
		if err != nil {
			e.mu.Unlock()
			return aggregation.State{}, start, fmt.Errorf("windowstore: loading window: %w", err)
		}
		if len(raw) > 0 {
			st, err := aggregation.DecodeState(raw)
			if err != nil {
				e.mu.Unlock()
				return aggregation.State{}, start, fmt.Errorf("windowstore: decoding window: %w", err)
			}
			e.state = st
		}
		e.loaded = true
	}
	e.state.Add(v, w, tsNanos, seq)
	state := e.state
	e.mu.Unlock()

	if err := s.persist(ctx, k, e); err != nil {
		return state, start, fmt.Errorf("windowstore: persisting window: %w", err)
	}
	return state, start, nil
}

// persist queues the window for the next commit round and waits for it.
func (s *Store) persist(ctx context.Context, k windowKey, e *entry) error {
	return s.commits.Wait(ctx, s.commits.Add(queued{k, e}))
}

// write writes the windows of one round (groupcommit.Write). Each holds its
// whole state, so a window that a failed round did not write is written by
// the next round that takes it.
func (s *Store) write(batch []queued) error {
	ops := make([]*storage.Operation, 0, len(batch))
	for _, q := range batch {
		q.e.mu.Lock()
		ops = append(ops, storage.SetOperation(q.k.storageKey(), q.e.state.AppendBinary(nil)))
		q.e.mu.Unlock()
	}
	// The round's requests may be gone; the write still belongs to the values they added.
	ctx := context.Background()
	if b, ok := s.backend.(batcher); ok {
		return b.Batch(ctx, ops...)
	}
	for _, op := range ops {
		if err := s.backend.Set(ctx, op.Key, op.Value); err != nil {
			return err
		}
	}
	return nil
}

// Close writes what is queued and stops the committer; Adds after Close fail.
func (s *Store) Close() { s.commits.Close() }
