package definitionsextension

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"

	"github.com/custommetrics/bundle/extension/definitionsextension/internal/metadata"
)

func TestLoadConfig(t *testing.T) {
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	require.NoError(t, err)
	storageID := component.MustNewID("file_storage")
	tests := []struct {
		id       component.ID
		expected component.Config
		err      string
	}{
		{id: component.NewID(metadata.Type), expected: &Config{MaxDefinitionsPerTenant: 10_000}},
		{id: component.NewIDWithName(metadata.Type, "durable"), expected: &Config{Storage: &storageID, MaxDefinitionsPerTenant: 10_000}},
		{id: component.NewIDWithName(metadata.Type, "unlimited"), expected: &Config{MaxDefinitionsPerTenant: 0}},
		{id: component.NewIDWithName(metadata.Type, "small"), expected: &Config{MaxDefinitionsPerTenant: 100}},
		{id: component.NewIDWithName(metadata.Type, "invalid"), err: "max_definitions_per_tenant must be 0 (no limit) or positive"},
		{id: component.NewIDWithName(metadata.Type, "shared"), expected: &Config{MaxDefinitionsPerTenant: 10_000,
			Postgres: &PostgresConfig{DSN: "postgres://collector:secret@db.example:5432/custommetrics"}}},
		{id: component.NewIDWithName(metadata.Type, "both"), err: "storage and postgres are exclusive"},
		{id: component.NewIDWithName(metadata.Type, "nodsn"), err: "postgres::dsn is required"},
		{id: component.NewIDWithName(metadata.Type, "baddsn"), err: "postgres::dsn is not a valid PostgreSQL URL"},
	}
	for _, tt := range tests {
		t.Run(tt.id.String(), func(t *testing.T) {
			cfg := createDefaultConfig()
			sub, err := cm.Sub(tt.id.String())
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
