package custommetricsreceiver

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"

	"github.com/custommetrics/bundle/receiver/custommetricsreceiver/internal/metadata"
)

func TestLoadConfig(t *testing.T) {
	t.Setenv("TC_TOKEN", "tc-token")
	t.Setenv("TC_SECRET", "tc-secret")
	t.Setenv("BIGFIX_PASSWORD", "bf-password")
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	require.NoError(t, err)

	custom := createDefaultConfig().(*Config)
	custom.ServerConfig.NetAddr.Endpoint = "127.0.0.1:9191"
	custom.ServerConfig.MaxRequestBodySize = 65536

	full := createDefaultConfig().(*Config)
	defs := component.MustNewID("definitions")
	full.Definitions = &defs
	full.ThreatConnect.PathPrefix = "/tc/api"
	full.ThreatConnect.Tokens = []ThreatConnectToken{
		{Token: "${env:TC_TOKEN}", Access: Access{Tenant: "org-a"}},
		{Token: "read-only-token", Access: Access{Tenant: "org-a", ReadOnly: true}},
	}
	full.ThreatConnect.HMACKeys = []ThreatConnectHMACKey{{AccessID: "12345678901234567890", SecretKey: "${env:TC_SECRET}", Access: Access{Tenant: "org-b"}}}
	full.Sleuth.Enabled = false
	full.Sleuth.APIKeys = []SleuthAPIKey{{Key: "sleuth-key"}}
	full.Sleuth.ImpactSources = []SleuthImpactSource{{ID: 42, Metric: "checkout.latency", Unit: "ms"}}
	full.Sleuth.MinInterval = time.Minute
	full.BigFix.Users = []BigFixUser{
		{Username: "admin", Password: "${env:BIGFIX_PASSWORD}", Role: RoleMasterOperator},
		{Username: "ops", Password: "ops-password", Role: RoleOperator, Tenant: "ops"},
	}

	tests := []struct {
		id       component.ID
		expected component.Config
	}{
		{id: component.NewID(metadata.Type), expected: createDefaultConfig()},
		{id: component.NewIDWithName(metadata.Type, "custom"), expected: custom},
		{id: component.NewIDWithName(metadata.Type, "full"), expected: full},
	}
	for _, tt := range tests {
		t.Run(tt.id.String(), func(t *testing.T) {
			cfg := createDefaultConfig()
			sub, err := cm.Sub(tt.id.String())
			require.NoError(t, err)
			require.NoError(t, sub.Unmarshal(cfg))
			require.NoError(t, confmap.Validate(cfg))
			assert.Equal(t, tt.expected, cfg)
		})
	}
}

func TestLoadConfigInvalid(t *testing.T) {
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	require.NoError(t, err)
	cfg := createDefaultConfig()
	sub, err := cm.Sub(component.NewIDWithName(metadata.Type, "bad").String())
	require.NoError(t, err)
	require.NoError(t, sub.Unmarshal(cfg))
	err = confmap.Validate(cfg)
	assert.ErrorContains(t, err, "sleuth::impact_sources[1]: id 1 is declared twice")
	assert.ErrorContains(t, err, `bigfix::users[0]::role must be "master_operator" or "operator"`)
}

func TestDefaultConfigListensOnLoopbackOnly(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	assert.Equal(t, "127.0.0.1:8181", cfg.ServerConfig.NetAddr.Endpoint)
}

func TestValidate(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	cfg.ServerConfig.NetAddr.Endpoint = ""
	assert.ErrorContains(t, cfg.Validate(), "endpoint must not be empty")

	cfg = createDefaultConfig().(*Config)
	cfg.ServerConfig.MaxRequestBodySize = -1
	assert.ErrorContains(t, cfg.Validate(), "max_request_body_size must not be negative")
}
