package custommetricsreceiver

import (
	"context"
	"errors"
	"net/http"
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
