package aggregateprocessor

import (
	"context"
	"fmt"
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

	"github.com/custommetrics/bundle/internal/storagetest"
	"github.com/custommetrics/bundle/internal/windows"
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
		p.health = &health{host: componenttest.NewNopHost()}
		require.NoError(t, p.windows.Open(context.Background(), client.(windows.Store)))
		p.client = client
		t.Cleanup(p.halt)
	}
	return p
}

// memStorage is the storage of these tests (see storagetest.Mem).
type memStorage = storagetest.Mem

func newMemStorage() *memStorage { return storagetest.NewMem() }

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

// halt stops committing as a kill -9 would, leaving the storage as it is.
func (p *aggProcessor) halt() {
	p.windows.Halt()
	p.client = nil
}
