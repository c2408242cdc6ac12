package custommetricsreceiver

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/custommetrics/bundle/internal/otelmap"
)

// The examples of ../shared/api/002_6305281f6740bb07.txt with their placeholders filled in.
const (
	sleuthDocHeaderBody = `{
  "value": 1.5
}`
	sleuthDocBodyWithKey = `{
  "value": 1.5,
  "api_key": "sleuth-key"
}`
	sleuthDocPowerShellBody = `{ 
    "api_key": "sleuth-key",
    "value": 1.5 
}`
)

func sleuthConfig(c *Config) {
	c.Sleuth.APIKeys = []SleuthAPIKey{{Key: "sleuth-key"}, {Key: "other-key", Tenant: "other"}}
	c.Sleuth.ImpactSources = []SleuthImpactSource{
		{ID: 42, Metric: "checkout.latency", Unit: "ms"},
		{ID: 43, Metric: "error.rate"},
		{ID: 44, Metric: "other.metric", Tenant: "other"},
	}
	c.Sleuth.MinInterval = 0
}

func TestSleuthDocumentExamples(t *testing.T) {
	ts := startReceiver(t, sleuthConfig, nil)
	const path = "/api/1/impact/42/register_impact"

	// cURL with API key in header.
	resp := ts.do(http.MethodPost, path, sleuthDocHeaderBody, "Authorization", "apikey sleuth-key")
	require.Equal(t, http.StatusOK, resp.status, string(resp.body))
	assert.Equal(t, "Success", string(resp.body))
	// cURL and PowerShell with API key in body.
	for _, body := range []string{sleuthDocBodyWithKey, sleuthDocPowerShellBody} {
		resp = ts.do(http.MethodPost, path, body)
		require.Equal(t, http.StatusOK, resp.status, string(resp.body))
		assert.Equal(t, "Success", string(resp.body))
	}

	pts := ts.points()
	require.Len(t, pts, 3)
	for _, p := range pts {
		assert.Equal(t, "checkout.latency", p.metric.Name())
		assert.Equal(t, "ms", p.metric.Unit())
		assert.Equal(t, pmetric.MetricTypeGauge, p.metric.Type())
		assert.Equal(t, 1.5, p.dp.DoubleValue())
		assert.Equal(t, map[string]any{otelmap.AttrAPI: "sleuth"}, p.resource)
	}
}

func TestSleuthDateAndForms(t *testing.T) {
	ts := startReceiver(t, sleuthConfig, nil)
	resp := ts.do(http.MethodPost, "/api/1/impact/43/register_impact", `{"value":"0.25","date":"2024-03-01T10:00:00+01:00"}`, "Authorization", "apikey sleuth-key")
	require.Equal(t, http.StatusOK, resp.status, string(resp.body))
	resp = ts.do(http.MethodPost, "/api/1/impact/43/register_impact", "value=3&api_key=sleuth-key&date=2024-03-01", "Content-Type", "application/x-www-form-urlencoded")
	require.Equal(t, http.StatusOK, resp.status, string(resp.body))
	pts := ts.points()
	require.Len(t, pts, 2)
	assert.Equal(t, time.Date(2024, 3, 1, 9, 0, 0, 0, time.UTC), pts[0].dp.Timestamp().AsTime())
	assert.Equal(t, 0.25, pts[0].dp.DoubleValue())
	assert.Equal(t, time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC), pts[1].dp.Timestamp().AsTime())
	assert.Equal(t, 3.0, pts[1].dp.DoubleValue())
}

func TestSleuthErrors(t *testing.T) {
	ts := startReceiver(t, sleuthConfig, nil)
	tests := []struct {
		name, path, body, auth string
		status                 int
		text                   string
	}{
		{"value not a number", "/api/1/impact/42/register_impact", `{"value":"fast"}`, "apikey sleuth-key", 400, "Bad Request - impact value must be a number"},
		{"value missing", "/api/1/impact/42/register_impact", `{}`, "apikey sleuth-key", 400, "Bad Request - impact value must be a number"},
		{"invalid date", "/api/1/impact/42/register_impact", `{"value":1,"date":"yesterday"}`, "apikey sleuth-key", 400, "Bad Request - date"},
		{"malformed JSON", "/api/1/impact/42/register_impact", `{"value":`, "apikey sleuth-key", 400, "Bad Request"},
		{"date 9999", "/api/1/impact/42/register_impact", `{"value":1,"date":"9999-12-31"}`, "apikey sleuth-key", 400, "Bad Request - date must be between 1700-01-01 and 2199-12-31"},
		{"date year 1", "/api/1/impact/42/register_impact", `{"value":1,"date":"0001-01-01T00:00:00Z"}`, "apikey sleuth-key", 400, "Bad Request - date must be between"},
		{"value in hexadecimal", "/api/1/impact/42/register_impact", `{"value":"0x1p4"}`, "apikey sleuth-key", 400, "Bad Request - impact value must be a number"},
		{"value with digit separators", "/api/1/impact/42/register_impact", `{"value":"1_000"}`, "apikey sleuth-key", 400, "Bad Request - impact value must be a number"},
		{"value Inf", "/api/1/impact/42/register_impact", `{"value":"Inf"}`, "apikey sleuth-key", 400, "Bad Request - impact value must be a number"},
		{"no key", "/api/1/impact/42/register_impact", `{"value":1}`, "", 401, "Unauthorized"},
		{"unknown key", "/api/1/impact/42/register_impact", `{"value":1}`, "apikey nope", 401, "Unauthorized"},
		{"unknown impact source", "/api/1/impact/7/register_impact", `{"value":1}`, "apikey sleuth-key", 404, "MetricImpactSource Not Found"},
		{"non-integer id", "/api/1/impact/abc/register_impact", `{"value":1}`, "apikey sleuth-key", 404, "MetricImpactSource Not Found"},
		{"other tenant's source", "/api/1/impact/44/register_impact", `{"value":1}`, "apikey sleuth-key", 404, "MetricImpactSource Not Found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h []string
			if tt.auth != "" {
				h = []string{"Authorization", tt.auth}
			}
			resp := ts.do(http.MethodPost, tt.path, tt.body, h...)
			require.Equal(t, tt.status, resp.status, string(resp.body))
			assert.Contains(t, string(resp.body), tt.text)
		})
	}
	resp := ts.do(http.MethodGet, "/api/1/impact/42/register_impact", "")
	assert.Equal(t, http.StatusMethodNotAllowed, resp.status)
	assert.Equal(t, "POST", resp.header.Get("Allow"))
	assert.Empty(t, ts.points())
}

func TestSleuthRateLimit(t *testing.T) {
	now := time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)
	ts := startReceiver(t, func(c *Config) { sleuthConfig(c); c.Sleuth.MinInterval = 120 * time.Second }, nil)
	ts.rcv.sleuth.now = func() time.Time { return now }
	const path = "/api/1/impact/42/register_impact"

	require.Equal(t, http.StatusOK, ts.do(http.MethodPost, path, sleuthDocBodyWithKey).status)
	now = now.Add(30 * time.Second)
	resp := ts.do(http.MethodPost, path, sleuthDocBodyWithKey)
	require.Equal(t, http.StatusTooManyRequests, resp.status)
	assert.Equal(t, "You may only register a custom metric once every 120 seconds", string(resp.body))
	assert.Equal(t, "90", resp.header.Get("Retry-After"))
	// Another impact source has its own slot.
	require.Equal(t, http.StatusOK, ts.do(http.MethodPost, "/api/1/impact/43/register_impact", sleuthDocBodyWithKey).status)
	now = now.Add(90 * time.Second)
	require.Equal(t, http.StatusOK, ts.do(http.MethodPost, path, sleuthDocBodyWithKey).status)
	assert.Len(t, ts.points(), 3, "the rate-limited registration produced no value")
}

func TestSleuthBackpressureDoesNotUseTheSlot(t *testing.T) {
	ts := startReceiver(t, func(c *Config) { sleuthConfig(c); c.Sleuth.MinInterval = time.Hour }, consumertest.NewErr(errors.New("memory limit")))
	resp := ts.do(http.MethodPost, "/api/1/impact/42/register_impact", sleuthDocBodyWithKey)
	require.Equal(t, http.StatusServiceUnavailable, resp.status)
	assert.Equal(t, "1", resp.header.Get("Retry-After"))
	ts.rcv.next = ts.sink
	resp = ts.do(http.MethodPost, "/api/1/impact/42/register_impact", sleuthDocBodyWithKey)
	require.Equal(t, http.StatusOK, resp.status, "a refused value must not count against the rate limit")
	require.Len(t, ts.points(), 1)
}
