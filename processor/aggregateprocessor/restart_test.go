package aggregateprocessor

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/storage/filestorage"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/otelcol"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/receiver"

	"github.com/custommetrics/bundle/extension/definitionsextension"
	"github.com/custommetrics/bundle/internal/collectortest"
	"github.com/custommetrics/bundle/receiver/custommetricsreceiver"
)

// sinkExporter is a tiny exporter that hands metrics to a test sink.
type sinkExporter struct {
	component.StartFunc
	component.ShutdownFunc
	*consumertest.MetricsSink
}

func (sinkExporter) Capabilities() consumer.Capabilities { return consumer.Capabilities{} }

var restartSink = new(consumertest.MetricsSink)

func sinkExporterFactory() exporter.Factory {
	return exporter.NewFactory(component.MustNewType("sink"), func() component.Config { return &struct{}{} },
		exporter.WithMetrics(func(context.Context, exporter.Settings, component.Config) (exporter.Metrics, error) {
			return sinkExporter{MetricsSink: restartSink}, nil
		}, component.StabilityLevelDevelopment))
}

func restartFactories() (otelcol.Factories, error) {
	var err error
	f := otelcol.Factories{}
	if f.Receivers, err = otelcol.MakeFactoryMap[receiver.Factory](custommetricsreceiver.NewFactory()); err != nil {
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

const restartConfig = `
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
processors:
  aggregate:
    storage: file_storage
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
      receivers: [custommetrics]
      processors: [aggregate]
      exporters: [sink]
`

func post(t *testing.T, url, body string, want int) {
	t.Helper()
	resp, err := http.Post(url, "application/json", bytes.NewBufferString(body))
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, want, resp.StatusCode, string(b))
}

// latest returns the last emitted figure of metric's window starting at start.
func latest(metric string, start time.Time) (float64, bool) {
	v, ok := 0.0, false
	for _, r := range rows(restartSink.AllMetrics()...) {
		if r.metric == metric && r.start.Equal(start) {
			v, ok = r.value, true
		}
	}
	return v, ok
}

// TestRestartKeepsWindows runs receiver → aggregate → exporter in the real
// Collector runtime with file_storage, restarts it on the same directory and
// checks that figures emitted after the restart include the values accepted
// before it: an open window (running figures) and a closed one (restatement).
func TestRestartKeepsWindows(t *testing.T) {
	addr := collectortest.FreeAddr(t)
	t.Setenv("RECEIVER_ADDR", addr)
	t.Setenv("DATA_DIR", filepath.Join(t.TempDir(), "storage"))
	base := "http://" + addr + "/api/v2/customMetrics"
	restartSink.Reset()

	col := collectortest.Start(t, restartFactories, restartConfig)
	post(t, base, `{"name":"openYear","dataType":"Sum","interval":"Yearly","keyedValues":false}`, http.StatusCreated)
	post(t, base, `{"name":"closedHour","dataType":"Sum","interval":"Hourly","keyedValues":true}`, http.StatusCreated)
	post(t, base+"/openYear/data", `{"value":"2"}`, http.StatusNoContent)
	post(t, base+"/closedHour/data", `{"name":"app1","value":"5","date":"2018-01-19T14:10:00Z"}`, http.StatusNoContent)

	year := time.Date(time.Now().UTC().Year(), 1, 1, 0, 0, 0, 0, time.UTC)
	hour := time.Date(2018, 1, 19, 14, 0, 0, 0, time.UTC)
	require.Eventually(t, func() bool {
		a, ok1 := latest("openYear", year)
		b, ok2 := latest("closedHour", hour)
		return ok1 && ok2 && a == 2 && b == 5
	}, 10*time.Second, 10*time.Millisecond, "running figure of the open window and final figure of the closed one")
	col.Shutdown(t)

	restartSink.Reset()
	collectortest.Start(t, restartFactories, restartConfig)
	post(t, base+"/openYear/data", `{"value":"3"}`, http.StatusNoContent)
	post(t, base+"/closedHour/data", `{"name":"app1","value":"1","date":"2018-01-19T14:50:00Z"}`, http.StatusNoContent)
	require.Eventually(t, func() bool {
		a, _ := latest("openYear", year)
		b, _ := latest("closedHour", hour)
		return a == 5 && b == 6
	}, 10*time.Second, 10*time.Millisecond, "figures after the restart include the values from before it")
	a, _ := latest("openYear", year)
	b, _ := latest("closedHour", hour)
	assert.Equal(t, 5.0, a)
	assert.Equal(t, 6.0, b)
}
