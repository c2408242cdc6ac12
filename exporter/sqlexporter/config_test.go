package sqlexporter

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"

	"github.com/custommetrics/bundle/exporter/sqlexporter/internal/metadata"
)

func TestLoadConfig(t *testing.T) {
	t.Setenv("PGPASSWORD", "secret")
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	require.NoError(t, err)

	pg := createDefaultConfig().(*Config)
	pg.Driver = DriverPostgres
	pg.DSN = "postgres://collector:${env:PGPASSWORD}@127.0.0.1:5432/metrics"

	// A queue and retries are off by default; configuring them starts from
	// the exporter's defaults (one consumer, batches).
	persistent := createDefaultConfig().(*Config)
	storage := component.MustNewID("file_storage")
	persistent.QueueConfig.GetOrInsertDefault().StorageID = &storage
	persistent.RetryConfig.Enabled = true
	persistent.RetryConfig.MaxElapsedTime = 0

	tests := []struct {
		name     string
		expected component.Config
		err      string
	}{
		{name: "", expected: createDefaultConfig()},
		{name: "postgres", expected: pg},
		{name: "bad_driver", err: `driver must be "sqlite" or "postgres", got "mysql"`},
		{name: "no_dsn", err: "dsn must not be empty"},
		{name: "two_consumers", err: "sending_queue::num_consumers must be 1, got 2"},
		{name: "persistent_queue", expected: persistent},
	}
	for _, tt := range tests {
		id := component.NewIDWithName(metadata.Type, tt.name)
		t.Run(id.String(), func(t *testing.T) {
			cfg := createDefaultConfig()
			sub, err := cm.Sub(id.String())
			require.NoError(t, err)
			require.NoError(t, sub.Unmarshal(cfg))
			if tt.err != "" {
				assert.ErrorContains(t, confmap.Validate(cfg), tt.err)
				return
			}
			require.NoError(t, confmap.Validate(cfg))
			assert.Equal(t, tt.expected, cfg)
		})
	}
}

func TestDefaultConfigStoresUnderData(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	assert.Equal(t, DriverSQLite, cfg.Driver)
	assert.Equal(t, "data/custommetrics.db", cfg.DSN)
	assert.False(t, cfg.QueueConfig.HasValue(), "no sending queue by default: a push returns once its rows are committed")
	assert.False(t, cfg.RetryConfig.Enabled, "the caller keeps the data and retries")
	require.NoError(t, confmap.Validate(cfg))
	// Configured, the queue starts from the exporter's defaults.
	assert.Equal(t, 1, cfg.QueueConfig.GetOrInsertDefault().NumConsumers)
}
