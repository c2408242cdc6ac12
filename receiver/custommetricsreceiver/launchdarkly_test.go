package custommetricsreceiver

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The examples of ../shared/api/003_5a31110cfc924f0a.txt, literally.
const (
	ldDocToken      = "YOUR_API_KEY_HERE"
	ldDocCreateBody = `{
  "key": "my-metric",
  "kind": "pageview",
  "urls": [
    {
      "kind": "substring",
      "substring": "foo"
    }
  ]
}`
	ldDocPatchBody = `[
  {
    "op": "replace",
    "path": "/name",
    "value": "my-updated-metric"
  }
]`
	ldDocError = `{"code": "unauthorized", "message": "invalid key"}`
)

// The fields of the document's metric examples that the server fills with
// known values; the others are checked by shape below.
var ldDocMetric = map[string]any{
	"key":                "my-metric",
	"name":               "my-metric",
	"kind":               "pageview",
	"_attachedFlagCount": 0.0,
	"_links": map[string]any{
		"parent": map[string]any{"href": "/api/v2/metrics/my-project", "type": "application/json"},
		"self":   map[string]any{"href": "/api/v2/metrics/my-project/my-metric", "type": "application/json"},
	},
	"tags": []any{},
}

var objectID = regexp.MustCompile(`^[0-9a-f]{24}$`)

// assertLDMetricShape compares a metric representation with the document's, field by field.
func assertLDMetricShape(t *testing.T, got map[string]any, listing bool) {
	t.Helper()
	for k, v := range ldDocMetric {
		assert.Equal(t, v, got[k], k)
	}
	assert.Regexp(t, objectID, got["_id"])
	assert.Regexp(t, objectID, got["_versionId"])
	created, ok := got["_creationDate"].(float64)
	require.True(t, ok, "_creationDate is a number")
	assert.InDelta(t, float64(time.Now().UnixMilli()), created, 60_000, "_creationDate is unix milliseconds")
	lm, ok := got["lastModified"].(map[string]any)
	require.True(t, ok)
	_, err := time.Parse(time.RFC3339Nano, lm["date"].(string))
	assert.NoError(t, err)
	// What this server cannot fill truthfully is left out, never invented.
	for _, k := range []string{"_site", "_access", "maintainerId", "_maintainer", "experimentCount"} {
		assert.NotContains(t, got, k)
	}
	// A pageview metric has none of the custom-metric fields of the example.
	for _, k := range []string{"isNumeric", "successCriteria", "unit", "eventKey", "description", "selector"} {
		assert.NotContains(t, got, k)
	}
	if listing {
		for _, k := range []string{"isActive", "_version", "urls"} {
			assert.NotContains(t, got, k, "the listing representation does not carry %s", k)
		}
		return
	}
	assert.Equal(t, true, got["isActive"])
	assert.IsType(t, 0.0, got["_version"])
	assert.Equal(t, []any{map[string]any{"kind": "substring", "substring": "foo"}}, got["urls"])
}

func ldAuth(token string) []string { return []string{"Authorization", token} }

func TestLaunchDarklyDocumentExamples(t *testing.T) {
	ts := startReceiver(t, func(c *Config) {
		c.LaunchDarkly.AccessTokens = []LaunchDarklyAccessToken{{Token: ldDocToken}}
	}, nil)
	auth := ldAuth(ldDocToken)

	// Create: the document's body gives the document's answer.
	resp := ts.do(http.MethodPost, "/api/v2/metrics/my-project", ldDocCreateBody, auth...)
	require.Equal(t, http.StatusCreated, resp.status, string(resp.body))
	assert.Equal(t, "application/json", resp.header.Get("Content-Type"))
	created := resp.json(t)
	assertLDMetricShape(t, created, false)
	assert.Equal(t, 1.0, created["_version"])

	// List: curl -i -X GET '.../api/v2/metrics/{projectKey}' -H 'Authorization: YOUR_API_KEY_HERE'
	resp = ts.do(http.MethodGet, "/api/v2/metrics/my-project", "", auth...)
	require.Equal(t, http.StatusOK, resp.status, string(resp.body))
	list := resp.json(t)
	assert.Equal(t, map[string]any{"self": map[string]any{"href": "/api/v2/metrics/my-project?limit=20", "type": "application/json"}}, list["_links"])
	assert.Equal(t, 1.0, list["totalCount"])
	items := list["items"].([]any)
	require.Len(t, items, 1)
	assertLDMetricShape(t, items[0].(map[string]any), true)
	assert.Equal(t, created["_id"], items[0].(map[string]any)["_id"])

	// Get one.
	resp = ts.do(http.MethodGet, "/api/v2/metrics/my-project/my-metric", "", auth...)
	require.Equal(t, http.StatusOK, resp.status)
	assert.JSONEq(t, mustJSON(t, created), string(resp.body))

	// Patch with the document's body.
	resp = ts.do(http.MethodPatch, "/api/v2/metrics/my-project/my-metric", ldDocPatchBody, auth...)
	require.Equal(t, http.StatusOK, resp.status, string(resp.body))
	patched := resp.json(t)
	assert.Equal(t, "my-updated-metric", patched["name"])
	assert.Equal(t, 2.0, patched["_version"], "_version increases")
	assert.NotEqual(t, created["_versionId"], patched["_versionId"])
	assert.Equal(t, created["_id"], patched["_id"])
	assert.Equal(t, created["_creationDate"], patched["_creationDate"])

	// Delete: 204, no body; then the metric is gone.
	resp = ts.do(http.MethodDelete, "/api/v2/metrics/my-project/my-metric", "", auth...)
	require.Equal(t, http.StatusNoContent, resp.status)
	assert.Empty(t, resp.body)
	resp = ts.do(http.MethodGet, "/api/v2/metrics/my-project/my-metric", "", auth...)
	require.Equal(t, http.StatusNotFound, resp.status)
	assert.JSONEq(t, `{"code":"not_found","message":"Invalid resource identifier"}`, string(resp.body))

	// The document's error example, for an invalid access token.
	resp = ts.do(http.MethodDelete, "/api/v2/metrics/my-project/my-metric", "", ldAuth("api-bad")...)
	require.Equal(t, http.StatusUnauthorized, resp.status)
	assert.Equal(t, "application/json", resp.header.Get("Content-Type"))
	assert.JSONEq(t, ldDocError, string(resp.body))
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := jsonMarshal(v)
	require.NoError(t, err)
	return string(b)
}

func ldCreate(t *testing.T, ts *testServer, project, body string, header ...string) map[string]any {
	t.Helper()
	path := "/api/v2/metrics/" + project
	if strings.HasPrefix(project, "/") { // a full collection path
		path = project
	}
	resp := ts.do(http.MethodPost, path, body, header...)
	require.Equal(t, http.StatusCreated, resp.status, string(resp.body))
	return resp.json(t)
}

const (
	ldConversionBody = `{"key":"signup","kind":"custom","eventKey":"signed-up","isNumeric":false}`
	ldNumericBody    = `{"key":"revenue","name":"Revenue","kind":"custom","eventKey":"purchase","isNumeric":true,"unit":"USD","successCriteria":"HigherThanBaseline","description":"money","tags":["shop"]}`
	ldClickBody      = `{"key":"buy-click","kind":"click","selector":"#buy","urls":[{"kind":"exact","url":"https://shop.example/cart"}]}`
	ldPageviewBody   = `{"key":"checkout-view","kind":"pageview","urls":[{"kind":"canonical","url":"https://shop.example/checkout"},{"kind":"regex","pattern":"/thanks/[0-9]+$"}]}`
)

func TestLaunchDarklyPatch(t *testing.T) {
	ts := startReceiver(t, nil, nil)
	ldCreate(t, ts, "p", ldNumericBody)
	ldCreate(t, ts, "p", ldPageviewBody)
	path := "/api/v2/metrics/p/revenue"
	get := func() string {
		resp := ts.do(http.MethodGet, path, "")
		require.Equal(t, http.StatusOK, resp.status)
		return string(resp.body)
	}
	before := get()

	refused := []struct {
		name, patch string
		status      int
		code, msg   string
	}{
		{"leaves it invalid", `[{"op":"replace","path":"/name","value":"x"},{"op":"remove","path":"/eventKey"}]`, 400, "invalid_request", "eventKey is required"},
		{"numeric without successCriteria", `[{"op":"remove","path":"/successCriteria"}]`, 400, "invalid_request", "successCriteria is required"},
		{"bad enum", `[{"op":"replace","path":"/successCriteria","value":"Sideways"}]`, 400, "invalid_request", "successCriteria"},
		{"key is immutable", `[{"op":"replace","path":"/key","value":"other"}]`, 400, "invalid_request", "/key cannot be changed"},
		{"kind is immutable", `[{"op":"replace","path":"/kind","value":"click"}]`, 400, "invalid_request", "/kind cannot be changed"},
		{"_id is immutable", `[{"op":"remove","path":"/_id"}]`, 400, "invalid_request", "/_id cannot be changed"},
		{"_version is server-managed", `[{"op":"replace","path":"/_version","value":7}]`, 400, "invalid_request", "/_version cannot be changed"},
		{"move from an immutable field", `[{"op":"move","from":"/key","path":"/description"}]`, 400, "invalid_request", "/key cannot be changed"},
		{"copy over an immutable field", `[{"op":"copy","from":"/name","path":"/key"}]`, 400, "invalid_request", "/key cannot be changed"},
		{"whole document", `[{"op":"replace","path":"","value":{}}]`, 400, "invalid_request", "whole metric"},
		{"unknown field", `[{"op":"add","path":"/colour","value":"red"}]`, 400, "invalid_request", "unknown field"},
		{"wrong type", `[{"op":"replace","path":"/isNumeric","value":"yes"}]`, 400, "invalid_request", "invalid request body"},
		{"missing path", `[{"op":"remove","path":"/nothing/here"}]`, 400, "invalid_request", "does not exist"},
		{"unknown op", `[{"op":"merge","path":"/name","value":"x"}]`, 400, "invalid_request", "unknown op"},
		{"not a patch", `{"name":"x"}`, 400, "invalid_request", "unknown field"},
		{"semantic patch", `{"instructions":[{"kind":"updateName","value":"x"}]}`, 400, "invalid_request", "semantic patch"},
		{"malformed", `[{"op":"replace"`, 400, "invalid_request", "JSON"},
		{"failed test", `[{"op":"test","path":"/_version","value":99},{"op":"replace","path":"/name","value":"x"}]`, 409, "optimistic_locking_error", "test operation failed"},
		{"failed test late", `[{"op":"replace","path":"/name","value":"x"},{"op":"test","path":"/name","value":"Revenue"}]`, 409, "optimistic_locking_error", "test operation failed"},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			resp := ts.do(http.MethodPatch, path, tt.patch)
			require.Equal(t, tt.status, resp.status, string(resp.body))
			body := resp.json(t)
			assert.Equal(t, tt.code, body["code"])
			assert.Contains(t, body["message"], tt.msg)
			assert.JSONEq(t, before, get(), "a refused patch changes nothing, not even _version")
		})
	}

	// test ops that hold, LaunchDarkly's {"patch", "comment"} form, several operations at once.
	resp := ts.do(http.MethodPatch, path, `{"comment":"rename","patch":[
		{"op":"test","path":"/_version","value":1},
		{"op":"test","path":"/name","value":"Revenue"},
		{"op":"replace","path":"/name","value":"Income"},
		{"op":"add","path":"/tags/-","value":"finance"},
		{"op":"remove","path":"/description"},
		{"op":"replace","path":"/successCriteria","value":"LowerThanBaseline"}]}`)
	require.Equal(t, http.StatusOK, resp.status, string(resp.body))
	got := resp.json(t)
	assert.Equal(t, "Income", got["name"])
	assert.Equal(t, []any{"shop", "finance"}, got["tags"])
	assert.NotContains(t, got, "description")
	assert.Equal(t, "LowerThanBaseline", got["successCriteria"])
	assert.Equal(t, 2.0, got["_version"])
	assert.JSONEq(t, string(resp.body), get())

	// The same test on _version now fails: optimistic locking.
	resp = ts.do(http.MethodPatch, path, `[{"op":"test","path":"/_version","value":1},{"op":"replace","path":"/name","value":"Late"}]`)
	assert.Equal(t, http.StatusConflict, resp.status)
	// An empty patch changes nothing.
	resp = ts.do(http.MethodPatch, path, `[]`)
	require.Equal(t, http.StatusOK, resp.status)
	assert.Equal(t, 2.0, resp.json(t)["_version"])

	// URL matchers are validated after patching too.
	pv := "/api/v2/metrics/p/checkout-view"
	resp = ts.do(http.MethodPatch, pv, `[{"op":"remove","path":"/urls/1"},{"op":"remove","path":"/urls/0"}]`)
	assert.Equal(t, http.StatusBadRequest, resp.status, "a pageview metric needs urls")
	resp = ts.do(http.MethodPatch, pv, `[{"op":"replace","path":"/urls/1/pattern","value":"(unclosed"}]`)
	assert.Equal(t, http.StatusBadRequest, resp.status, "an invalid regex")
	resp = ts.do(http.MethodPatch, pv, `[{"op":"add","path":"/urls/-","value":{"kind":"substring","substring":"/pay"}}]`)
	require.Equal(t, http.StatusOK, resp.status, string(resp.body))
	assert.Len(t, resp.json(t)["urls"], 3)
	assert.Equal(t, http.StatusNotFound, ts.do(http.MethodPatch, "/api/v2/metrics/p/nope", `[]`).status)
}

func TestLaunchDarklyCreateValidation(t *testing.T) {
	ts := startReceiver(t, func(c *Config) { c.ServerConfig.MaxRequestBodySize = 512 }, nil)
	ldCreate(t, ts, "p", ldConversionBody)
	tests := []struct{ name, body, msg string }{
		{"pageview needs urls", `{"key":"a","kind":"pageview"}`, "urls is required"},
		{"click needs selector", `{"key":"a","kind":"click","urls":[{"kind":"substring","substring":"x"}]}`, "selector is required"},
		{"custom needs eventKey", `{"key":"a","kind":"custom"}`, "eventKey is required"},
		{"kind required", `{"key":"a"}`, "kind is required"},
		{"kind enum", `{"key":"a","kind":"scroll"}`, "kind \"scroll\" is invalid"},
		{"key required", `{"kind":"custom","eventKey":"e"}`, "key is required"},
		{"key syntax", `{"key":"a b","kind":"custom","eventKey":"e"}`, "key \"a b\" is invalid"},
		{"url kind", `{"key":"a","kind":"pageview","urls":[{"kind":"glob","url":"x"}]}`, "urls[0]: kind \"glob\" is invalid"},
		{"url needs url", `{"key":"a","kind":"pageview","urls":[{"kind":"exact"}]}`, "url is required"},
		{"regex", `{"key":"a","kind":"pageview","urls":[{"kind":"regex","pattern":"("}]}`, "not a valid regular expression"},
		{"unknown field", `{"key":"a","kind":"custom","eventKey":"e","colour":1}`, "unknown field"},
		{"malformed", `{"key":`, "invalid request body"},
		{"empty name", `{"key":"a","kind":"custom","eventKey":"e","name":""}`, "name must not be empty"},
		{"unitAggregationType", `{"key":"a","kind":"custom","eventKey":"e","unitAggregationType":"median"}`, "unitAggregationType"},
	}
	for _, tt := range tests {
		resp := ts.do(http.MethodPost, "/api/v2/metrics/p", tt.body)
		require.Equal(t, http.StatusBadRequest, resp.status, tt.name)
		assert.Equal(t, "invalid_request", resp.json(t)["code"], tt.name)
		assert.Contains(t, resp.json(t)["message"], tt.msg, tt.name)
	}
	resp := ts.do(http.MethodPost, "/api/v2/metrics/p", ldConversionBody)
	require.Equal(t, http.StatusConflict, resp.status)
	assert.Equal(t, "conflict", resp.json(t)["code"])
	// The same key in another project is another metric.
	ldCreate(t, ts, "q", ldConversionBody)

	resp = ts.do(http.MethodPost, "/api/v2/metrics/p", `{"key":"big","kind":"custom","eventKey":"`+strings.Repeat("e", 600)+`"}`)
	assert.Equal(t, http.StatusRequestEntityTooLarge, resp.status)
	assert.Equal(t, "request_entity_too_large", resp.json(t)["code"])
	resp = ts.do(http.MethodPut, "/api/v2/metrics/p/signup", `{}`)
	assert.Equal(t, http.StatusMethodNotAllowed, resp.status)
	assert.Equal(t, "method_not_allowed", resp.json(t)["code"])
	assert.Equal(t, "DELETE, GET, PATCH", resp.header.Get("Allow"))

	list := ts.do(http.MethodGet, "/api/v2/metrics/p", "").json(t)
	assert.Equal(t, 1.0, list["totalCount"], "no refused request created a metric")
}

func TestLaunchDarklyAuthAndLimits(t *testing.T) {
	ts := startReceiver(t, func(c *Config) {
		c.LaunchDarkly.AccessTokens = []LaunchDarklyAccessToken{
			{Token: "api-a", Access: Access{Tenant: "org-a"}, Projects: []string{"web"}},
			{Token: "api-ro", Access: Access{Tenant: "org-a", ReadOnly: true}},
			{Token: "api-b", Access: Access{Tenant: "org-b"}},
		}
		c.LaunchDarkly.RateLimitPerMinute = 5
	}, nil)
	ldCreate(t, ts, "web", ldConversionBody, ldAuth("api-a")...)

	for _, h := range []string{"", "api-x", "Bearer api-a", "api-aa"} {
		resp := ts.do(http.MethodGet, "/api/v2/metrics/web", "", "Authorization", h)
		require.Equal(t, http.StatusUnauthorized, resp.status, h)
		assert.JSONEq(t, ldDocError, string(resp.body))
	}
	resp := ts.do(http.MethodGet, "/api/v2/metrics/mobile", "", ldAuth("api-a")...)
	require.Equal(t, http.StatusForbidden, resp.status, "a project the token may not use")
	assert.Equal(t, "forbidden", resp.json(t)["code"])
	assert.Equal(t, http.StatusOK, ts.do(http.MethodGet, "/api/v2/metrics/web/signup", "", ldAuth("api-ro")...).status)
	assert.Equal(t, http.StatusForbidden, ts.do(http.MethodDelete, "/api/v2/metrics/web/signup", "", ldAuth("api-ro")...).status)
	assert.Equal(t, http.StatusNotFound, ts.do(http.MethodGet, "/api/v2/metrics/web/signup", "", ldAuth("api-b")...).status, "tenants are separate")

	// Rate limit: api-b has used 1 of its 5 requests this minute.
	ts.rcv.ld.now = func() time.Time { return time.Date(2030, 1, 1, 0, 0, 10, 0, time.UTC) }
	for range 5 {
		require.Equal(t, http.StatusOK, ts.do(http.MethodGet, "/api/v2/metrics/web", "", ldAuth("api-b")...).status)
	}
	resp = ts.do(http.MethodGet, "/api/v2/metrics/web", "", ldAuth("api-b")...)
	require.Equal(t, http.StatusTooManyRequests, resp.status)
	assert.Equal(t, "rate_limited", resp.json(t)["code"])
	assert.Equal(t, "50", resp.header.Get("Retry-After"))
	assert.NotEmpty(t, resp.header.Get("X-Ratelimit-Reset"))
	assert.Equal(t, http.StatusOK, ts.do(http.MethodGet, "/api/v2/metrics/web/signup", "", ldAuth("api-ro")...).status, "limits are per token")
	ts.rcv.ld.now = func() time.Time { return time.Date(2030, 1, 1, 0, 1, 0, 0, time.UTC) }
	assert.Equal(t, http.StatusOK, ts.do(http.MethodGet, "/api/v2/metrics/web", "", ldAuth("api-b")...).status, "a new minute")
}

func TestLaunchDarklyPaging(t *testing.T) {
	ts := startReceiver(t, func(c *Config) { c.LaunchDarkly.PathPrefix = "/ld" }, nil)
	for i := range 25 {
		tags := `["all"]`
		if i%5 == 0 {
			tags = `["all","fifth"]`
		}
		ldCreate(t, ts, "/ld/api/v2/metrics/p", fmt.Sprintf(`{"key":"m%02d","name":"n%02d","kind":"custom","eventKey":"e","tags":%s}`, 24-i, i, tags))
	}
	assert.Equal(t, http.StatusNotFound, ts.do(http.MethodGet, "/api/v2/metrics/p", "").status, "the prefix moves the API")

	page := ts.do(http.MethodGet, "/ld/api/v2/metrics/p", "").json(t)
	assert.Equal(t, 25.0, page["totalCount"])
	assert.Len(t, page["items"], 20)
	links := page["_links"].(map[string]any)
	assert.Equal(t, "/ld/api/v2/metrics/p?limit=20", links["self"].(map[string]any)["href"])
	assert.Equal(t, "/ld/api/v2/metrics/p?limit=20&offset=20", links["next"].(map[string]any)["href"])
	assert.Equal(t, "/ld/api/v2/metrics/p/m24", page["items"].([]any)[0].(map[string]any)["_links"].(map[string]any)["self"].(map[string]any)["href"])

	page = ts.do(http.MethodGet, "/ld/api/v2/metrics/p?limit=20&offset=20", "").json(t)
	assert.Len(t, page["items"], 5)
	assert.NotContains(t, page["_links"], "next")
	assert.Equal(t, "/ld/api/v2/metrics/p?limit=20", page["_links"].(map[string]any)["prev"].(map[string]any)["href"])

	page = ts.do(http.MethodGet, "/ld/api/v2/metrics/p?limit=3&sort=-name", "").json(t)
	keys := []string{}
	for _, it := range page["items"].([]any) {
		keys = append(keys, it.(map[string]any)["name"].(string))
	}
	assert.Equal(t, []string{"n24", "n23", "n22"}, keys)
	page = ts.do(http.MethodGet, "/ld/api/v2/metrics/p?sort=-createdAt&limit=1", "").json(t)
	assert.Equal(t, "m00", page["items"].([]any)[0].(map[string]any)["key"])

	page = ts.do(http.MethodGet, `/ld/api/v2/metrics/p?filter=tags+contains+%5B%22fifth%22%2C%22all%22%5D`, "").json(t)
	assert.Equal(t, 5.0, page["totalCount"])

	for _, q := range []string{"limit=51", "limit=0", "limit=x", "offset=-1", "sort=key", "filter=name+equals+x"} {
		resp := ts.do(http.MethodGet, "/ld/api/v2/metrics/p?"+q, "")
		assert.Equal(t, http.StatusBadRequest, resp.status, q)
		assert.Equal(t, "invalid_request", resp.json(t)["code"], q)
	}
	assert.Equal(t, 50.0, float64(len(ts.do(http.MethodGet, "/ld/api/v2/metrics/p?limit=50", "").json(t)["items"].([]any)))+25)
}
