package anomalyprocessor

import (
	"context"
	"path/filepath"
	"sync"
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
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/receiver"

	"github.com/custommetrics/bundle/internal/collectortest"
)

// The test receiver hands its pipeline to the test; the test exporter keeps
// what it gets in a sink.
var (
	testTypeIn  = component.MustNewType("testin")
	testTypeOut = component.MustNewType("testout")

	pipeMu   sync.Mutex
	pipeIn   consumer.Metrics
	pipeSink = new(consumertest.MetricsSink)
)

type testComponent struct {
	component.StartFunc
	component.ShutdownFunc
	consumer.ConsumeMetricsFunc
}

func (testComponent) Capabilities() consumer.Capabilities { return consumer.Capabilities{} }

type emptyConfig struct{}

func restartFactories() (otelcol.Factories, error) {
	rf := receiver.NewFactory(testTypeIn, func() component.Config { return &emptyConfig{} },
		receiver.WithMetrics(func(_ context.Context, _ receiver.Settings, _ component.Config, next consumer.Metrics) (receiver.Metrics, error) {
			pipeMu.Lock()
			pipeIn = next
			pipeMu.Unlock()
			return testComponent{}, nil
		}, component.StabilityLevelDevelopment))
	ef := exporter.NewFactory(testTypeOut, func() component.Config { return &emptyConfig{} },
		exporter.WithMetrics(func(context.Context, exporter.Settings, component.Config) (exporter.Metrics, error) {
			return testComponent{ConsumeMetricsFunc: pipeSink.ConsumeMetrics}, nil
		}, component.StabilityLevelDevelopment))
	var err error
	f := otelcol.Factories{}
	if f.Receivers, err = otelcol.MakeFactoryMap[receiver.Factory](rf); err != nil {
		return f, err
	}
	if f.Processors, err = otelcol.MakeFactoryMap[processor.Factory](NewFactory()); err != nil {
		return f, err
	}
	if f.Extensions, err = otelcol.MakeFactoryMap[extension.Factory](filestorage.NewFactory()); err != nil {
		return f, err
	}
	f.Exporters, err = otelcol.MakeFactoryMap[exporter.Factory](ef)
	return f, err
}

const restartConfig = `
extensions:
  file_storage:
    directory: ${env:ANOMALY_STORAGE_DIR}
    create_directory: true
receivers:
  testin:
processors:
  anomaly:
    storage: file_storage
    learning_period: 50
    snapshot_interval: 1h
exporters:
  testout:
service:
  extensions: [file_storage]
  telemetry:
    metrics:
      level: none
  pipelines:
    metrics:
      receivers: [testin]
      processors: [anomaly]
      exporters: [testout]
`

// TestStateSurvivesRestart runs the processor in the real Collector runtime
// with file_storage, restarts it on the same directory and finds that the
// series does not learn again: the first value after the restart is scored.
func TestStateSurvivesRestart(t *testing.T) {
	t.Setenv("ANOMALY_STORAGE_DIR", filepath.Join(t.TempDir(), "storage"))
	vals := noisy(11, 100)
	send := func(i int) {
		pipeMu.Lock()
		next := pipeIn
		pipeMu.Unlock()
		require.NoError(t, next.ConsumeMetrics(context.Background(),
			batch(point{metric: "app.latency", resource: "r", ts: t0.Add(time.Duration(i) * time.Minute), v: vals[i]})))
	}
	scored := func() int { return len(pointsOfAll(pipeSink.AllMetrics(), "app.latency"+scoreSuffix)) }

	pipeSink.Reset()
	col := collectortest.Start(t, restartFactories, restartConfig)
	for i := 0; i < 49; i++ {
		send(i)
	}
	assert.Zero(t, scored(), "learning: 49 values")
	col.Shutdown(t) // the state is written on Shutdown (the snapshot interval is 1h)

	pipeSink.Reset()
	col = collectortest.Start(t, restartFactories, restartConfig)
	send(49)
	assert.Zero(t, scored(), "the 50th value is still learning")
	send(50)
	assert.Equal(t, 1, scored(), "the 51st value is scored: 49 values were not forgotten")
	before := pointsOfAll(pipeSink.AllMetrics(), "app.latency"+scoreSuffix)
	col.Shutdown(t)

	// and once more, with a series that was already scoring
	pipeSink.Reset()
	collectortest.Start(t, restartFactories, restartConfig)
	send(50) // the last value again, as a re-emitted window: its stored result
	assert.Equal(t, before, pointsOfAll(pipeSink.AllMetrics(), "app.latency"+scoreSuffix))
	send(51)
	require.Equal(t, 2, scored(), "scored at once after the second restart")
}

func pointsOfAll(mds []pmetric.Metrics, name string) []outPoint {
	var out []outPoint
	for _, md := range mds {
		out = append(out, pointsOf(md, name)...)
	}
	return out
}
