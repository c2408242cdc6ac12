package custommetricsreceiver

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/receiver/receivertest"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/custommetrics/bundle/internal/collectortest"
	"github.com/custommetrics/bundle/receiver/custommetricsreceiver/internal/metadata"
)

func TestAPIsCanBeSwitchedOffAndMoved(t *testing.T) {
	ts := startReceiver(t, func(c *Config) {
		c.Sleuth.Enabled = false
		c.BigFix.PathPrefix = "/bigfix"
		c.ThreatConnect.PathPrefix = ""
	}, nil)
	assert.Equal(t, http.StatusNotFound, ts.do(http.MethodPost, "/api/1/impact/1/register_impact", `{"value":1}`).status)
	assert.Equal(t, http.StatusNotFound, ts.do(http.MethodGet, "/api/deploymentmetrics", "").status)
	assert.Equal(t, http.StatusOK, ts.do(http.MethodGet, "/bigfix/api/deploymentmetrics", "").status)
	assert.Equal(t, http.StatusOK, ts.do(http.MethodGet, "/v2/customMetrics", "").status)
	assert.Equal(t, http.StatusNotFound, ts.do(http.MethodGet, "/api/v2/customMetrics", "").status)
}

// TestTelemetryCountsValuesPerAPI checks the Collector's own receiver counters,
// told apart per API by the transport attribute.
func TestTelemetryCountsValuesPerAPI(t *testing.T) {
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { require.NoError(t, tel.Shutdown(context.Background())) })
	cfg := createDefaultConfig().(*Config)
	cfg.ServerConfig.NetAddr.Endpoint = collectortest.FreeAddr(t)
	cfg.ThreatConnect.ReturnValue = false // no aggregate processor reports figures
	set := receivertest.NewNopSettings(metadata.Type)
	set.TelemetrySettings = tel.NewTelemetrySettings()
	refusing := consumertest.NewErr(errors.New("memory limit"))
	sink := new(consumertest.MetricsSink)
	r, err := NewFactory().CreateMetrics(context.Background(), set, cfg, consumertest.NewNop())
	require.NoError(t, err)
	rcv := r.(*customMetricsReceiver)
	require.NoError(t, r.Start(context.Background(), componenttest.NewNopHost()))
	t.Cleanup(func() { require.NoError(t, r.Shutdown(context.Background())) })
	ts := &testServer{t: t, base: "http://" + cfg.ServerConfig.NetAddr.Endpoint, sink: sink, rcv: rcv}

	rcv.next = sink
	require.Equal(t, http.StatusOK, ts.do(http.MethodPost, "/api/deploymentmetrics/custom", `{"a":1,"b":"2","c":"x"}`).status)
	rcv.next = refusing
	require.Equal(t, http.StatusServiceUnavailable, ts.do(http.MethodPost, "/api/deploymentmetrics/custom", `{"a":1}`).status)

	points := func(name, transport string) int64 {
		m, err := tel.GetMetric(name)
		require.NoError(t, err)
		var total int64
		for _, dp := range sumPoints(m) {
			if v, ok := dp.attrs["transport"]; ok && v == transport {
				total += dp.value
			}
		}
		return total
	}
	assert.Equal(t, int64(2), points("otelcol_receiver_accepted_metric_points", "http/bigfix"))
	assert.Equal(t, int64(1), points("otelcol_receiver_refused_metric_points", "http/bigfix"))
	assert.Equal(t, int64(0), points("otelcol_receiver_accepted_metric_points", "http/threatconnect"))
}

type intPoint struct {
	attrs map[string]string
	value int64
}

func sumPoints(m metricdata.Metrics) []intPoint {
	sum, ok := m.Data.(metricdata.Sum[int64])
	if !ok {
		return nil
	}
	out := make([]intPoint, 0, len(sum.DataPoints))
	for _, dp := range sum.DataPoints {
		attrs := map[string]string{}
		for _, kv := range dp.Attributes.ToSlice() {
			attrs[string(kv.Key)] = kv.Value.String()
		}
		out = append(out, intPoint{attrs: attrs, value: dp.Value})
	}
	return out
}
