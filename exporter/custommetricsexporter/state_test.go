package custommetricsexporter

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/storage/filestorage"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/exporterhelper"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/extension/extensiontest"

	"github.com/custommetrics/bundle/exporter/custommetricsexporter/internal/metadata"
)

// extensionHost is a component.Host that offers extensions.
type extensionHost map[component.ID]component.Component

func (h extensionHost) GetExtensions() map[component.ID]component.Component { return h }

// startWithStorage is one "collector process": a real file_storage extension
// on dir and the exporter keeping its state there. stop shuts both down, as
// a collector stop does (also run at cleanup).
func startWithStorage(t *testing.T, dir string, mutate func(*Config)) (exporter.Metrics, func()) {
	t.Helper()
	ctx := context.Background()
	ff := filestorage.NewFactory()
	fcfg := ff.CreateDefaultConfig().(*filestorage.Config)
	fcfg.Directory = dir
	ext, err := ff.Create(ctx, extensiontest.NewNopSettings(ff.Type()), fcfg)
	require.NoError(t, err)
	require.NoError(t, ext.Start(ctx, componenttest.NewNopHost()))
	storageID := component.NewID(ff.Type())
	host := extensionHost{storageID: ext}

	f := NewFactory()
	cfg := f.CreateDefaultConfig().(*Config)
	cfg.QueueConfig = configoptional.None[exporterhelper.QueueBatchConfig]()
	cfg.RetryConfig.InitialInterval = 10 * time.Millisecond
	cfg.Storage = &storageID
	mutate(cfg)
	require.NoError(t, cfg.Validate())
	set := exportertest.NewNopSettings(metadata.Type)
	set.ID = component.NewID(metadata.Type) // the same ID in both "processes": the same storage
	exp, err := f.CreateMetrics(ctx, set, cfg)
	require.NoError(t, err)
	require.NoError(t, exp.Start(ctx, host))
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		require.NoError(t, exp.Shutdown(ctx))
		require.NoError(t, ext.Shutdown(ctx))
	}
	t.Cleanup(stop)
	return exp, stop
}

// TestStateSurvivesRestart: with storage, what the forwarders know of the
// vendors survives a restart, so the cases that are inexact without it
// (README) are exact: an Average window restated after the restart, and a
// BigFix document whose other members were posted before it.
func TestStateSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	p := startPeer(t, nil)
	p.createTC(t, "mean", "Average", false)
	dir := t.TempDir()
	cfg := func(c *Config) {
		tcExporterConfig(p, false, ThreatConnectMetric{Match: Match{Name: "mean"}})(c)
		c.BigFix = &BigFixConfig{Endpoint: p.base, Username: bigfixUser, Password: bigfixPass, Tags: []BigFixTag{
			{Match: Match{Name: "build.duration"}, Tag: "ci", Field: "duration"},
			{Match: Match{Name: "tests.failed"}, Tag: "ci", Field: "tests_failed", KeyAttribute: "suite"},
		}}
	}

	exp1, stop1 := startWithStorage(t, dir, cfg)
	for _, fig := range []float64{4, 6} {
		require.NoError(t, exp1.ConsumeMetrics(ctx, figureMetrics("mean", "average", hour0, fig, nil)))
	}
	require.NoError(t, exp1.ConsumeMetrics(ctx, rawMetrics("build.duration", raw{at: hour0, value: 12.5})))
	stop1()

	exp2, _ := startWithStorage(t, dir, cfg)
	require.NoError(t, exp2.ConsumeMetrics(ctx, figureMetrics("mean", "average", hour0, 5.5, nil)))
	require.NoError(t, exp2.ConsumeMetrics(ctx, rawMetrics("tests.failed", raw{at: hour0, value: 2, attrs: map[string]string{"suite": "unit"}})))

	assert.Equal(t, 5.5, p.figure(t, "mean", `{"value":0,"weight":0,"date":"2024-01-10T00:10:00Z"}`),
		"the Average restatement after the restart makes the vendor's figure ours")
	status, b := p.call(t, http.MethodGet, "/api/deploymentmetrics/ci", "", basic(bigfixAdmin, bigfixAdmPw))
	require.Equal(t, http.StatusOK, status, "%s", b)
	var doc struct {
		Metrics []map[string]any `json:"metrics"`
	}
	require.NoError(t, json.Unmarshal(b, &doc))
	assert.Equal(t, []map[string]any{{"duration": 12.5, "tests_failed": map[string]any{"unit": 2.0}}}, doc.Metrics,
		"the member posted before the restart is still in the document")
}
