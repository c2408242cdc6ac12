package custommetricsreceiver

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	ldapi "github.com/launchdarkly/api-client-go/v17"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// ldClient points LaunchDarkly's own Go API client at the receiver.
func ldClient(ts *testServer, token string, useHost bool) (*ldapi.APIClient, context.Context) {
	cfg := ldapi.NewConfiguration()
	if useHost {
		// Keep the default servers and override host and scheme, the other documented way.
		cfg.Host = ts.base[len("http://"):]
		cfg.Scheme = "http"
	} else {
		cfg.Servers = ldapi.ServerConfigurations{{URL: ts.base}}
	}
	ctx := context.WithValue(context.Background(), ldapi.ContextAPIKeys, map[string]ldapi.APIKey{"ApiKey": {Key: token}})
	return ldapi.NewAPIClient(cfg), ctx
}

func TestLaunchDarklyGoAPIClient(t *testing.T) {
	const token = "api-0123456789abcdef"
	ts := startReceiver(t, func(c *Config) {
		c.LaunchDarkly.AccessTokens = []LaunchDarklyAccessToken{{Token: token, Projects: []string{"my-project"}}}
	}, nil)
	for _, useHost := range []bool{false, true} {
		client, ctx := ldClient(ts, token, useHost)
		api := client.MetricsApi

		// Create one metric of each kind.
		posts := []ldapi.MetricPost{
			{Key: "view-" + boolStr(useHost), Kind: "pageview", Urls: []ldapi.UrlPost{{Kind: ldapi.PtrString("substring"), Substring: ldapi.PtrString("foo")}}},
			{Key: "click-" + boolStr(useHost), Kind: "click", Selector: ldapi.PtrString(".buy"), Urls: []ldapi.UrlPost{{Kind: ldapi.PtrString("exact"), Url: ldapi.PtrString("https://example.com/")}}},
			{Key: "conv-" + boolStr(useHost), Kind: "custom", EventKey: ldapi.PtrString("signed-up"), IsNumeric: ldapi.PtrBool(false)},
			{Key: "num-" + boolStr(useHost), Name: ldapi.PtrString("Revenue"), Kind: "custom", EventKey: ldapi.PtrString("purchase"), IsNumeric: ldapi.PtrBool(true),
				Unit: ldapi.PtrString("USD"), SuccessCriteria: ldapi.PtrString("HigherThanBaseline"), Tags: []string{"shop"},
				RandomizationUnits: []string{"user"}, UnitAggregationType: ldapi.PtrString("sum"), AnalysisType: ldapi.PtrString("mean")},
		}
		for _, p := range posts {
			rep, resp, err := api.PostMetric(ctx, "my-project").MetricPost(p).Execute()
			require.NoError(t, err, p.Key)
			assert.Equal(t, http.StatusCreated, resp.StatusCode)
			assert.Equal(t, p.Key, rep.Key)
			assert.Equal(t, p.Kind, rep.Kind)
			assert.Regexp(t, objectID, rep.Id)
			assert.NotEmpty(t, rep.VersionId)
			assert.Positive(t, rep.CreationDate)
			assert.Equal(t, "/api/v2/metrics/my-project/"+p.Key, *rep.Links["self"].Href)
			assert.Equal(t, int32(1), rep.GetVersion())
			assert.Equal(t, p.EventKey, rep.EventKey)
			assert.Equal(t, p.Selector, rep.Selector)
			assert.Len(t, rep.Urls, len(p.Urls))
		}

		// Get one, with the fields the client sent.
		num, _, err := api.GetMetric(ctx, "my-project", "num-"+boolStr(useHost)).Execute()
		require.NoError(t, err)
		assert.Equal(t, "Revenue", num.Name)
		assert.Equal(t, "USD", num.GetUnit())
		assert.True(t, num.GetIsNumeric())
		assert.Equal(t, "HigherThanBaseline", num.GetSuccessCriteria())
		assert.Equal(t, []string{"shop"}, num.Tags)
		assert.Equal(t, []string{"user"}, num.RandomizationUnits)
		assert.Equal(t, "sum", num.GetUnitAggregationType())

		// Patch.
		patched, _, err := api.PatchMetric(ctx, "my-project", "num-"+boolStr(useHost)).PatchOperation([]ldapi.PatchOperation{
			{Op: "test", Path: "/_version", Value: 1},
			{Op: "replace", Path: "/name", Value: "Income"},
			{Op: "add", Path: "/tags/-", Value: "finance"},
		}).Execute()
		require.NoError(t, err)
		assert.Equal(t, "Income", patched.Name)
		assert.Equal(t, []string{"shop", "finance"}, patched.Tags)
		assert.Equal(t, int32(2), patched.GetVersion())

		// A patch that would leave the metric invalid: refused, nothing changed.
		_, resp, err := api.PatchMetric(ctx, "my-project", "conv-"+boolStr(useHost)).PatchOperation([]ldapi.PatchOperation{
			{Op: "replace", Path: "/name", Value: "x"}, {Op: "remove", Path: "/eventKey"},
		}).Execute()
		require.Error(t, err)
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
		conv, _, err := api.GetMetric(ctx, "my-project", "conv-"+boolStr(useHost)).Execute()
		require.NoError(t, err)
		assert.Equal(t, "conv-"+boolStr(useHost), conv.Name)
		assert.Equal(t, int32(1), conv.GetVersion())

		// The conflict case: the same key again.
		_, resp, err = api.PostMetric(ctx, "my-project").MetricPost(posts[2]).Execute()
		require.Error(t, err)
		require.NotNil(t, resp)
		assert.Equal(t, http.StatusConflict, resp.StatusCode)
		var apiErr *ldapi.GenericOpenAPIError
		require.True(t, errors.As(err, &apiErr))
		assert.JSONEq(t, `{"code":"conflict","message":"A metric with that key already exists"}`, string(apiErr.Body()))
		conflict, ok := apiErr.Model().(ldapi.StatusConflictErrorRep)
		require.True(t, ok, "the client decodes the error into its 409 model: %T", apiErr.Model())
		assert.Equal(t, "conflict", conflict.Code)

		// A project the token may not use, and an unknown token.
		_, resp, err = api.GetMetrics(ctx, "other-project").Execute()
		require.Error(t, err)
		assert.Equal(t, http.StatusForbidden, resp.StatusCode)
		_, badCtx := ldClient(ts, "api-wrong", useHost)
		_, resp, err = api.GetMetrics(badCtx, "my-project").Execute()
		require.Error(t, err)
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		unauthorized, ok := err.(*ldapi.GenericOpenAPIError).Model().(ldapi.UnauthorizedErrorRep)
		require.True(t, ok)
		assert.Equal(t, "unauthorized", unauthorized.Code)
	}

	client, ctx := ldClient(ts, token, false)
	api := client.MetricsApi
	// List, with LaunchDarkly's paging.
	list, _, err := api.GetMetrics(ctx, "my-project").Limit(3).Execute()
	require.NoError(t, err)
	assert.Equal(t, int32(8), list.GetTotalCount())
	require.Len(t, list.Items, 3)
	assert.Equal(t, "/api/v2/metrics/my-project?limit=3", *(*list.Links)["self"].Href)
	assert.Equal(t, "/api/v2/metrics/my-project?limit=3&offset=3", *(*list.Links)["next"].Href)
	rest, _, err := api.GetMetrics(ctx, "my-project").Limit(50).Offset(3).Execute()
	require.NoError(t, err)
	assert.Len(t, rest.Items, 5)
	_, resp, err := api.GetMetrics(ctx, "my-project").Limit(51).Execute()
	require.Error(t, err)
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)

	// Delete: 204; then 404 for get and delete.
	resp, err = api.DeleteMetric(ctx, "my-project", "view-false").Execute()
	require.NoError(t, err)
	assert.Equal(t, http.StatusNoContent, resp.StatusCode)
	_, resp, err = api.GetMetric(ctx, "my-project", "view-false").Execute()
	require.Error(t, err)
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	notFound, ok := err.(*ldapi.GenericOpenAPIError).Model().(ldapi.NotFoundErrorRep)
	require.True(t, ok)
	assert.Equal(t, "not_found", notFound.Code)
	resp, err = api.DeleteMetric(ctx, "my-project", "view-false").Execute()
	require.Error(t, err)
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
}

func boolStr(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

// Every field of MetricPost that LaunchDarkly's Go API client (api-client-go
// v17.1.0) can send is accepted, stored and returned: sent through the real
// client. maintainerId is in LaunchDarkly's MetricPost but not in that
// client's model (v17.1.0 has none; no newer v17 is served here), so it is
// posted over raw HTTP, and read back and patched through the real client,
// whose MetricRep and PatchOperation carry it.
func TestLaunchDarklyMetricPostFields(t *testing.T) {
	const token = "api-0123456789abcdef"
	ts := startReceiver(t, func(c *Config) {
		c.LaunchDarkly.AccessTokens = []LaunchDarklyAccessToken{{Token: token}}
	}, nil)
	client, ctx := ldClient(ts, token, false)
	api := client.MetricsApi

	post := ldapi.MetricPost{
		Key: "checkout-click", Name: ldapi.PtrString("Checkout click"), Description: ldapi.PtrString("clicks on buy"),
		Kind: "click", Selector: ldapi.PtrString("#buy"),
		Urls:     []ldapi.UrlPost{{Kind: ldapi.PtrString("regex"), Pattern: ldapi.PtrString("/cart/[0-9]+$")}},
		IsActive: ldapi.PtrBool(false), IsNumeric: ldapi.PtrBool(false), Unit: ldapi.PtrString("clicks"),
		EventKey: ldapi.PtrString("buy"), SuccessCriteria: ldapi.PtrString("LowerThanBaseline"), Tags: []string{"shop", "web"},
		RandomizationUnits: []string{"user", "org"}, UnitAggregationType: ldapi.PtrString("sum"),
		AnalysisType: ldapi.PtrString("mean"), PercentileValue: ldapi.PtrInt32(95),
		EventDefault: &ldapi.MetricEventDefaultRep{Disabled: ldapi.PtrBool(false), Value: ldapi.PtrFloat32(0.5)},
	}
	_, _, err := api.PostMetric(ctx, "web").MetricPost(post).Execute()
	require.NoError(t, err)
	got, _, err := api.GetMetric(ctx, "web", "checkout-click").Execute()
	require.NoError(t, err)
	assert.Equal(t, "Checkout click", got.Name)
	assert.Equal(t, "clicks on buy", got.GetDescription())
	assert.Equal(t, "click", got.Kind)
	assert.Equal(t, "#buy", got.GetSelector())
	assert.Equal(t, []map[string]any{{"kind": "regex", "pattern": "/cart/[0-9]+$"}}, got.Urls)
	assert.False(t, got.GetIsActive())
	assert.False(t, got.GetIsNumeric())
	assert.Equal(t, "clicks", got.GetUnit())
	assert.Equal(t, "buy", got.GetEventKey())
	assert.Equal(t, "LowerThanBaseline", got.GetSuccessCriteria())
	assert.Equal(t, []string{"shop", "web"}, got.Tags)
	assert.Equal(t, []string{"user", "org"}, got.RandomizationUnits)
	assert.Equal(t, "sum", got.GetUnitAggregationType())
	assert.Equal(t, "mean", got.GetAnalysisType())
	assert.Equal(t, int32(95), got.GetPercentileValue())
	require.NotNil(t, got.EventDefault)
	assert.Equal(t, false, got.EventDefault.GetDisabled())
	assert.Equal(t, float32(0.5), got.EventDefault.GetValue())
	assert.False(t, got.HasMaintainerId())

	// maintainerId: raw HTTP (the client's MetricPost has no such field).
	auth := ldAuth(token)
	created := ldCreate(t, ts, "web", `{"key":"signup","kind":"custom","eventKey":"signed-up","maintainerId":"569fdeadbeef1644facecafe"}`, auth...)
	assert.Equal(t, "569fdeadbeef1644facecafe", created["maintainerId"])
	assert.NotContains(t, created, "_maintainer", "no members live here: the summary is not invented")
	signup, _, err := api.GetMetric(ctx, "web", "signup").Execute()
	require.NoError(t, err)
	assert.Equal(t, "569fdeadbeef1644facecafe", signup.GetMaintainerId())
	list, _, err := api.GetMetrics(ctx, "web").Execute()
	require.NoError(t, err)
	require.Len(t, list.Items, 2)
	assert.Equal(t, "569fdeadbeef1644facecafe", list.Items[1].GetMaintainerId(), "the listing carries it too")

	// Patched through the client: replaced, then removed; _version counts each change.
	patched, _, err := api.PatchMetric(ctx, "web", "signup").PatchOperation([]ldapi.PatchOperation{
		{Op: "test", Path: "/maintainerId", Value: "569fdeadbeef1644facecafe"},
		{Op: "replace", Path: "/maintainerId", Value: "5a0000000000000000000001"},
	}).Execute()
	require.NoError(t, err)
	assert.Equal(t, "5a0000000000000000000001", patched.GetMaintainerId())
	assert.Equal(t, int32(2), patched.GetVersion())
	patched, _, err = api.PatchMetric(ctx, "web", "signup").PatchOperation([]ldapi.PatchOperation{{Op: "remove", Path: "/maintainerId"}}).Execute()
	require.NoError(t, err)
	assert.False(t, patched.HasMaintainerId())
	assert.Equal(t, int32(3), patched.GetVersion())

	// A representation read from one project can be posted to another as it is:
	// its read-only members are ignored, as LaunchDarkly ignores them.
	resp := ts.do(http.MethodGet, "/api/v2/metrics/web/checkout-click", "", auth...)
	require.Equal(t, http.StatusOK, resp.status)
	rep := resp.json(t)
	for k, v := range map[string]any{"_site": map[string]any{"href": "x", "type": "y"}, "_access": map[string]any{"denied": []any{}, "allowed": []any{}},
		"_maintainer": map[string]any{"_id": "569f183514f4432160000007"}, "experimentCount": 3, "metricGroupCount": 1,
		"experiments": []any{}, "metricGroups": []any{}, "_attachedFeatures": []any{}, "_attachedFlagCount": 7} {
		rep[k] = v
	}
	copied := ldCreate(t, ts, "mobile", mustJSON(t, rep), auth...)
	assert.NotEqual(t, rep["_id"], copied["_id"])
	assert.Equal(t, 1.0, copied["_version"])
	assert.Equal(t, 0.0, copied["_attachedFlagCount"])
	assert.Equal(t, "/api/v2/metrics/mobile/checkout-click", copied["_links"].(map[string]any)["self"].(map[string]any)["href"])
	assert.Equal(t, rep["urls"], copied["urls"])
	assert.Equal(t, rep["eventDefault"], copied["eventDefault"])
	for _, k := range []string{"_site", "_access", "_maintainer", "experimentCount", "metricGroupCount", "experiments", "metricGroups", "_attachedFeatures"} {
		assert.NotContains(t, copied, k)
	}

	// Refused, in LaunchDarkly's shape, nothing created or changed.
	refused := []struct{ name, method, path, body, msg string }{
		{"empty maintainerId", http.MethodPost, "/api/v2/metrics/web", `{"key":"a","kind":"custom","eventKey":"e","maintainerId":""}`, "maintainerId must not be empty"},
		{"maintainerId over max_key_length", http.MethodPost, "/api/v2/metrics/web", `{"key":"a","kind":"custom","eventKey":"e","maintainerId":"` + strings.Repeat("a", 1025) + `"}`, "maintainerId is 1025 bytes long"},
		{"maintainerId of another type", http.MethodPost, "/api/v2/metrics/web", `{"key":"a","kind":"custom","eventKey":"e","maintainerId":5}`, "invalid request body"},
		{"analysisType enum", http.MethodPost, "/api/v2/metrics/web", `{"key":"a","kind":"custom","eventKey":"e","analysisType":"median"}`, `analysisType "median" is invalid: must be mean or percentile`},
		{"a member of no MetricPost", http.MethodPost, "/api/v2/metrics/web", `{"key":"a","kind":"custom","eventKey":"e","dataSource":{"key":"x"}}`, `unknown field "dataSource"`},
		{"patch a read-only member", http.MethodPatch, "/api/v2/metrics/web/signup", `[{"op":"add","path":"/_maintainer","value":{}}]`, "/_maintainer cannot be changed"},
		{"patch experimentCount", http.MethodPatch, "/api/v2/metrics/web/signup", `[{"op":"add","path":"/experimentCount","value":1}]`, "/experimentCount cannot be changed"},
		{"patch maintainerId empty", http.MethodPatch, "/api/v2/metrics/web/signup", `[{"op":"add","path":"/maintainerId","value":" "}]`, "maintainerId must not be empty"},
	}
	before := ts.do(http.MethodGet, "/api/v2/metrics/web", "", auth...).body
	for _, tt := range refused {
		resp := ts.do(tt.method, tt.path, tt.body, auth...)
		require.Equal(t, http.StatusBadRequest, resp.status, tt.name)
		body := resp.json(t)
		assert.Equal(t, "invalid_request", body["code"], tt.name)
		assert.Contains(t, body["message"], tt.msg, tt.name)
	}
	assert.JSONEq(t, string(before), string(ts.do(http.MethodGet, "/api/v2/metrics/web", "", auth...).body))
}

// analysisType percentile would be stored and then averaged: it is refused
// with 400 in LaunchDarkly's shape, on create and on patch, through the real
// client (its MetricPost carries analysisType and percentileValue).
func TestLaunchDarklyPercentileRefused(t *testing.T) {
	const token = "api-0123456789abcdef"
	ts := startReceiver(t, func(c *Config) {
		c.LaunchDarkly.AccessTokens = []LaunchDarklyAccessToken{{Token: token}}
	}, nil)
	client, ctx := ldClient(ts, token, false)
	api := client.MetricsApi

	_, resp, err := api.PostMetric(ctx, "web").MetricPost(ldapi.MetricPost{
		Key: "latency", Kind: "custom", EventKey: ldapi.PtrString("latency"), IsNumeric: ldapi.PtrBool(true),
		SuccessCriteria: ldapi.PtrString("LowerThanBaseline"), AnalysisType: ldapi.PtrString("percentile"), PercentileValue: ldapi.PtrInt32(99),
	}).Execute()
	require.Error(t, err)
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	var apiErr *ldapi.GenericOpenAPIError
	require.True(t, errors.As(err, &apiErr))
	invalid, ok := apiErr.Model().(ldapi.InvalidRequestErrorRep)
	require.True(t, ok, "the client decodes LaunchDarkly's 400 model: %T", apiErr.Model())
	assert.Equal(t, "invalid_request", invalid.Code)
	assert.Contains(t, invalid.Message, `analysisType "percentile" is not supported`)
	_, resp, err = api.GetMetric(ctx, "web", "latency").Execute()
	require.Error(t, err)
	assert.Equal(t, http.StatusNotFound, resp.StatusCode, "nothing was created")

	// The same metric with mean is created; a patch to percentile is refused and changes nothing.
	_, _, err = api.PostMetric(ctx, "web").MetricPost(ldapi.MetricPost{
		Key: "latency", Kind: "custom", EventKey: ldapi.PtrString("latency"), IsNumeric: ldapi.PtrBool(true),
		SuccessCriteria: ldapi.PtrString("LowerThanBaseline"), AnalysisType: ldapi.PtrString("mean"),
	}).Execute()
	require.NoError(t, err)
	_, resp, err = api.PatchMetric(ctx, "web", "latency").PatchOperation([]ldapi.PatchOperation{
		{Op: "replace", Path: "/analysisType", Value: "percentile"}, {Op: "add", Path: "/percentileValue", Value: 99},
	}).Execute()
	require.Error(t, err)
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.Contains(t, string(err.(*ldapi.GenericOpenAPIError).Body()), `"code":"invalid_request"`)
	got, _, err := api.GetMetric(ctx, "web", "latency").Execute()
	require.NoError(t, err)
	assert.Equal(t, "mean", got.GetAnalysisType())
	assert.False(t, got.HasPercentileValue())
	assert.Equal(t, int32(1), got.GetVersion())
}

// getMetric's versionId: the current _versionId answers the metric; any other
// (an old one, after a patch, or an unknown one) answers 404 in LaunchDarkly's
// shape, since only the current version is kept. Through the real client.
func TestLaunchDarklyGetMetricVersionID(t *testing.T) {
	const token = "api-0123456789abcdef"
	ts := startReceiver(t, func(c *Config) {
		c.LaunchDarkly.AccessTokens = []LaunchDarklyAccessToken{{Token: token}}
	}, nil)
	client, ctx := ldClient(ts, token, false)
	api := client.MetricsApi
	created, _, err := api.PostMetric(ctx, "web").MetricPost(ldapi.MetricPost{Key: "signup", Kind: "custom", EventKey: ldapi.PtrString("signed-up")}).Execute()
	require.NoError(t, err)
	v1 := created.VersionId

	got, _, err := api.GetMetric(ctx, "web", "signup").VersionId(v1).Execute()
	require.NoError(t, err)
	assert.Equal(t, v1, got.VersionId)
	assert.Equal(t, int32(1), got.GetVersion())

	notFound := func(versionID string) {
		t.Helper()
		_, resp, err := api.GetMetric(ctx, "web", "signup").VersionId(versionID).Execute()
		require.Error(t, err)
		require.Equal(t, http.StatusNotFound, resp.StatusCode, versionID)
		nf, ok := err.(*ldapi.GenericOpenAPIError).Model().(ldapi.NotFoundErrorRep)
		require.True(t, ok)
		assert.Equal(t, "not_found", nf.Code)
		assert.Equal(t, "Invalid resource identifier", nf.Message)
	}
	notFound("000000000000000000000000")

	// A patch makes a new version: the old versionId is no longer found.
	patched, _, err := api.PatchMetric(ctx, "web", "signup").PatchOperation([]ldapi.PatchOperation{{Op: "replace", Path: "/name", Value: "Sign-ups"}}).Execute()
	require.NoError(t, err)
	assert.Equal(t, int32(2), patched.GetVersion())
	assert.NotEqual(t, v1, patched.VersionId)
	notFound(v1)
	got, _, err = api.GetMetric(ctx, "web", "signup").VersionId(patched.VersionId).Execute()
	require.NoError(t, err)
	assert.Equal(t, "Sign-ups", got.Name)
	assert.Equal(t, int32(2), got.GetVersion())

	// A no-op patch keeps the version (and its versionId); a refused one too.
	same, _, err := api.PatchMetric(ctx, "web", "signup").PatchOperation([]ldapi.PatchOperation{{Op: "replace", Path: "/name", Value: "Sign-ups"}}).Execute()
	require.NoError(t, err)
	assert.Equal(t, patched.VersionId, same.VersionId)
	assert.Equal(t, int32(2), same.GetVersion())
	_, _, err = api.PatchMetric(ctx, "web", "signup").PatchOperation([]ldapi.PatchOperation{{Op: "remove", Path: "/eventKey"}}).Execute()
	require.Error(t, err)
	got, _, err = api.GetMetric(ctx, "web", "signup").VersionId(patched.VersionId).Execute()
	require.NoError(t, err)
	assert.Equal(t, int32(2), got.GetVersion())

	// No versionId, or an empty one, is the current version; an unknown metric stays 404.
	assert.Equal(t, http.StatusOK, ts.do(http.MethodGet, "/api/v2/metrics/web/signup?versionId=", "", ldAuth(token)...).status)
	assert.Equal(t, http.StatusNotFound, ts.do(http.MethodGet, "/api/v2/metrics/web/nope?versionId="+patched.VersionId, "", ldAuth(token)...).status)
}
