package aggregateprocessor

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
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
			compareGolden(t, filepath.Join(dir, "next.yaml"), drain(t, sink))

			require.NoError(t, p.tick(ctx, clk.now()))
			compareGolden(t, filepath.Join(dir, "output.yaml"), drain(t, sink))
			require.NoError(t, p.tick(ctx, clk.now()))
			require.Zero(t, len(sink.AllMetrics()), "a second check emits nothing new")

			if _, err := os.Stat(filepath.Join(dir, "late.yaml")); err == nil {
				late, err := golden.ReadMetrics(filepath.Join(dir, "late.yaml"))
				require.NoError(t, err)
				require.NoError(t, p.ConsumeMetrics(ctx, late))
				require.Zero(t, drain(t, sink).ResourceMetrics().Len(), "late values are aggregated, not passed through")
				require.NoError(t, p.tick(ctx, clk.now()))
				compareGolden(t, filepath.Join(dir, "restated.yaml"), drain(t, sink))
			}
		})
	}
	require.GreaterOrEqual(t, n, 10)
}

// drain returns everything the sink received since the last drain, as one
// Metrics: the emissions of one check (a series with several windows to
// close goes out in several, see roundsOf) merged by resource, scope and
// metric, so that the goldens hold figures, not how they were batched.
func drain(t *testing.T, sink *consumertest.MetricsSink) pmetric.Metrics {
	out := pmetric.NewMetrics()
	for _, md := range sink.AllMetrics() {
		for _, rm := range md.ResourceMetrics().All() {
			for _, sm := range rm.ScopeMetrics().All() {
				dst := scopeIn(out, rm, sm)
				for _, m := range sm.Metrics().All() {
					if into, ok := sameMetric(dst, m); ok {
						switch m.Type() {
						case pmetric.MetricTypeSum:
							m.Sum().DataPoints().MoveAndAppendTo(into.Sum().DataPoints())
						case pmetric.MetricTypeGauge:
							m.Gauge().DataPoints().MoveAndAppendTo(into.Gauge().DataPoints())
						default:
							t.Fatalf("unexpected %s metric %s", m.Type(), m.Name())
						}
						continue
					}
					m.CopyTo(dst.AppendEmpty())
				}
			}
		}
	}
	sink.Reset()
	return out
}

// scopeIn returns the metrics of rm's resource and sm's scope in out,
// adding them when missing.
func scopeIn(out pmetric.Metrics, rm pmetric.ResourceMetrics, sm pmetric.ScopeMetrics) pmetric.MetricSlice {
	for _, o := range out.ResourceMetrics().All() {
		if !reflect.DeepEqual(o.Resource().Attributes().AsRaw(), rm.Resource().Attributes().AsRaw()) {
			continue
		}
		for _, os := range o.ScopeMetrics().All() {
			if os.Scope().Name() == sm.Scope().Name() && os.Scope().Version() == sm.Scope().Version() {
				return os.Metrics()
			}
		}
	}
	o := out.ResourceMetrics().AppendEmpty()
	rm.Resource().CopyTo(o.Resource())
	os := o.ScopeMetrics().AppendEmpty()
	sm.Scope().CopyTo(os.Scope())
	return os.Metrics()
}

// sameMetric finds the metric of m's name, type and metadata in ms.
func sameMetric(ms pmetric.MetricSlice, m pmetric.Metric) (pmetric.Metric, bool) {
	for _, o := range ms.All() {
		if o.Name() == m.Name() && o.Type() == m.Type() && reflect.DeepEqual(o.Metadata().AsRaw(), m.Metadata().AsRaw()) {
			return o, true
		}
	}
	return pmetric.Metric{}, false
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
