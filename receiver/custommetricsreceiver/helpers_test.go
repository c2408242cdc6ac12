package custommetricsreceiver

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/processor/processortest"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/custommetrics/bundle/internal/collectortest"
	"github.com/custommetrics/bundle/processor/aggregateprocessor"
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
// When next is nil, values go to a sink that the test can read. Nothing in
// front of the sink reports figures, so threatconnect::return_value is false
// unless mutate sets it (tests of returnValue use startWithAggregate).
func startReceiver(t testing.TB, mutate func(*Config), next consumer.Metrics) *testServer {
	t.Helper()
	sink := new(consumertest.MetricsSink)
	if next == nil {
		next = sink
	}
	return serve(t, func(c *Config) {
		c.ThreatConnect.ReturnValue = false
		if mutate != nil {
			mutate(c)
		}
	}, sink, next)
}

// startWithAggregate starts the receiver (threatconnect::return_value true)
// in front of a real aggregate processor, whose figures answer returnValue
// and which passes every raw value on to the sink the test reads.
func startWithAggregate(t testing.TB, mutate func(*Config), aggMutate func(*aggregateprocessor.Config)) *testServer {
	t.Helper()
	sink := new(consumertest.MetricsSink)
	return serve(t, mutate, sink, startAggregate(t, sink, aggMutate))
}

// startAggregate creates and starts an aggregate processor that sends to
// next. It keeps the raw values (the receiver's tests read them) and checks
// for closed windows only hourly, so no window figure reaches next while a
// test runs.
func startAggregate(t testing.TB, next consumer.Metrics, mutate func(*aggregateprocessor.Config)) processor.Metrics {
	t.Helper()
	f := aggregateprocessor.NewFactory()
	cfg := f.CreateDefaultConfig().(*aggregateprocessor.Config)
	cfg.KeepRaw = true
	cfg.CheckInterval = time.Hour
	if mutate != nil {
		mutate(cfg)
	}
	require.NoError(t, cfg.Validate())
	p, err := f.CreateMetrics(context.Background(), processortest.NewNopSettings(f.Type()), cfg, next)
	require.NoError(t, err)
	require.NoError(t, p.Start(context.Background(), componenttest.NewNopHost()))
	t.Cleanup(func() { require.NoError(t, p.Shutdown(context.Background())) })
	return p
}

// newTestReceiver creates the receiver with the default config (endpoint
// a free loopback port) changed by mutate, without starting it.
func newTestReceiver(t testing.TB, mutate func(*Config), next consumer.Metrics) (*customMetricsReceiver, *Config) {
	t.Helper()
	cfg := createDefaultConfig().(*Config)
	cfg.ServerConfig.NetAddr.Endpoint = collectortest.FreeAddr(t)
	if mutate != nil {
		mutate(cfg)
	}
	require.NoError(t, cfg.Validate())
	r, err := NewFactory().CreateMetrics(context.Background(), receivertest.NewNopSettings(metadata.Type), cfg, next)
	require.NoError(t, err)
	return r.(*customMetricsReceiver), cfg
}

func serve(t testing.TB, mutate func(*Config), sink *consumertest.MetricsSink, next consumer.Metrics) *testServer {
	t.Helper()
	r, cfg := newTestReceiver(t, mutate, next)
	require.NoError(t, r.Start(context.Background(), componenttest.NewNopHost()))
	t.Cleanup(func() { require.NoError(t, r.Shutdown(context.Background())) })
	return &testServer{t: t, base: "http://" + cfg.ServerConfig.NetAddr.Endpoint, sink: sink, rcv: r}
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
