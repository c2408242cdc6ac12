package custommetricsreceiver

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/confighttp"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/custommetrics/bundle/receiver/custommetricsreceiver/internal/metadata"
)

// TestThreatConnectHMACMaxSkew: the signature does not cover the body, so
// the skew is the replay window; a configured short one is enforced both ways.
func TestThreatConnectHMACMaxSkew(t *testing.T) {
	ts := startReceiver(t, func(c *Config) {
		tcAuthConfig(c)
		c.ThreatConnect.HMACMaxSkew = 10 * time.Second
	}, nil)
	now := time.Unix(1_700_000_000, 0)
	ts.rcv.tc.now = func() time.Time { return now }
	const id, secret = "12345678901234567890", "s3cr3t"
	createDocMetrics(t, ts, "Authorization", "TC-Token tok-a")

	// Inside the window: accepted, and the value counted.
	resp := signedRequest(ts, http.MethodPost, "/api/v2/customMetrics/tasksCompleted/data", `{"value":"1"}`, id, secret, now.Add(-9*time.Second))
	require.Equal(t, http.StatusNoContent, resp.status, string(resp.body))
	resp = signedRequest(ts, http.MethodPost, "/api/v2/customMetrics/tasksCompleted/data", `{"value":"1"}`, id, secret, now.Add(9*time.Second))
	require.Equal(t, http.StatusNoContent, resp.status, string(resp.body))
	require.Len(t, ts.points(), 2)

	// Older (or newer) than the configured skew: refused, nothing counted.
	for _, at := range []time.Time{now.Add(-11 * time.Second), now.Add(11 * time.Second), now.Add(-4 * time.Minute)} {
		resp = signedRequest(ts, http.MethodPost, "/api/v2/customMetrics/tasksCompleted/data", `{"value":"1"}`, id, secret, at)
		assert.Equal(t, http.StatusUnauthorized, resp.status)
		assert.Equal(t, map[string]any{"status": "Failure", "message": "Timestamp out of acceptable time range"}, resp.json(t))
	}
	assert.Len(t, ts.points(), 2)

	// Two identical requests within a second are both accepted (no replay cache).
	for range 2 {
		resp = signedRequest(ts, http.MethodPost, "/api/v2/customMetrics/tasksCompleted/data", `{"value":"1"}`, id, secret, now)
		require.Equal(t, http.StatusNoContent, resp.status, string(resp.body))
	}
	assert.Len(t, ts.points(), 4)
}

func TestThreatConnectHMACMaxSkewDefaultAndValidation(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	assert.Equal(t, 5*time.Minute, cfg.ThreatConnect.HMACMaxSkew, "ThreatConnect's own window, as before")
	for _, d := range []time.Duration{0, -time.Second} {
		cfg.ThreatConnect.HMACMaxSkew = d
		assert.ErrorContains(t, cfg.Validate(), "threatconnect::hmac_max_skew must be positive")
	}
}

// startWith creates and starts a receiver on cfg; the caller checks the error.
func startWith(t *testing.T, cfg *Config) error {
	t.Helper()
	cfg.ThreatConnect.ReturnValue = false // the sink reports no figures
	require.NoError(t, cfg.Validate())
	r, err := NewFactory().CreateMetrics(context.Background(), receivertest.NewNopSettings(metadata.Type), cfg, new(consumertest.MetricsSink))
	require.NoError(t, err)
	err = r.Start(context.Background(), componenttest.NewNopHost())
	t.Cleanup(func() { require.NoError(t, r.Shutdown(context.Background())) })
	return err
}

// allCredentials gives every API credentials.
func allCredentials(c *Config) {
	c.ThreatConnect.Tokens = []ThreatConnectToken{{Token: "tc"}}
	c.Sleuth.APIKeys = []SleuthAPIKey{{Key: "sleuth"}}
	c.BigFix.Users = []BigFixUser{{Username: "u", Password: "p", Role: RoleMasterOperator}}
	c.LaunchDarkly.AccessTokens = []LaunchDarklyAccessToken{{Token: "ld"}}
	c.Embrace.Tokens = []EmbraceToken{{Token: "emb"}}
}

func TestOpenAPIRefusedOnNonLoopbackEndpoint(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	assert.False(t, cfg.AllowUnauthenticated, "secure by default")
	cfg.ServerConfig.NetAddr.Endpoint = "0.0.0.0:0"
	allCredentials(cfg)
	cfg.BigFix.Users = nil // BigFix alone is open
	err := startWith(t, cfg)
	require.Error(t, err)
	for _, want := range []string{`"0.0.0.0:0"`, "bigfix", "bigfix::users", "allow_unauthenticated: true", "loopback"} {
		assert.ErrorContains(t, err, want)
	}
	assert.NotContains(t, err.Error(), "sleuth::api_keys", "APIs with credentials are not named")

	// Every API open: all are named, each with the setting that fixes it.
	cfg = createDefaultConfig().(*Config)
	cfg.ServerConfig.NetAddr.Endpoint = ":0" // empty host: every interface
	err = startWith(t, cfg)
	require.Error(t, err)
	for _, want := range []string{"threatconnect::tokens", "sleuth::api_keys", "bigfix::users", "launchdarkly::access_tokens", "embrace::tokens"} {
		assert.ErrorContains(t, err, want)
	}
}

func TestOpenAPIAllowedWhenAllowUnauthenticated(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	cfg.ServerConfig.NetAddr.Endpoint = "0.0.0.0:0"
	cfg.AllowUnauthenticated = true
	require.NoError(t, startWith(t, cfg))
}

func TestAPIsWithCredentialsAllowedOnNonLoopbackEndpoint(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	cfg.ServerConfig.NetAddr.Endpoint = "0.0.0.0:0"
	allCredentials(cfg)
	require.NoError(t, startWith(t, cfg))

	// A disabled API does not count, with or without credentials.
	cfg = createDefaultConfig().(*Config)
	cfg.ServerConfig.NetAddr.Endpoint = "0.0.0.0:0"
	allCredentials(cfg)
	cfg.Embrace.Tokens = nil
	cfg.Embrace.Enabled = false
	require.NoError(t, startWith(t, cfg))
}

func TestOpenAPIAllowedOnLoopback(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	cfg.ServerConfig.NetAddr.Endpoint = "127.0.0.1:0"
	require.NoError(t, startWith(t, cfg))

	for endpoint, local := range map[string]bool{
		"127.0.0.1:8181": true, "127.1.2.3:8181": true, "[::1]:8181": true, "localhost:8181": true, "LOCALHOST:1": true,
		"0.0.0.0:8181": false, "[::]:8181": false, ":8181": false, "10.0.0.1:8181": false, "example.com:8181": false, "garbage": false,
	} {
		srv := createDefaultConfig().(*Config).ServerConfig
		srv.NetAddr.Endpoint = endpoint
		assert.Equal(t, local, localOnly(srv), endpoint)
	}
	srv := createDefaultConfig().(*Config).ServerConfig
	srv.NetAddr.Transport = "unix"
	srv.NetAddr.Endpoint = "/run/collector.sock"
	assert.True(t, localOnly(srv), "a Unix socket is reachable from this machine only")
}

// An auth extension authenticates every request before the APIs see it, so no API is open.
func TestOpenAPIAllowedBehindAuthExtension(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	cfg.ServerConfig.NetAddr.Endpoint = "0.0.0.0:8181"
	require.Error(t, cfg.checkExposure())
	cfg.ServerConfig.Auth = configoptional.Some(confighttp.AuthConfig{})
	assert.NoError(t, cfg.checkExposure())
}

// TestBigFixCredentialComparesBothHalves: the password is compared even when
// the username does not match (no early exit), and the result is unchanged.
func TestBigFixCredentialComparesBothHalves(t *testing.T) {
	c := newBigFixCredential("master", "mpw")
	for _, tt := range []struct {
		user, pass     string
		userOK, passOK int
	}{
		{"master", "mpw", 1, 1},
		{"master", "wrong", 1, 0},
		{"intruder", "mpw", 0, 1}, // compared although the username is wrong
		{"intruder", "wrong", 0, 0},
		{"", "", 0, 0},
		{"master", "mpw-longer", 1, 0},
	} {
		u, p := c.compare(newBigFixCredential(tt.user, tt.pass))
		assert.Equal(t, [2]int{tt.userOK, tt.passOK}, [2]int{u, p}, "%s:%s", tt.user, tt.pass)
	}
}

func TestBigFixBasicAuth(t *testing.T) {
	ts := startReceiver(t, bigFixConfig, nil)
	for _, tt := range []struct {
		user, pass string
		status     int
	}{
		{"master", "mpw", http.StatusOK},
		{"op", "opw", http.StatusForbidden}, // authenticated, an operator may not read
		{"master", "opw", http.StatusUnauthorized},
		{"op", "mpw", http.StatusUnauthorized},
		{"nobody", "mpw", http.StatusUnauthorized},
		{"master", "", http.StatusUnauthorized},
		{"master", "mpw ", http.StatusUnauthorized},
	} {
		resp := ts.do(http.MethodGet, "/api/deploymentmetrics", "", "Authorization", basic(tt.user, tt.pass))
		assert.Equal(t, tt.status, resp.status, "%s:%s", tt.user, tt.pass)
		if tt.status == http.StatusUnauthorized {
			assert.Equal(t, `Basic realm="BigFix"`, resp.header.Get("WWW-Authenticate"))
			assert.Equal(t, "Unauthorized", string(resp.body))
		}
	}
	assert.Equal(t, http.StatusUnauthorized, ts.do(http.MethodGet, "/api/deploymentmetrics", "").status)
}

// TestBigFixPlatformIsPerTenant: the platform document shows a tenant its
// own counters, not every tenant's.
func TestBigFixPlatformIsPerTenant(t *testing.T) {
	ts := startReceiver(t, func(c *Config) {
		c.BigFix.Users = []BigFixUser{
			{Username: "a", Password: "apw", Role: RoleMasterOperator, Tenant: "tenant-a"},
			{Username: "b", Password: "bpw", Role: RoleMasterOperator, Tenant: "tenant-b"},
		}
		c.ThreatConnect.Tokens = []ThreatConnectToken{{Token: "tok-a", Access: Access{Tenant: "tenant-a"}}}
	}, nil)
	a := []string{"Authorization", basic("a", "apw")}
	b := []string{"Authorization", basic("b", "bpw")}
	require.Equal(t, http.StatusOK, ts.do(http.MethodPost, "/api/deploymentmetrics/custom", `{"x":1,"y":2,"z":3}`, a...).status)
	createDocMetrics(t, ts, "Authorization", "TC-Token tok-a")
	require.Equal(t, http.StatusNoContent, ts.do(http.MethodPost, "/api/v2/customMetrics/tasksCompleted/data", `{"value":"1"}`, "Authorization", "TC-Token tok-a").status)
	require.Equal(t, http.StatusOK, ts.do(http.MethodPost, "/api/deploymentmetrics/custom", `[5]`, b...).status)

	platform := func(h []string) map[string]string {
		t.Helper()
		resp := ts.do(http.MethodGet, "/api/deploymentmetrics/platform", "", h...)
		require.Equal(t, http.StatusOK, resp.status)
		var doc struct {
			Metrics []map[string]string `json:"metrics"`
		}
		require.NoError(t, json.Unmarshal(resp.body, &doc))
		require.Len(t, doc.Metrics, 1)
		return doc.Metrics[0]
	}
	pa, pb := platform(a), platform(b)
	assert.Equal(t, "3", pa["values_accepted_bigfix"])
	assert.Equal(t, "1", pa["values_accepted_threatconnect"])
	assert.Equal(t, "1", pb["values_accepted_bigfix"], "tenant A's posts are not in tenant B's platform document")
	assert.Equal(t, "0", pb["values_accepted_threatconnect"])
	assert.Equal(t, "0", pb["definitions_threatconnect"])

	// The listing's platform document is scoped the same way.
	resp := ts.do(http.MethodGet, "/api/deploymentmetrics", "", b...)
	require.Equal(t, http.StatusOK, resp.status)
	var docs []struct {
		Tag     string          `json:"tag"`
		Metrics json.RawMessage `json:"metrics"`
	}
	require.NoError(t, json.Unmarshal(resp.body, &docs))
	require.Len(t, docs, 2)
	assert.Equal(t, "platform", docs[0].Tag)
	var figures []map[string]string
	require.NoError(t, json.Unmarshal(docs[0].Metrics, &figures))
	assert.Equal(t, "1", figures[0]["values_accepted_bigfix"])
}
