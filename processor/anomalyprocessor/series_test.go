package anomalyprocessor

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/custommetrics/bundle/processor/anomalyprocessor/internal/detector"
)

// TestSeriesStateVersions: a stored state keeps everything the processor
// needs after a restart; states stored by earlier versions still load (a
// version 2 state has no last result, so a repeat of its last point passes
// unscored, as it did then).
func TestSeriesStateVersions(t *testing.T) {
	cfg := detector.DefaultConfig()
	s := newState()
	for i := range 20 {
		s.last = s.st.Update(&cfg, int64(i)*60, float64(i%3))
	}
	s.last = detector.Result{Score: 0.97, Expected: 1.5, Lower: 0.25, Upper: 2.75, Anomaly: true, Ready: true}
	s.seen, s.firstTS, s.lastTS, s.lastValue = 99, 1, 1140e9, 2

	v3 := s.appendBinary(nil, "acme")
	var got series
	tenant, known, err := got.unmarshalWithTenant(v3)
	require.NoError(t, err)
	assert.True(t, known)
	assert.Equal(t, "acme", tenant)
	assert.Equal(t, v3, got.appendBinary(nil, tenant), "decodes to what was stored") // the state holds NaNs: compare encodings
	assert.Equal(t, s.last, got.last)

	// version 2: the same without the last result
	v2 := append([]byte{seriesMagic, 2}, v3[2:seriesHeader+1+len("acme")]...)
	v2 = append(v2, v3[seriesHeader+1+len("acme")+lastSize:]...)
	got = series{}
	tenant, known, err = got.unmarshalWithTenant(v2)
	require.NoError(t, err)
	assert.True(t, known)
	assert.Equal(t, "acme", tenant)
	want := s
	want.last, want.lastValue = detector.Result{}, 0
	assert.Equal(t, want.appendBinary(nil, "acme"), got.appendBinary(nil, tenant))
	assert.False(t, got.last.Ready)

	for _, bad := range [][]byte{v3[:seriesHeader+1+len("acme")+lastSize-1], {seriesMagic, 4}, {seriesMagic, 0}} {
		assert.Error(t, new(series).unmarshalBinary(bad))
	}
}
