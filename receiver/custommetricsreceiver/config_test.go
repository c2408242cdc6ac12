package custommetricsreceiver

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"

	"github.com/custommetrics/bundle/receiver/custommetricsreceiver/internal/metadata"

	"github.com/custommetrics/bundle/internal/calendar"
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
	full.AllowUnauthenticated = true
	full.Limits = LimitsConfig{MaxNameLength: 128, MaxKeyLength: 512, MaxPointsPerRequest: 5000}
	full.ThreatConnect.HMACMaxSkew = 30 * time.Second
	full.ThreatConnect.PathPrefix = "/tc/api"
	full.ThreatConnect.ReturnValue = false
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
	full.LaunchDarkly.PathPrefix = "/ld"
	full.LaunchDarkly.AccessTokens = []LaunchDarklyAccessToken{
		{Token: "${env:LD_ACCESS_TOKEN}", Access: Access{Tenant: "org-a"}, Projects: []string{"web", "mobile"}},
		{Token: "api-reader", Access: Access{ReadOnly: true}},
	}
	full.LaunchDarkly.RateLimitPerMinute = 300
	full.LaunchDarkly.Events.Path = "/ld/events"
	full.LaunchDarkly.Events.Interval = calendar.Day
	full.LaunchDarkly.Events.SDKKeys = []LaunchDarklySDKKey{{Key: "${env:LD_SDK_KEY}", Tenant: "org-a", Project: "web"}}
	full.LaunchDarkly.Events.ClientSideIDs = []LaunchDarklyClientSideID{{ID: "5f0a1b2c3d4e5f6a7b8c9d0e", Tenant: "org-a", Project: "web"}}
	full.Embrace.PathPrefix = "/embrace"
	full.Embrace.Tokens = []EmbraceToken{
		{Token: "${env:EMBRACE_TOKEN}", Access: Access{Tenant: "org-a"}, AppIDs: []string{"appID1", "appID2"}},
		{Token: "embrace-reader", Access: Access{ReadOnly: true}},
	}
	full.Embrace.BaseMetrics = []EmbraceBaseMetric{
		{Name: "sessions_total", Attributes: []string{"app_version", "os_version"}},
		{Name: "crashes_total", Attributes: []string{"app_version", "device"}},
	}

	off := createDefaultConfig().(*Config)
	off.LaunchDarkly.Enabled = false
	off.LaunchDarkly.Events.Enabled = false
	off.Embrace.Enabled = false

	tests := []struct {
		id       component.ID
		expected component.Config
	}{
		{id: component.NewID(metadata.Type), expected: createDefaultConfig()},
		{id: component.NewIDWithName(metadata.Type, "custom"), expected: custom},
		{id: component.NewIDWithName(metadata.Type, "full"), expected: full},
		{id: component.NewIDWithName(metadata.Type, "ld_off"), expected: off},
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
	for _, msg := range []string{
		"limits: max_name_length, max_points_per_request must be positive",
		"threatconnect::hmac_max_skew must be positive",
		"launchdarkly::access_tokens[0]::token must not be empty",
		`launchdarkly::access_tokens[0]::projects: "bad project" is not a valid project key`,
		"launchdarkly::rate_limit_per_minute must not be negative",
		`launchdarkly::events::path "events/" must start with '/' and not end with '/'`,
		"launchdarkly::events::sdk_keys[1]: the key is listed twice",
		`launchdarkly::events::sdk_keys[1]::project "" is not a valid project key`,
		"launchdarkly::events::client_side_ids[0]::id must not be empty",
		`launchdarkly::events::client_side_ids[2]: id "env-1" is listed twice`,
		`launchdarkly::events::client_side_ids[2]::project "bad project" is not a valid project key`,
		`launchdarkly::events::client_side_ids[3]::id "a/b" is invalid`,
		"embrace::tokens[0]::token must not be empty",
		"embrace::base_metrics[0]::attributes[0] must not be empty",
		`embrace::base_metrics[1]: "m" is declared twice`,
	} {
		assert.ErrorContains(t, err, msg)
	}
}

func TestDefaultConfigListensOnLoopbackOnly(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	assert.Equal(t, "127.0.0.1:8181", cfg.ServerConfig.NetAddr.Endpoint)
	assert.False(t, cfg.AllowUnauthenticated)
	assert.Equal(t, 5*time.Minute, cfg.ThreatConnect.HMACMaxSkew)
	assert.True(t, cfg.ThreatConnect.ReturnValue, "returnValue is answered unless turned off")
	assert.Equal(t, LimitsConfig{MaxNameLength: 256, MaxKeyLength: 1024, MaxPointsPerRequest: 10000}, cfg.Limits)
	assert.True(t, cfg.LaunchDarkly.Enabled)
	assert.Equal(t, "/launchdarkly/events", cfg.LaunchDarkly.Events.Path)
	assert.Equal(t, calendar.Hour, cfg.LaunchDarkly.Events.Interval)
	assert.True(t, cfg.Embrace.Enabled)
	assert.Equal(t, []EmbraceBaseMetric{{Name: "sessions_total", Attributes: []string{"app_version", "os_version"}}}, cfg.Embrace.BaseMetrics, "the Embrace document's table")
}

func TestValidate(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	cfg.ServerConfig.NetAddr.Endpoint = ""
	assert.ErrorContains(t, cfg.Validate(), "endpoint must not be empty")

	cfg = createDefaultConfig().(*Config)
	cfg.ServerConfig.MaxRequestBodySize = -1
	assert.ErrorContains(t, cfg.Validate(), "max_request_body_size must not be negative")

	cfg = createDefaultConfig().(*Config)
	cfg.Limits.MaxNameLength = 5
	cfg.Sleuth.ImpactSources = []SleuthImpactSource{{ID: 1, Metric: "12345"}, {ID: 2, Metric: "123456"}}
	err := cfg.Validate()
	assert.ErrorContains(t, err, "sleuth::impact_sources[1]::metric is longer than limits::max_name_length (5 bytes)")
	assert.NotContains(t, err.Error(), "impact_sources[0]")

	// Paths that http.ServeMux would read as pattern syntax are refused here, not by a panic at start.
	for _, p := range []string{"/a{b", "/{x}", "/a b", "/x/{$}"} {
		cfg = createDefaultConfig().(*Config)
		cfg.BigFix.PathPrefix = p
		cfg.LaunchDarkly.Events.Path = p
		err = cfg.Validate()
		assert.ErrorContains(t, err, fmt.Sprintf("bigfix::path_prefix %q must not contain '{', '}' or white space", p))
		assert.ErrorContains(t, err, fmt.Sprintf("launchdarkly::events::path %q must not contain '{', '}' or white space", p))
	}
}
