package custommetricsexporter

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"
)

func loadConfig(t *testing.T, id string) *Config {
	t.Helper()
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	require.NoError(t, err)
	sub, err := cm.Sub(id)
	require.NoError(t, err)
	cfg := createDefaultConfig().(*Config)
	require.NoError(t, sub.Unmarshal(cfg))
	return cfg
}

func TestLoadConfig(t *testing.T) {
	cfg := loadConfig(t, "custommetrics")
	require.NoError(t, confmap.Validate(cfg))
	assert.Equal(t, "10s", cfg.ClientConfig.Timeout.String())
	require.NotNil(t, cfg.ThreatConnect)
	assert.Equal(t, "12345678901234567890", cfg.ThreatConnect.AccessID)
	assert.Equal(t, "orders", cfg.ThreatConnect.Metrics[1].Metric)
	assert.True(t, cfg.ThreatConnect.Metrics[1].matches("orders.eu"))
	assert.False(t, cfg.ThreatConnect.Metrics[1].matches("xorders.eu"))
	assert.Equal(t, int64(42), cfg.Sleuth.Impacts[0].ImpactID)
	assert.Equal(t, "duration", cfg.BigFix.Tags[0].Field)
	assert.Equal(t, 1, cfg.QueueConfig.Get().NumConsumers)
	require.NotNil(t, cfg.Storage)
	assert.Equal(t, "file_storage", cfg.Storage.String())
}

func TestValidateRefuses(t *testing.T) {
	err := confmap.Validate(loadConfig(t, "custommetrics/bad"))
	require.Error(t, err)
	for _, want := range []string{
		"set the endpoint in each API section",
		"threatconnect::endpoint \"ftp://x\" must be an http or https URL",
		"threatconnect::set token or access_id and secret_key, not both",
		"threatconnect::metrics[0]: set name or regexp, not both",
		"bigfix::tags[0]: regexp",
		"bigfix::tags[0]: tag \"platform\" is reserved",
	} {
		assert.Contains(t, err.Error(), want)
	}
	assert.ErrorContains(t, createDefaultConfig().(*Config).Validate(), "configure at least one of threatconnect, sleuth, bigfix")

	cfg := loadConfig(t, "custommetrics")
	cfg.QueueConfig.Get().NumConsumers = 4
	assert.ErrorContains(t, cfg.Validate(), "num_consumers must be 1")
}
