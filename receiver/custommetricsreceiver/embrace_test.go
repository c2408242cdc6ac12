package custommetricsreceiver

import (
	"context"
	"net/http"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/custommetrics/bundle/internal/definitions"
	"github.com/custommetrics/bundle/internal/wire/embrace"
)

// The examples of ../shared/api/001_2b2e43327b143faa.txt, literally.
const (
	embraceDocToken      = "1b6be81cd01c4b08833295efadccafdc"
	embraceDocCreateBody = `{
    "name": "sessions_total_v3",
    "metric": "sessions_total",
    "group_by": ["app_version"],
    "filters": {
        "op":"and",
        "children":[{"field_op":"eq","key":"os_version","val":"12"}]
    },
    "time_granularity": ["five_minute", "hourly"]
}`
	embraceDocCreateResponse = `{
  "custom_metric_id": "y8vayvn",
  "app_id": "appID1",
  "name": "sessions_total_v3",
  "metric": "sessions_total",
  "filters": {
    "op": "and",
    "children": [
      {
        "field_op": "eq",
        "key": "os_version",
        "val": "12"
      }
    ]
  },
  "group_by": [
    "app_version"
  ],
  "time_granularity": [
    "five_minute",
    "hourly"
  ]
}`
	embraceDocListResponse = `{
  "results": [
    {
      "custom_metric_id": "XZ5BDQk",
      "app_id": "appID1",
      "name": "sessions_total_v1",
      "metric": "sessions_total",
      "filters": {},
      "group_by": [
        "app_version"
      ],
      "time_granularity": [
        "five_minute",
        "hourly"
      ]
    }
  ]
}`
	embraceBase = "/custom-metrics/api/v1/app/appID1/custom-metrics"
)

var customMetricID = regexp.MustCompile(`^[A-Za-z0-9]{7}$`)

// withoutMetricIDs checks and removes the server-generated custom_metric_id members.
func withoutMetricIDs(t *testing.T, v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			if k == "custom_metric_id" {
				assert.Regexp(t, customMetricID, e)
				continue
			}
			out[k] = withoutMetricIDs(t, e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = withoutMetricIDs(t, e)
		}
		return out
	}
	return v
}

func embraceAuth(token string) []string { return []string{"Authorization", "Bearer " + token} }

func TestEmbraceDocumentExamples(t *testing.T) {
	ts := startReceiver(t, func(c *Config) {
		c.Embrace.Tokens = []EmbraceToken{{Token: embraceDocToken, AppIDs: []string{"appID1"}}}
	}, nil)
	auth := embraceAuth(embraceDocToken)

	// Create custom metric: the document's request gives the document's answer, but for the generated id.
	resp := ts.do(http.MethodPost, embraceBase, embraceDocCreateBody, append([]string{"Content-Type", "application/json"}, auth...)...)
	require.Equal(t, http.StatusOK, resp.status, string(resp.body))
	assert.Equal(t, "application/json", resp.header.Get("Content-Type"))
	assert.Equal(t, withoutMetricIDs(t, decode(t, embraceDocCreateResponse)), withoutMetricIDs(t, resp.json(t)))
	assert.JSONEq(t, `{"message":"custom metric already exists"}`, string(ts.do(http.MethodPost, embraceBase, embraceDocCreateBody, auth...).body))

	// Get custom metrics: the list example holds sessions_total_v1, with no filters.
	require.Equal(t, http.StatusOK, ts.do(http.MethodPost, embraceBase,
		`{"name":"sessions_total_v1","metric":"sessions_total","group_by":["app_version"],"time_granularity":["five_minute","hourly"]}`, auth...).status)
	require.Equal(t, http.StatusNoContent, ts.do(http.MethodDelete, embraceBase+"/sessions_total_v3", "", auth...).status)
	resp = ts.do(http.MethodGet, embraceBase, "", auth...)
	require.Equal(t, http.StatusOK, resp.status)
	assert.Equal(t, withoutMetricIDs(t, decode(t, embraceDocListResponse)), withoutMetricIDs(t, resp.json(t)))

	// Delete custom metrics: the document's curl has no -X DELETE, so it sends a GET, which
	// reads the metric; the DELETE it describes answers 204 and no body.
	resp = ts.do(http.MethodGet, embraceBase+"/sessions_total_v1", "", auth...)
	require.Equal(t, http.StatusOK, resp.status)
	assert.Equal(t, "sessions_total_v1", resp.json(t)["name"])
	resp = ts.do(http.MethodDelete, embraceBase+"/sessions_total_v1", "", auth...)
	require.Equal(t, http.StatusNoContent, resp.status)
	assert.Empty(t, resp.body)
	resp = ts.do(http.MethodDelete, embraceBase+"/sessions_total_v1", "", auth...)
	require.Equal(t, http.StatusNotFound, resp.status)
	assert.JSONEq(t, `{"message":"custom metric doesn't exist"}`, string(resp.body))
	assert.JSONEq(t, `{"results":[]}`, string(ts.do(http.MethodGet, embraceBase, "", auth...).body))
}

func TestEmbraceErrors(t *testing.T) {
	ts := startReceiver(t, func(c *Config) {
		c.Embrace.Tokens = []EmbraceToken{
			{Token: "tok-a", AppIDs: []string{"appID1"}},
			{Token: "tok-ro", Access: Access{ReadOnly: true}},
		}
		c.ServerConfig.MaxRequestBodySize = 1024
	}, nil)
	auth := embraceAuth("tok-a")
	require.Equal(t, http.StatusOK, ts.do(http.MethodPost, embraceBase, `{"name":"m","metric":"sessions_total"}`, auth...).status)

	tests := []struct {
		name, method, path, body string
		header                   []string
		status                   int
		msg                      string
	}{
		{"unknown base metric", http.MethodPost, embraceBase, `{"name":"x","metric":"crashes_total"}`, auth, 400, "name of the metric doesn't exist"},
		{"no metric", http.MethodPost, embraceBase, `{"name":"x"}`, auth, 400, "metric is required"},
		{"no name", http.MethodPost, embraceBase, `{"metric":"sessions_total"}`, auth, 400, "name is required"},
		{"bad name", http.MethodPost, embraceBase, `{"name":"a/b","metric":"sessions_total"}`, auth, 400, "is invalid"},
		{"group_by other attribute", http.MethodPost, embraceBase, `{"name":"x","metric":"sessions_total","group_by":["country"]}`, auth, 400, `"country" is not an attribute of sessions_total`},
		{"group_by twice", http.MethodPost, embraceBase, `{"name":"x","metric":"sessions_total","group_by":["os_version","os_version"]}`, auth, 400, "listed twice"},
		{"filter on other attribute", http.MethodPost, embraceBase, `{"name":"x","metric":"sessions_total","filters":{"op":"and","children":[{"field_op":"eq","key":"country","val":"US"}]}}`, auth, 400, `"country" cannot be filtered on`},
		{"bad field_op", http.MethodPost, embraceBase, `{"name":"x","metric":"sessions_total","filters":{"field_op":"like","key":"os_version","val":"1"}}`, auth, 400, "field_op"},
		{"bad granularity", http.MethodPost, embraceBase, `{"name":"x","metric":"sessions_total","time_granularity":["weekly"]}`, auth, 400, "time_granularity"},
		{"unknown field", http.MethodPost, embraceBase, `{"name":"x","metric":"sessions_total","colour":1}`, auth, 400, "unknown field"},
		{"malformed", http.MethodPost, embraceBase, `{"name":`, auth, 400, "invalid JSON"},
		{"empty app_id", http.MethodGet, "/custom-metrics/api/v1/app//custom-metrics", "", []string{"Authorization", "Bearer tok-ro"}, 400, "app_id is empty"},
		{"other app", http.MethodGet, "/custom-metrics/api/v1/app/appID2/custom-metrics", "", auth, 403, "you don't have access to this app id"},
		{"no token", http.MethodGet, embraceBase, "", nil, 403, "you don't have access"},
		{"unknown token", http.MethodGet, embraceBase, "", embraceAuth("nope"), 403, "you don't have access"},
		{"token without Bearer", http.MethodGet, embraceBase, "", []string{"Authorization", "tok-a"}, 403, "you don't have access"},
		{"read-only writes", http.MethodPost, embraceBase, `{"name":"y","metric":"sessions_total"}`, embraceAuth("tok-ro"), 403, "you don't have access"},
		{"unknown metric", http.MethodDelete, embraceBase + "/nope", "", auth, 404, "custom metric doesn't exist"},
		{"duplicate", http.MethodPost, embraceBase, `{"name":"m","metric":"sessions_total"}`, auth, 409, "custom metric already exists"},
		{"wrong method", http.MethodPut, embraceBase + "/m", `{}`, auth, 405, "not allowed"},
		{"unknown path", http.MethodGet, "/custom-metrics/api/v1/app/appID1/other", "", auth, 404, "not found"},
		{"oversize", http.MethodPost, embraceBase, `{"name":"` + string(make([]byte, 2000)) + `"}`, auth, 413, "too large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := ts.do(tt.method, tt.path, tt.body, tt.header...)
			require.Equal(t, tt.status, resp.status, string(resp.body))
			assert.Equal(t, "application/json", resp.header.Get("Content-Type"))
			body := resp.json(t)
			assert.Len(t, body, 1, "the error body is {\"message\": ...}")
			assert.Contains(t, body["message"], tt.msg)
		})
	}
	// Reading is allowed to the read-only token, on any app.
	resp := ts.do(http.MethodGet, embraceBase, "", embraceAuth("tok-ro")...)
	require.Equal(t, http.StatusOK, resp.status)
	assert.Len(t, resp.json(t)["results"], 1, "no refused request created a metric")
}

func TestEmbraceDefaultsAndSharedModel(t *testing.T) {
	ts := startReceiver(t, func(c *Config) {
		c.Embrace.PathPrefix = "/embrace"
		c.Embrace.Tokens = []EmbraceToken{{Token: "t", Access: Access{Tenant: "org-a"}}}
	}, nil)
	auth := embraceAuth("t")
	base := "/embrace" + embraceBase
	resp := ts.do(http.MethodPost, base, `{"name":"s","metric":"sessions_total","filters":{"op":"or","children":[{"field_op":"gte","key":"app_version","val":"2.10"},{"field_op":"in","key":"os_version","val":["16","17"]}]}}`, auth...)
	require.Equal(t, http.StatusOK, resp.status, string(resp.body))
	got := resp.json(t)
	assert.Equal(t, []any{"hourly"}, got["time_granularity"], "hourly when none is given")
	assert.Equal(t, []any{}, got["group_by"])
	assert.Equal(t, http.StatusNotFound, ts.do(http.MethodGet, embraceBase, "", auth...).status, "the prefix moves the API")

	// The aggregate processor reads the stored definition from the registry and evaluates its filter.
	c, err := definitions.CollectionOf[embrace.CustomMetric](context.Background(), ts.rcv.registry, definitions.KindEmbraceMetric, "org-a")
	require.NoError(t, err)
	def, ok := c.Get("appID1/s")
	require.True(t, ok)
	assert.True(t, def.Filters.Match(map[string]string{"app_version": "2.10.1", "os_version": "15"}))
	assert.True(t, def.Filters.Match(map[string]string{"app_version": "1.0", "os_version": "17"}))
	assert.False(t, def.Filters.Match(map[string]string{"app_version": "2.9", "os_version": "15"}))
}

func TestEmbraceConfigurableBaseMetrics(t *testing.T) {
	ts := startReceiver(t, func(c *Config) {
		c.Embrace.BaseMetrics = []EmbraceBaseMetric{{Name: "crashes_total", Attributes: []string{"device"}}}
	}, nil)
	assert.Equal(t, http.StatusBadRequest, ts.do(http.MethodPost, embraceBase, `{"name":"s","metric":"sessions_total"}`).status)
	resp := ts.do(http.MethodPost, embraceBase, `{"name":"c","metric":"crashes_total","group_by":["device"],"filters":{"field_op":"contains","key":"device","val":"Pixel"}}`)
	require.Equal(t, http.StatusOK, resp.status, string(resp.body))
	assert.Equal(t, http.StatusBadRequest, ts.do(http.MethodPost, embraceBase, `{"name":"d","metric":"crashes_total","group_by":["os_version"]}`).status)

	off := startReceiver(t, func(c *Config) { c.Embrace.Enabled = false }, nil)
	assert.Equal(t, http.StatusNotFound, off.do(http.MethodGet, embraceBase, "").status)
}
