package aggregateprocessor

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/storage/filestorage"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/otelcol"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"

	"github.com/custommetrics/bundle/extension/definitionsextension"
	"github.com/custommetrics/bundle/internal/collectortest"
	"github.com/custommetrics/bundle/internal/definitions"
	"github.com/custommetrics/bundle/internal/filtertree"
	"github.com/custommetrics/bundle/internal/wire/embrace"
	"github.com/custommetrics/bundle/receiver/custommetricsreceiver"
)

// sessions returns a batch of sessions_total points (value 1 each) of app
// appID1 at ts, one per os_version given.
func sessions(ts time.Time, osVersions ...string) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("app.id", "appID1")
	m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName("sessions_total")
	sum := m.SetEmptySum()
	sum.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
	for _, os := range osVersions {
		dp := sum.DataPoints().AppendEmpty()
		dp.SetTimestamp(pcommon.NewTimestampFromTime(ts))
		dp.SetIntValue(1)
		dp.Attributes().PutStr("os_version", os)
		dp.Attributes().PutStr("app_version", "2.1")
	}
	return md
}

func mustFilter(t testing.TB, js string) filtertree.Filter {
	f, err := filtertree.Parse([]byte(js), filtertree.Options{})
	require.NoError(t, err)
	return *f
}

// TestEmbraceDefinitionLifecycle creates a definition in the registry while
// the processor runs: the next batch feeds it; deleting it stops that.
func TestEmbraceDefinitionLifecycle(t *testing.T) {
	ctx := context.Background()
	hour := time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)
	clk := &clock{t: hour.Add(10 * time.Minute)}
	sink := new(consumertest.MetricsSink)
	cfg := defaultCfg()
	cfg.AllowedLateness = 0
	p := newTestProcessor(t, cfg, sink, clk, nil)
	reg := definitions.NewRegistry(&definitions.MemoryBackend{})
	p.setRegistry(reg)

	derived := func() []row {
		var out []row
		for _, r := range rows(drain(t, sink)) {
			if r.metric == "ios12" {
				out = append(out, r)
			}
		}
		return out
	}

	// No definition yet: the base metric passes through, nothing is derived.
	require.NoError(t, p.ConsumeMetrics(ctx, sessions(hour.Add(time.Minute), "12")))
	require.Equal(t, 1, sink.DataPointCount())

	createEmbrace(t, reg, "", embrace.CustomMetric{
		AppID: "appID1", Name: "ios12", Metric: "sessions_total",
		Filters: mustFilter(t, `{"op":"or","children":[{"field_op":"eq","key":"os_version","val":"12"}]}`),
		GroupBy: []string{"app_version"}, TimeGranularity: []string{"hourly"},
	})
	require.NoError(t, p.ConsumeMetrics(ctx, sessions(hour.Add(2*time.Minute), "12", "12", "13")))
	assert.Equal(t, 4, sink.DataPointCount(), "the base metric still passes through")
	sink.Reset()
	clk.set(hour.Add(time.Hour))
	require.NoError(t, p.tick(ctx, clk.now()))
	got := derived()
	require.Len(t, got, 1)
	assert.Equal(t, 2.0, got[0].value, "only the values consumed after the definition was created, filtered")
	assert.Equal(t, hour, got[0].start)
	assert.Equal(t, "sum", got[0].agg)
	assert.Equal(t, "app_version=2.1;|", got[0].attrs[len("app.id=appID1;custommetrics.api=embrace;|"):])

	c, err := definitions.CollectionOf[embrace.CustomMetric](ctx, reg, definitions.KindEmbraceMetric, "")
	require.NoError(t, err)
	_, err = c.Delete(ctx, "appID1/ios12")
	require.NoError(t, err)
	next := hour.Add(time.Hour)
	require.NoError(t, p.ConsumeMetrics(ctx, sessions(next.Add(time.Minute), "12")))
	assert.Equal(t, 1, sink.DataPointCount(), "the base metric passes through")
	sink.Reset()
	clk.set(next.Add(time.Hour))
	require.NoError(t, p.tick(ctx, clk.now()))
	assert.Empty(t, derived(), "a deleted definition derives nothing")
}

// TestEmbraceOverHTTPSurvivesRestart runs custommetrics (Embrace API) + otlp
// receivers → aggregate (definitions, file_storage) → sink in the Collector
// runtime: a definition created over HTTP while the collector runs derives
// its metric from OTLP points, the derived window survives a restart, and
// deleting the definition over HTTP stops it.
func TestEmbraceOverHTTPSurvivesRestart(t *testing.T) {
	addr, otlpAddr := collectortest.FreeAddr(t), collectortest.FreeAddr(t)
	t.Setenv("RECEIVER_ADDR", addr)
	t.Setenv("OTLP_ADDR", otlpAddr)
	t.Setenv("DATA_DIR", filepath.Join(t.TempDir(), "storage"))
	restartSink.Reset()
	defsURL := "http://" + addr + "/custom-metrics/api/v1/app/appID1/custom-metrics"
	day := time.Now().UTC().Truncate(24 * time.Hour)
	ts := day.Add(time.Minute)
	sendOTLP := func(n int, os string) {
		t.Helper()
		var dps bytes.Buffer
		for i := range n {
			if i > 0 {
				dps.WriteString(",")
			}
			fmt.Fprintf(&dps, `{"timeUnixNano":"%d","asInt":"1","attributes":[{"key":"os_version","value":{"stringValue":%q}},{"key":"app_version","value":{"stringValue":"2.1"}}]}`, ts.UnixNano(), os)
		}
		body := `{"resourceMetrics":[{"resource":{"attributes":[{"key":"app.id","value":{"stringValue":"appID1"}}]},"scopeMetrics":[{"metrics":[` +
			`{"name":"sessions_total","sum":{"aggregationTemporality":1,"dataPoints":[` + dps.String() + `]}}]}]}]}`
		post(t, "http://"+otlpAddr+"/v1/metrics", body, http.StatusOK)
	}
	rawPoints := func() int {
		n := 0
		for _, r := range rows(restartSink.AllMetrics()...) {
			if r.metric == "sessions_total" {
				n++
			}
		}
		return n
	}

	col := collectortest.Start(t, embraceFactories, embraceConfig)
	post(t, defsURL, `{"name":"sessions_ios12","metric":"sessions_total","group_by":["app_version"],`+
		`"filters":{"op":"and","children":[{"field_op":"eq","key":"os_version","val":"12"}]},"time_granularity":["daily"]}`, http.StatusOK)
	sendOTLP(3, "12")
	sendOTLP(1, "13")
	require.Eventually(t, func() bool {
		v, ok := latest("sessions_ios12", day)
		return ok && v == 3 && rawPoints() == 4
	}, 10*time.Second, 10*time.Millisecond, "running figure of the derived metric; base points pass through")
	col.Shutdown(t)

	restartSink.Reset()
	collectortest.Start(t, embraceFactories, embraceConfig)
	sendOTLP(2, "12")
	require.Eventually(t, func() bool {
		v, _ := latest("sessions_ios12", day)
		return v == 5
	}, 10*time.Second, 10*time.Millisecond, "the derived window kept its figure across the restart")

	req, err := http.NewRequest(http.MethodDelete, defsURL+"/sessions_ios12", http.NoBody)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	restartSink.Reset()
	sendOTLP(4, "12")
	require.Eventually(t, func() bool { return rawPoints() == 4 }, 10*time.Second, 10*time.Millisecond)
	time.Sleep(150 * time.Millisecond) // several check and running intervals
	_, ok := latest("sessions_ios12", day)
	assert.False(t, ok, "after the deletion the derived window no longer changes (nothing new to emit)")
}

func embraceFactories() (otelcol.Factories, error) {
	var err error
	f := otelcol.Factories{}
	if f.Receivers, err = otelcol.MakeFactoryMap[receiver.Factory](custommetricsreceiver.NewFactory(), otlpreceiver.NewFactory()); err != nil {
		return f, err
	}
	if f.Processors, err = otelcol.MakeFactoryMap[processor.Factory](NewFactory()); err != nil {
		return f, err
	}
	if f.Extensions, err = otelcol.MakeFactoryMap[extension.Factory](definitionsextension.NewFactory(), filestorage.NewFactory()); err != nil {
		return f, err
	}
	f.Exporters, err = otelcol.MakeFactoryMap[exporter.Factory](sinkExporterFactory())
	return f, err
}

const embraceConfig = `
extensions:
  file_storage:
    directory: ${env:DATA_DIR}
    create_directory: true
  definitions:
    storage: file_storage
receivers:
  custommetrics:
    endpoint: ${env:RECEIVER_ADDR}
    definitions: definitions
  otlp:
    protocols:
      http:
        endpoint: ${env:OTLP_ADDR}
processors:
  aggregate:
    storage: file_storage
    definitions: definitions
    check_interval: 20ms
    running_interval: 50ms
exporters:
  sink:
service:
  extensions: [file_storage, definitions]
  telemetry:
    metrics:
      level: none
  pipelines:
    metrics:
      receivers: [custommetrics, otlp]
      processors: [aggregate]
      exporters: [sink]
`

func TestEmbraceConfig(t *testing.T) {
	cfg := defaultCfg()
	assert.Equal(t, "app.id", cfg.Embrace.AppIDAttribute)
	require.NoError(t, confmap.NewFromStringMap(map[string]any{
		"definitions": "definitions",
		"embrace":     map[string]any{"app_id_attribute": "service.name"},
	}).Unmarshal(cfg))
	require.NoError(t, cfg.Validate())
	assert.Equal(t, component.MustNewID("definitions"), *cfg.Definitions)
	cfg.Embrace.AppIDAttribute = ""
	require.ErrorContains(t, cfg.Validate(), "app_id_attribute")
}
