package aggregateprocessor

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/golden"
	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/pdatatest/pmetrictest"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/confmap/confmaptest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/custommetrics/bundle/internal/definitions"
	"github.com/custommetrics/bundle/internal/wire/embrace"
)

var update = flag.Bool("update", false, "rewrite the expected outputs of the scenario tests (review the diff!)")

// scenarioNow is when scenarios run: after every window in testdata closed.
var scenarioNow = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// TestScenarios runs every testdata/<scenario>: config.yaml (optional) is
// applied on the default config, definitions.json (optional) fills the
// definitions registry with Embrace definitions, input.yaml is consumed, next.yaml (absent =
// nothing) is what passes through, output.yaml is what the next check emits.
// With late.yaml, that batch is consumed after the first check and
// restated.yaml is what the following check emits.
func TestScenarios(t *testing.T) {
	entries, err := os.ReadDir("testdata")
	require.NoError(t, err)
	n := 0
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		n++
		dir := filepath.Join("testdata", e.Name())
		t.Run(e.Name(), func(t *testing.T) {
			ctx := context.Background()
			cfg := defaultCfg()
			if _, err := os.Stat(filepath.Join(dir, "config.yaml")); err == nil {
				cm, err := confmaptest.LoadConf(filepath.Join(dir, "config.yaml"))
				require.NoError(t, err)
				require.NoError(t, cm.Unmarshal(cfg))
			}
			sink := new(consumertest.MetricsSink)
			clk := &clock{t: scenarioNow}
			p := newTestProcessor(t, cfg, sink, clk, nil)
			if _, err := os.Stat(filepath.Join(dir, "definitions.json")); err == nil {
				p.setRegistry(registryFromFile(t, filepath.Join(dir, "definitions.json")))
			}

			input, err := golden.ReadMetrics(filepath.Join(dir, "input.yaml"))
			require.NoError(t, err)
			require.NoError(t, p.ConsumeMetrics(ctx, input))
			compareGolden(t, filepath.Join(dir, "next.yaml"), drain(sink))

			require.NoError(t, p.tick(ctx, clk.now()))
			compareGolden(t, filepath.Join(dir, "output.yaml"), drain(sink))
			require.NoError(t, p.tick(ctx, clk.now()))
			require.Zero(t, len(sink.AllMetrics()), "a second check emits nothing new")

			if _, err := os.Stat(filepath.Join(dir, "late.yaml")); err == nil {
				late, err := golden.ReadMetrics(filepath.Join(dir, "late.yaml"))
				require.NoError(t, err)
				require.NoError(t, p.ConsumeMetrics(ctx, late))
				require.Zero(t, drain(sink).ResourceMetrics().Len(), "late values are aggregated, not passed through")
				require.NoError(t, p.tick(ctx, clk.now()))
				compareGolden(t, filepath.Join(dir, "restated.yaml"), drain(sink))
			}
		})
	}
	require.GreaterOrEqual(t, n, 10)
}

// drain returns everything the sink received since the last drain, as one Metrics.
func drain(sink *consumertest.MetricsSink) pmetric.Metrics {
	out := pmetric.NewMetrics()
	for _, md := range sink.AllMetrics() {
		md.ResourceMetrics().MoveAndAppendTo(out.ResourceMetrics())
	}
	sink.Reset()
	return out
}

func compareGolden(t *testing.T, path string, actual pmetric.Metrics) {
	t.Helper()
	if *update && filepath.Base(path) != "next.yaml" { // next.yaml files are written by hand
		if actual.ResourceMetrics().Len() == 0 {
			_ = os.Remove(path)
			return
		}
		require.NoError(t, golden.WriteMetricsToFile(path, actual, golden.SkipMetricTimestampNormalization()))
		return
	}
	expected := pmetric.NewMetrics()
	if _, err := os.Stat(path); err == nil {
		expected, err = golden.ReadMetrics(path)
		require.NoError(t, err)
	}
	require.NoError(t, pmetrictest.CompareMetrics(expected, actual,
		pmetrictest.IgnoreResourceMetricsOrder(), pmetrictest.IgnoreScopeMetricsOrder(),
		pmetrictest.IgnoreMetricsOrder(), pmetrictest.IgnoreMetricDataPointsOrder()), path)
}

// registryFromFile returns a registry holding the Embrace definitions of a
// JSON array of {"tenant": ..., "definition": <embrace.CustomMetric>}.
func registryFromFile(t *testing.T, path string) *definitions.Registry {
	t.Helper()
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	var defs []struct {
		Tenant     string               `json:"tenant"`
		Definition embrace.CustomMetric `json:"definition"`
	}
	require.NoError(t, json.Unmarshal(raw, &defs))
	reg := definitions.NewRegistry(&definitions.MemoryBackend{})
	for _, d := range defs {
		createEmbrace(t, reg, d.Tenant, d.Definition)
	}
	return reg
}

func createEmbrace(t testing.TB, reg *definitions.Registry, tenant string, m embrace.CustomMetric) {
	t.Helper()
	c, err := definitions.CollectionOf[embrace.CustomMetric](context.Background(), reg, definitions.KindEmbraceMetric, tenant)
	require.NoError(t, err)
	_, err = c.Create(context.Background(), m.AppID+"/"+m.Name, func(int64) (embrace.CustomMetric, error) { return m, nil })
	require.NoError(t, err)
}
