package loadgen

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"

	ld "github.com/custommetrics/bundle/internal/wire/launchdarkly"
)

// The LaunchDarkly payloads are what the receiver's SDK-events parser takes,
// and each event is one accounted point of its metric, in its hour.
func TestLaunchDarklyRequests(t *testing.T) {
	tg := LaunchDarkly(Spread{Metrics: 3, Size: 50}, 4)
	for seq := range uint64(50) {
		r := tg.Request(seq)
		assert.Equal(t, LaunchDarklySDKKey, r.Header.Get("Authorization"))
		events, err := ld.ParseEvents(r.Body)
		require.NoError(t, err)
		require.Len(t, events, 4)
		require.Len(t, r.Points, 4)
		for i, e := range events {
			p := r.Points[i]
			assert.Equal(t, *e.MetricValue, p.Value)
			assert.Equal(t, "tb_ld_event_"+p.Metric[len("tb_ld_"):], e.Key, "the event key is the metric's eventKey")
			assert.Less(t, int64(e.CreationDate)*1e6-p.Window, int64(3.6e12), "in the point's hour")
			assert.GreaterOrEqual(t, int64(e.CreationDate)*1e6, p.Window)
		}
	}
}

// Only the iOS points of the Embrace base metric are accounted, once per
// derived metric, keyed by the group_by attribute.
func TestEmbraceRequests(t *testing.T) {
	tg := Embrace(Spread{Metrics: 2, Keys: 4, Size: 30}, 3)
	var ios, android int
	for seq := range uint64(30) {
		r := tg.Request(seq)
		req := pmetricotlp.NewExportRequest()
		require.NoError(t, req.UnmarshalJSON(r.Body))
		md := req.Metrics()
		app, _ := md.ResourceMetrics().At(0).Resource().Attributes().Get("app.id")
		assert.Equal(t, EmbraceApp, app.Str())
		ms := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics()
		n := 0
		for i := range ms.Len() {
			dp := ms.At(i).Sum().DataPoints().At(0)
			os, _ := dp.Attributes().Get("os")
			if os.Str() == "ios" {
				ios++
				n++
			} else {
				android++
			}
		}
		assert.Len(t, r.Points, 2*n, "each iOS point feeds both derived metrics")
	}
	assert.Equal(t, 60, ios)
	assert.Equal(t, 30, android)
}
