package aggregateprocessor

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/custommetrics/bundle/internal/otelmap"
)

// toRecordVersion1 rewrites every stored record as record version 1 wrote it:
// the scope version is part of the desc key, and so of the storage key.
func toRecordVersion1(t *testing.T, s *memStorage) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, v := range s.data {
		if !strings.HasPrefix(k, recordPrefix) {
			continue
		}
		r, err := decodeRecord(v)
		require.NoError(t, err)
		md, err := (&pmetric.ProtoUnmarshaler{}).UnmarshalMetrics(r.blob)
		require.NoError(t, err)
		rm := md.ResourceMetrics().At(0)
		sm := rm.ScopeMetrics().At(0)
		var kvs []kv
		var old []byte
		old, kvs = appendMap(old, rm.Resource().Attributes(), nil, kvs)
		old = appendString(old, sm.Scope().Name())
		old = appendString(old, sm.Scope().Version())
		old, _ = appendMap(old, sm.Scope().Attributes(), nil, kvs)
		cur := appendResourceScope(nil, &scratch{}, rm, sm)
		require.True(t, strings.HasPrefix(r.dkey, string(cur)))
		oldKey := string(old) + r.dkey[len(cur):]
		rk := recordKey{d: &desc{key: oldKey, blob: r.blob}, iv: r.iv, start: r.start, end: r.end, attrs: r.attrs}
		var flags byte
		if r.done {
			flags |= flagDone
		}
		if r.final {
			flags |= flagFinal
		}
		rec := encodeRecord(&rk, &r.state, flags)
		rec[0] = recordVersionV1
		delete(s.data, k)
		s.data[rk.storageKey()] = rec
	}
}

func withScopeVersion(md pmetric.Metrics, v string) pmetric.Metrics {
	sm := md.ResourceMetrics().At(0).ScopeMetrics().At(0)
	sm.Scope().SetName(otelmap.ScopeName)
	sm.Scope().SetVersion(v)
	return md
}

// TestRecordVersion1OpenWindowResumes: an open window written by record
// version 1 is back in memory after the upgrade and its closing figure has
// the values from before and after.
func TestRecordVersion1OpenWindowResumes(t *testing.T) {
	ctx := context.Background()
	store := newMemStorage()
	at := time.Date(2024, 1, 1, 10, 0, 0, 0, time.UTC)
	clk := &clock{t: at.Add(10 * time.Minute)}
	p1 := newTestProcessor(t, defaultCfg(), new(consumertest.MetricsSink), clk, store)
	require.NoError(t, p1.ConsumeMetrics(ctx, withScopeVersion(sumBatch("m", at, "a", "a"), "1.0.0")))
	p1.store.halt()
	p1.store = nil
	toRecordVersion1(t, store)

	sink := new(consumertest.MetricsSink)
	p2 := newTestProcessor(t, defaultCfg(), sink, clk, store)
	assert.EqualValues(t, 1, p2.inMem.Load(), "the open window is restored")
	require.NoError(t, p2.ConsumeMetrics(ctx, withScopeVersion(sumBatch("m", at.Add(time.Minute), "a"), "1.1.0")))
	clk.set(at.Add(2 * time.Hour))
	require.NoError(t, p2.tick(ctx, clk.now()))
	r := rows(sink.AllMetrics()...)
	require.Len(t, r, 1)
	assert.Equal(t, 3.0, r[0].value)
	store.mu.Lock()
	defer store.mu.Unlock()
	for k, v := range store.data {
		if strings.HasPrefix(k, recordPrefix) {
			assert.EqualValues(t, recordVersion, v[0], "every record is rewritten in the current version")
		}
	}
}

// TestRecordVersion1ClosedWindowIsRestated: a late value for a window that
// record version 1 stored as emitted restates the complete figure; and a
// record that a build in between wrote under the new key (with only the
// values it saw) is merged, not lost.
func TestRecordVersion1ClosedWindowIsRestated(t *testing.T) {
	ctx := context.Background()
	at := time.Date(2024, 1, 1, 10, 0, 0, 0, time.UTC)
	for _, between := range []bool{false, true} {
		store := newMemStorage()
		clk := &clock{t: at}
		p1 := newTestProcessor(t, defaultCfg(), new(consumertest.MetricsSink), clk, store)
		require.NoError(t, p1.ConsumeMetrics(ctx, withScopeVersion(sumBatch("m", at, "a", "a"), "1.0.0")))
		clk.set(at.Add(2 * time.Hour))
		require.NoError(t, p1.tick(ctx, clk.now())) // emitted and stored as done
		p1.store.halt()
		p1.store = nil
		toRecordVersion1(t, store)
		if between {
			// A build with the new key but no migration counted one more value
			// into a fresh record of its own.
			pb := newTestProcessor(t, defaultCfg(), new(consumertest.MetricsSink), clk, newMemStorage())
			require.NoError(t, pb.ConsumeMetrics(ctx, withScopeVersion(sumBatch("m", at.Add(time.Minute), "a"), "1.0.5")))
			for i := range pb.shards {
				sh := &pb.shards[i]
				sh.each(func(w *window) {
					require.Nil(t, w.pend, "committed")
					st := w.acc.State(w.d.fn)
					k := sh.keyOf(w)
					store.data[k.storageKey()] = encodeRecord(&k, &st, 0)
				})
			}
		}

		sink := new(consumertest.MetricsSink)
		p2 := newTestProcessor(t, defaultCfg(), sink, clk, store)
		require.NoError(t, p2.ConsumeMetrics(ctx, withScopeVersion(sumBatch("m", at.Add(2*time.Minute), "a"), "1.1.0")))
		require.NoError(t, p2.tick(ctx, clk.now()))
		r := rows(sink.AllMetrics()...)
		require.NotEmpty(t, r)
		want := 3.0
		if between {
			want = 4
		}
		assert.Equal(t, want, r[len(r)-1].value, "between=%v: the restatement carries every acknowledged value", between)
	}
}
