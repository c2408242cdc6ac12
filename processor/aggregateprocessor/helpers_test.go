package aggregateprocessor

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/extension/xextension/storage"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/processor/processortest"

	"github.com/custommetrics/bundle/processor/aggregateprocessor/internal/metadata"
)

// clock is an injectable, settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

func defaultCfg() *Config { return createDefaultConfig().(*Config) }

// newTestProcessor builds a processor without starting its ticker: tests
// drive time with clk and call tick themselves. client, when set, is used as
// its storage (already "opened").
func newTestProcessor(t testing.TB, cfg *Config, next consumer.Metrics, clk *clock, client storage.Client) *aggProcessor {
	t.Helper()
	require.NoError(t, cfg.Validate())
	p, err := newProcessor(processortest.NewNopSettings(metadata.Type), cfg, next)
	require.NoError(t, err)
	if clk != nil {
		p.now = clk.now
	}
	if client != nil {
		p.store = newDurable(p, client, componenttest.NewNopHost())
		require.NoError(t, p.store.load(context.Background()))
		t.Cleanup(func() {
			if p.store != nil {
				p.store.halt()
				p.store = nil
			}
		})
	}
	return p
}

// memStorage is an in-memory storage.Client with Walk; it outlives the
// processors that use it, like a file on disk outlives a killed process.
type memStorage struct {
	mu      sync.Mutex
	data    map[string][]byte
	batches int
	fail    error
	// latency is how long each Batch takes, as a disk's sync would.
	latency time.Duration
}

var _ storage.Walker = (*memStorage)(nil)

func newMemStorage() *memStorage { return &memStorage{data: map[string][]byte{}} }

func (s *memStorage) Get(ctx context.Context, key string) ([]byte, error) {
	op := storage.GetOperation(key)
	err := s.Batch(ctx, op)
	return op.Value, err
}

func (s *memStorage) Set(ctx context.Context, key string, value []byte) error {
	return s.Batch(ctx, storage.SetOperation(key, value))
}

func (s *memStorage) Delete(ctx context.Context, key string) error {
	return s.Batch(ctx, storage.DeleteOperation(key))
}

func (s *memStorage) Batch(_ context.Context, ops ...*storage.Operation) error {
	time.Sleep(s.latency)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	s.batches++
	for _, op := range ops {
		switch op.Type {
		case storage.Get:
			if v, ok := s.data[op.Key]; ok {
				op.Value = append([]byte(nil), v...)
			} else {
				op.Value = nil
			}
		case storage.Set:
			s.data[op.Key] = append([]byte(nil), op.Value...)
		case storage.Delete:
			delete(s.data, op.Key)
		default:
			return errors.New("bad op")
		}
	}
	return nil
}

func (s *memStorage) Walk(ctx context.Context, fn storage.WalkFunc) error {
	s.mu.Lock()
	snapshot := maps.Clone(s.data)
	s.mu.Unlock()
	var ops []*storage.Operation
	for k, v := range snapshot {
		o, err := fn(k, v)
		if errors.Is(err, storage.SkipAll) {
			break
		}
		if err != nil {
			return err
		}
		ops = append(ops, o...)
	}
	if len(ops) == 0 {
		return nil
	}
	return s.Batch(ctx, ops...)
}

func (s *memStorage) Close(context.Context) error { return nil }

// points flattens metrics into comparable rows.
type row struct {
	metric, interval, agg string
	attrs                 string
	start, end            time.Time
	value                 float64
}

func rows(mds ...pmetric.Metrics) []row {
	var out []row
	for _, md := range mds {
		for _, rm := range md.ResourceMetrics().All() {
			for _, sm := range rm.ScopeMetrics().All() {
				for _, m := range sm.Metrics().All() {
					var ivs, ags string
					if iv, ok := m.Metadata().Get("custommetrics.interval"); ok {
						ivs = iv.AsString()
					}
					if ag, ok := m.Metadata().Get("custommetrics.aggregation"); ok {
						ags = ag.AsString()
					}
					dps := numberPoints(m)
					for _, dp := range dps.All() {
						out = append(out, row{
							metric: m.Name(), interval: ivs, agg: ags, attrs: attrKey(rm.Resource().Attributes().AsRaw(), dp.Attributes().AsRaw()),
							start: dp.StartTimestamp().AsTime(), end: dp.Timestamp().AsTime(), value: dp.DoubleValue(),
						})
					}
				}
			}
		}
	}
	return out
}

func attrKey(ms ...map[string]any) string {
	s := ""
	for _, m := range ms {
		for _, k := range sortedKeys(m) {
			s += k + "=" + toString(m[k]) + ";"
		}
		s += "|"
	}
	return s
}

var _ = component.MustNewType

func sortedKeys(m map[string]any) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func toString(v any) string { return fmt.Sprint(v) }

func nanValue() float64 { var z float64; return z / z }
