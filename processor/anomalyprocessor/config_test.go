package anomalyprocessor

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap/confmaptest"

	"github.com/custommetrics/bundle/processor/anomalyprocessor/internal/detector"
)

func TestLoadConfig(t *testing.T) {
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	require.NoError(t, err)
	storageID := component.MustNewID("file_storage")
	custom := &Config{
		Include:            MatchConfig{Names: []string{"app.requests"}, Regexps: []string{`^db\.`}},
		Exclude:            MatchConfig{Regexps: []string{`\.debug$`}},
		Sensitivity:        0.7,
		LearningPeriod:     100,
		LearningDuration:   24 * time.Hour,
		Seasonality:        "daily",
		Direction:          "up",
		MinRelativeChange:  0.2,
		Cooldown:           10,
		Metrics:            true,
		Attributes:         true,
		Storage:            &storageID,
		SnapshotInterval:   30 * time.Second,
		MaxSeries:          5000,
		MaxSeriesPerTenant: 500,
		SeriesTTL:          48 * time.Hour,
	}
	for id, want := range map[string]*Config{"anomaly": defaultCfg(), "anomaly/custom": custom} {
		t.Run(id, func(t *testing.T) {
			sub, err := cm.Sub(id)
			require.NoError(t, err)
			cfg := NewFactory().CreateDefaultConfig()
			require.NoError(t, sub.Unmarshal(cfg))
			require.NoError(t, cfg.(*Config).Validate())
			assert.Equal(t, want, cfg)
		})
	}
}

// The defaults are the detector's, so nabeval measures what the processor runs.
func TestDefaultsAreTheDetectors(t *testing.T) {
	d, err := defaultCfg().detectorConfig()
	require.NoError(t, err)
	assert.Equal(t, detector.DefaultConfig(), d)
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		mod  func(*Config)
		want string
	}{
		{func(c *Config) { c.Sensitivity = 1.5 }, "sensitivity must be within [0,1], got 1.5"},
		{func(c *Config) { c.LearningPeriod = -1 }, "learning_period must not be negative"},
		{func(c *Config) { c.LearningDuration = -time.Second }, "learning_duration must not be negative"},
		{func(c *Config) { c.Seasonality = "monthly" }, `seasonality: unknown seasonality "monthly" (want auto, none, daily or weekly)`},
		{func(c *Config) { c.Direction = "sideways" }, `direction: unknown direction "sideways" (want both, up or down)`},
		{func(c *Config) { c.MinRelativeChange = -1 }, "min_relative_change must be a non-negative number"},
		{func(c *Config) { c.Cooldown = -1 }, "cooldown must not be negative"},
		{func(c *Config) { c.Metrics = false }, "metrics and attributes are both false"},
		{func(c *Config) { c.SnapshotInterval = 0 }, "snapshot_interval must be positive"},
		{func(c *Config) { c.MaxSeries = 0 }, "max_series must be positive"},
		{func(c *Config) { c.MaxSeriesPerTenant = -1 }, "max_series_per_tenant must be 0 (no per-tenant bound) or positive"},
		{func(c *Config) { c.SeriesTTL = 0 }, "series_ttl must be positive"},
		{func(c *Config) { c.Include.Regexps = []string{"("} }, "include.regexps[0]: error parsing regexp"},
		{func(c *Config) { c.Exclude.Names = []string{""} }, "exclude.names[0] is empty"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			cfg := defaultCfg()
			tc.mod(cfg)
			assert.ErrorContains(t, cfg.Validate(), tc.want)
		})
	}
	assert.NoError(t, defaultCfg().Validate())
}
