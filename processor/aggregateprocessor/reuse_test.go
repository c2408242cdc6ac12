package aggregateprocessor

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/custommetrics/bundle/internal/aggregation"
	"github.com/custommetrics/bundle/internal/calendar"
	"github.com/custommetrics/bundle/internal/figures"
	"github.com/custommetrics/bundle/internal/otelmap"
	"github.com/custommetrics/bundle/internal/windows"
)

// TestRefusedWindowNotReadAfterUnpin: a batch refused as non-finite names
// its window in the error. apply unpins the windows before it returns (no
// figures slot), so a new window of the refused batch is a placeholder that
// evict may free at once and another series may take its slot: the error
// must be built before the unpin, or it reads a freed (nil desc: panic) or
// reused slot (another series' name; a data race under -race).
func TestRefusedWindowNotReadAfterUnpin(t *testing.T) {
	at := time.Date(2024, 1, 1, 10, 0, 0, 0, time.UTC)
	p := newTestProcessor(t, defaultCfg(), new(consumertest.MetricsSink), &clock{t: at}, nil)
	ctx := context.Background()
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // frees placeholders
		defer wg.Done()
		for !stop.Load() {
			_ = p.emit(ctx, at.UnixNano(), false)
		}
	}()
	go func() { // takes freed slots
		defer wg.Done()
		for i := 0; !stop.Load(); i++ {
			_ = p.ConsumeMetrics(ctx, valueBatch("other", "sum", at.Add(-time.Duration(i%1000)*time.Hour), 0, fmt.Sprint("o", i), 1))
		}
	}()
	var bad sync.WaitGroup
	for g := range 4 {
		bad.Add(1)
		go func() {
			defer bad.Done()
			for i := range 2000 {
				err := p.ConsumeMetrics(ctx, valueBatch("bad", "sum", at, 0, fmt.Sprint("b", g, "-", i), math.MaxFloat64, math.MaxFloat64))
				if !assert.Error(t, err) || !assert.Contains(t, err.Error(), "(bad hour window") {
					return
				}
			}
		}()
	}
	bad.Wait()
	stop.Store(true)
	wg.Wait()
}

// TestStoredFiguresUnderChurn: concurrent senders (with and without a
// figures slot), refused batches (non-finite, failing storage), emission and
// eviction (closed windows leave memory and come back for late values, so
// slots are freed and reused all the time): every stored figure is the sum
// of exactly the acknowledged values.
func TestStoredFiguresUnderChurn(t *testing.T) {
	at := time.Date(2024, 1, 1, 10, 30, 0, 0, time.UTC)
	store := newMemStorage()
	p := newTestProcessor(t, defaultCfg(), new(consumertest.MetricsSink), &clock{t: at}, store)
	type wkey struct {
		key   string
		start int64
	}
	var mu sync.Mutex
	acked := map[wkey]float64{}
	var stop atomic.Bool
	var bg sync.WaitGroup
	bg.Add(2)
	go func() {
		defer bg.Done()
		for !stop.Load() {
			_ = p.emit(context.Background(), at.UnixNano(), false)
		}
	}()
	go func() {
		defer bg.Done()
		for i := 0; !stop.Load(); i++ {
			store.Mu.Lock()
			if i%7 == 0 {
				store.Fail = errors.New("disk full")
			} else {
				store.Fail = nil
			}
			store.Mu.Unlock()
			time.Sleep(100 * time.Microsecond)
		}
	}()
	var senders sync.WaitGroup
	for g := range 4 {
		senders.Add(1)
		go func() {
			defer senders.Done()
			rnd := rand.New(rand.NewPCG(uint64(g), 2))
			for range 400 {
				ctx := context.Background()
				if rnd.IntN(2) == 0 {
					ctx, _ = figures.NewContext(ctx)
				}
				k := fmt.Sprint("k", rnd.IntN(30))
				ts := at.Add(-time.Duration(rnd.IntN(6)) * time.Hour)
				if rnd.IntN(10) == 0 {
					_ = p.ConsumeMetrics(ctx, valueBatch("m", "sum", ts, 0, k, math.MaxFloat64, math.MaxFloat64))
					continue
				}
				v := float64(1 + rnd.IntN(9))
				if p.ConsumeMetrics(ctx, valueBatch("m", "sum", ts, 0, k, v)) == nil {
					start, _ := p.cal.WindowNanos(calendar.Hour, ts.UnixNano())
					mu.Lock()
					acked[wkey{k, start}] += v
					mu.Unlock()
				}
			}
		}()
	}
	senders.Wait()
	stop.Store(true)
	bg.Wait()
	store.Mu.Lock()
	store.Fail = nil
	store.Mu.Unlock()
	require.NoError(t, p.flushAll(context.Background(), at))
	p.halt()
	got := map[wkey]float64{}
	for k, v := range store.Data {
		if !strings.HasPrefix(k, windows.RecordPrefix) {
			continue
		}
		r, err := windows.ReadRecord(v)
		require.NoError(t, err)
		m := pcommon.NewMap()
		_, err = windows.DecodeMap(r.Attrs, m)
		require.NoError(t, err)
		key, _ := m.Get(otelmap.AttrKey)
		if f := r.State.Value(aggregation.Sum); f != 0 {
			got[wkey{key.Str(), r.Start}] = f
		}
	}
	assert.Equal(t, acked, got)
}

// TestEmittedFiguresUnderEvictionPressure: without storage, under memory
// pressure (evict's second pass frees the oldest closed windows while
// senders create new ones in their slots, and late values keep arriving
// for closed windows), the last figure emitted for every window is the sum
// of exactly the acknowledged values: a late value for an evicted window is
// refused, never counted into a fresh window whose partial figure would be
// published as the closed one.
func TestEmittedFiguresUnderEvictionPressure(t *testing.T) {
	for round := range 8 {
		if !t.Run(fmt.Sprint(round), func(t *testing.T) { emittedUnderPressure(t, uint64(round)) }) {
			break
		}
	}
}

func emittedUnderPressure(t *testing.T, seed uint64) {
	at := time.Date(2024, 1, 1, 10, 30, 0, 0, time.UTC)
	cfg := defaultCfg()
	cfg.MaxSeriesWindows = 100
	cfg.MaxSeriesWindowsPerTenant = 0
	sink := new(consumertest.MetricsSink)
	p := newTestProcessor(t, cfg, sink, &clock{t: at}, nil)
	type wkey struct {
		key   string
		start int64
	}
	var mu sync.Mutex
	acked := map[wkey]float64{}
	var stop atomic.Bool
	var bg sync.WaitGroup
	bg.Add(1)
	go func() {
		defer bg.Done()
		for !stop.Load() {
			_ = p.emit(context.Background(), at.UnixNano(), false)
		}
	}()
	var senders sync.WaitGroup
	for g := range 4 {
		senders.Add(1)
		go func() {
			defer senders.Done()
			rnd := rand.New(rand.NewPCG(uint64(g), seed))
			for range 1500 {
				ctx := context.Background()
				if rnd.IntN(2) == 0 {
					ctx, _ = figures.NewContext(ctx)
				}
				k := fmt.Sprint("k", rnd.IntN(40))
				ts := at.Add(-time.Duration(1+rnd.IntN(6)) * time.Hour)
				if rnd.IntN(10) == 0 {
					_ = p.ConsumeMetrics(ctx, valueBatch("m", "sum", ts, 0, k, math.MaxFloat64, math.MaxFloat64))
					continue
				}
				v := float64(1 + rnd.IntN(9))
				if p.ConsumeMetrics(ctx, valueBatch("m", "sum", ts, 0, k, v)) == nil {
					start, _ := p.cal.WindowNanos(calendar.Hour, ts.UnixNano())
					mu.Lock()
					acked[wkey{k, start}] += v
					mu.Unlock()
				}
			}
		}()
	}
	senders.Wait()
	stop.Store(true)
	bg.Wait()
	require.NoError(t, p.flushAll(context.Background(), at))
	require.Greater(t, p.windows.EvictedBefore(), int64(math.MinInt64), "evicted under pressure")
	got := map[wkey]float64{}
	for _, md := range sink.AllMetrics() {
		rms := md.ResourceMetrics()
		for i := 0; i < rms.Len(); i++ {
			sms := rms.At(i).ScopeMetrics()
			for j := 0; j < sms.Len(); j++ {
				ms := sms.At(j).Metrics()
				for l := 0; l < ms.Len(); l++ {
					dps := numberPoints(ms.At(l))
					for n := 0; n < dps.Len(); n++ {
						dp := dps.At(n)
						key, _ := dp.Attributes().Get(otelmap.AttrKey)
						got[wkey{key.Str(), int64(dp.StartTimestamp())}] = dp.DoubleValue()
					}
				}
			}
		}
	}
	assert.Equal(t, acked, got)
}
