package custommetricsreceiver

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/custommetrics/bundle/internal/collectortest"
	"github.com/custommetrics/bundle/receiver/custommetricsreceiver/internal/metadata"
)

// testServer is a receiver serving on a loopback port, over real HTTP.
type testServer struct {
	t    testing.TB
	base string
	sink *consumertest.MetricsSink
	rcv  *customMetricsReceiver
}

// startReceiver starts the receiver with the default config changed by mutate.
// When next is nil, values go to a sink that the test can read.
func startReceiver(t testing.TB, mutate func(*Config), next consumer.Metrics) *testServer {
	t.Helper()
	cfg := createDefaultConfig().(*Config)
	cfg.ServerConfig.NetAddr.Endpoint = collectortest.FreeAddr(t)
	if mutate != nil {
		mutate(cfg)
	}
	require.NoError(t, cfg.Validate())
	ts := &testServer{t: t, base: "http://" + cfg.ServerConfig.NetAddr.Endpoint, sink: new(consumertest.MetricsSink)}
	if next == nil {
		next = ts.sink
	}
	r, err := NewFactory().CreateMetrics(context.Background(), receivertest.NewNopSettings(metadata.Type), cfg, next)
	require.NoError(t, err)
	require.NoError(t, r.Start(context.Background(), componenttest.NewNopHost()))
	t.Cleanup(func() { require.NoError(t, r.Shutdown(context.Background())) })
	ts.rcv = r.(*customMetricsReceiver)
	return ts
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t testing.TB) map[string]any {
	t.Helper()
	var v map[string]any
	require.NoError(t, json.Unmarshal(r.body, &v), "body: %s", r.body)
	return v
}

// do sends a request; header pairs are name, value, name, value...
func (ts *testServer) do(method, path, body string, header ...string) response {
	ts.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = bytes.NewBufferString(body)
	}
	req, err := http.NewRequest(method, ts.base+path, rd)
	require.NoError(ts.t, err)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(ts.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(ts.t, err)
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// points returns every data point received so far, flattened.
func (ts *testServer) points() []receivedPoint {
	var out []receivedPoint
	for _, md := range ts.sink.AllMetrics() {
		rms := md.ResourceMetrics()
		for i := 0; i < rms.Len(); i++ {
			rm := rms.At(i)
			sms := rm.ScopeMetrics()
			for j := 0; j < sms.Len(); j++ {
				ms := sms.At(j).Metrics()
				for k := 0; k < ms.Len(); k++ {
					m := ms.At(k)
					var dps pmetric.NumberDataPointSlice
					switch m.Type() {
					case pmetric.MetricTypeGauge:
						dps = m.Gauge().DataPoints()
					case pmetric.MetricTypeSum:
						dps = m.Sum().DataPoints()
					}
					for p := 0; p < dps.Len(); p++ {
						out = append(out, receivedPoint{resource: rm.Resource().Attributes().AsRaw(), metric: m, dp: dps.At(p)})
					}
				}
			}
		}
	}
	return out
}

type receivedPoint struct {
	resource map[string]any
	metric   pmetric.Metric
	dp       pmetric.NumberDataPoint
}
