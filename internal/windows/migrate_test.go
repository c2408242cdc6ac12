package windows

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.uber.org/zap/zaptest"

	"github.com/custommetrics/bundle/internal/aggregation"
	"github.com/custommetrics/bundle/internal/calendar"
	"github.com/custommetrics/bundle/internal/otelmap"
	"github.com/custommetrics/bundle/internal/storagetest"
)

// toRecordVersion1 rewrites every stored record as record version 1 wrote it:
// the scope version is part of the desc key, and so of the storage key.
func toRecordVersion1(t *testing.T, s *storagetest.Mem) {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	for k, v := range s.Data {
		if !strings.HasPrefix(k, RecordPrefix) {
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
		cur := appendResourceScope(nil, &Batch{}, rm, sm)
		require.True(t, strings.HasPrefix(r.dkey, string(cur)))
		oldKey := string(old) + r.dkey[len(cur):]
		rk := recordKey{d: &Desc{key: oldKey, blob: r.blob}, iv: r.iv, start: r.start, end: r.end, attrs: r.attrs}
		var flags byte
		if r.done {
			flags |= flagDone
		}
		if r.final {
			flags |= flagFinal
		}
		rec := encodeRecord(&rk, &r.state, flags)
		rec[0] = recordVersionV1
		delete(s.Data, k)
		s.Data[rk.storageKey()] = rec
	}
}

// testSet returns a Set of hourly UTC windows kept in store, at the time clk says.
func testSet(t *testing.T, clk *time.Time, store *storagetest.Mem) *Set {
	t.Helper()
	s := New(Config{Calendar: calendar.UTC(), MaxWindows: 1000, Now: func() time.Time { return *clk }, Logger: zaptest.NewLogger(t)})
	require.NoError(t, s.Open(context.Background(), store))
	t.Cleanup(s.Halt)
	return s
}

// addOnes adds the value 1 at at for each key, under a scope of version
// scopeVersion (the receiver stamps its build's), to metric m's hourly sums.
func addOnes(t *testing.T, s *Set, at time.Time, scopeVersion string, keys ...string) {
	t.Helper()
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	sm := rm.ScopeMetrics().AppendEmpty()
	sm.Scope().SetName(otelmap.ScopeName)
	sm.Scope().SetVersion(scopeVersion)
	m := sm.Metrics().AppendEmpty()
	m.SetName("m")
	b := s.Batch(s.cfg.Now().UnixNano())
	defer b.Release()
	b.Scope(rm, sm)
	d := b.Identity(m, aggregation.Sum)
	for _, k := range keys {
		attrs := pcommon.NewMap()
		attrs.PutStr(otelmap.AttrKey, k)
		require.NoError(t, b.Add(b.Point(), d, attrs, nil, []calendar.Interval{calendar.Hour}, at.UnixNano(), 1, 1))
	}
	require.NoError(t, b.Reserve(context.Background()))
	require.NoError(t, b.Apply(context.Background(), nil))
}

// emit returns the figures due now and records them as emitted.
func emit(s *Set) []Snap {
	snaps := s.Due(s.cfg.Now().UnixNano(), false)
	s.Emitted(snaps)
	return snaps
}

// TestRecordVersion1OpenWindowResumes: an open window written by record
// version 1 is back in memory after the upgrade and its closing figure has
// the values from before and after.
func TestRecordVersion1OpenWindowResumes(t *testing.T) {
	store := storagetest.NewMem()
	at := time.Date(2024, 1, 1, 10, 0, 0, 0, time.UTC)
	clk := at.Add(10 * time.Minute)
	s1 := testSet(t, &clk, store)
	addOnes(t, s1, at, "1.0.0", "a", "a")
	s1.Halt()
	toRecordVersion1(t, store)

	s2 := testSet(t, &clk, store)
	assert.EqualValues(t, 1, s2.Len(), "the open window is restored")
	addOnes(t, s2, at.Add(time.Minute), "1.1.0", "a")
	clk = at.Add(2 * time.Hour)
	snaps := emit(s2)
	require.Len(t, snaps, 1)
	assert.Equal(t, 3.0, snaps[0].Acc.Value(aggregation.Sum))
	store.Mu.Lock()
	defer store.Mu.Unlock()
	for k, v := range store.Data {
		if strings.HasPrefix(k, RecordPrefix) {
			assert.EqualValues(t, recordVersion, v[0], "every record is rewritten in the current version")
		}
	}
}

// TestRecordVersion1ClosedWindowIsRestated: a late value for a window that
// record version 1 stored as emitted restates the complete figure; and a
// record that a build in between wrote under the new key (with only the
// values it saw) is merged, not lost.
func TestRecordVersion1ClosedWindowIsRestated(t *testing.T) {
	at := time.Date(2024, 1, 1, 10, 0, 0, 0, time.UTC)
	for _, between := range []bool{false, true} {
		store := storagetest.NewMem()
		clk := at
		s1 := testSet(t, &clk, store)
		addOnes(t, s1, at, "1.0.0", "a", "a")
		clk = at.Add(2 * time.Hour)
		require.Len(t, emit(s1), 1)
		s1.Halt() // the emitted mark is written: stored as done
		toRecordVersion1(t, store)
		if between {
			// A build with the new key but no migration counted one more value
			// into a fresh record of its own.
			sb := testSet(t, &clk, storagetest.NewMem())
			addOnes(t, sb, at.Add(time.Minute), "1.0.5", "a")
			for i := range sb.shards {
				sh := &sb.shards[i]
				sh.each(func(w *window) {
					require.Nil(t, w.pend, "committed")
					st := w.acc.State(w.d.Fn)
					k := sh.keyOf(w)
					store.Data[k.storageKey()] = encodeRecord(&k, &st, 0)
				})
			}
		}

		s2 := testSet(t, &clk, store)
		addOnes(t, s2, at.Add(2*time.Minute), "1.1.0", "a")
		snaps := emit(s2)
		require.Len(t, snaps, 1)
		want := 3.0
		if between {
			want = 4
		}
		assert.Equal(t, Restatement, snaps[0].Kind)
		assert.Equal(t, want, snaps[0].Acc.Value(aggregation.Sum), "between=%v: the restatement carries every acknowledged value", between)
	}
}
