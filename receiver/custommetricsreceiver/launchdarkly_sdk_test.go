package custommetricsreceiver

import (
	"bytes"
	"compress/gzip"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/launchdarkly/go-sdk-common/v3/ldcontext"
	"github.com/launchdarkly/go-sdk-common/v3/ldlog"
	"github.com/launchdarkly/go-sdk-common/v3/ldvalue"
	ld "github.com/launchdarkly/go-server-sdk/v7"
	"github.com/launchdarkly/go-server-sdk/v7/interfaces"
	"github.com/launchdarkly/go-server-sdk/v7/ldcomponents"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/config/confighttp"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/custommetrics/bundle/internal/otelmap"
)

const ldSDKKey = "sdk-11111111-2222-3333-4444-555555555555"

func ldEventsConfig(c *Config) {
	c.LaunchDarkly.Events.SDKKeys = []LaunchDarklySDKKey{
		{Key: ldSDKKey, Project: "shop"},
		{Key: "sdk-other", Project: "other"},
	}
}

// ldSDK starts LaunchDarkly's Go server SDK with its events sent to the receiver.
func ldSDK(t *testing.T, ts *testServer, diagnosticOptOut bool) *ld.LDClient {
	t.Helper()
	return ldSDKWithEventsURI(t, ts, ts.base+"/launchdarkly/events", diagnosticOptOut)
}

// ldSDKWithEventsURI starts the SDK with its events base URI set to eventsURI;
// it posts to eventsURI + its default paths, /bulk and /diagnostic.
func ldSDKWithEventsURI(t *testing.T, ts *testServer, eventsURI string, diagnosticOptOut bool) *ld.LDClient {
	t.Helper()
	cfg := ld.Config{
		DataSource:       ldcomponents.ExternalUpdatesOnly(),
		ServiceEndpoints: interfaces.ServiceEndpoints{Streaming: ts.base, Polling: ts.base, Events: eventsURI},
		Events:           ldcomponents.SendEvents().FlushInterval(time.Hour),
		DiagnosticOptOut: diagnosticOptOut,
		Logging:          ldcomponents.Logging().MinLevel(ldlog.Warn),
	}
	client, err := ld.MakeCustomClient(ldSDKKey, cfg, 5*time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { _ = client.Close() })
	return client
}

func ldCreateEventMetrics(t *testing.T, ts *testServer) {
	t.Helper()
	ldCreate(t, ts, "shop", ldConversionBody)
	ldCreate(t, ts, "shop", ldNumericBody)
	ldCreate(t, ts, "shop", `{"key":"any-purchase","kind":"custom","eventKey":"purchase"}`) // a conversion on the same event
	ldCreate(t, ts, "shop", ldClickBody)
	ldCreate(t, ts, "shop", ldPageviewBody)
	ldCreate(t, ts, "other", ldConversionBody) // same event key, another project
}

func pointsByMetric(ts *testServer) map[string][]receivedPoint {
	out := map[string][]receivedPoint{}
	for _, p := range ts.points() {
		out[p.metric.Name()] = append(out[p.metric.Name()], p)
	}
	return out
}

func TestLaunchDarklyGoSDKTrack(t *testing.T) {
	// The SDK key and the access token belong to tenant org-a.
	ts := startReceiver(t, func(c *Config) {
		ldEventsConfig(c)
		c.LaunchDarkly.Events.SDKKeys[0].Tenant = "org-a"
		c.LaunchDarkly.AccessTokens = []LaunchDarklyAccessToken{{Token: "api-a", Access: Access{Tenant: "org-a"}}}
	}, nil)
	auth := ldAuth("api-a")
	for _, body := range []string{ldConversionBody, ldNumericBody, `{"key":"any-purchase","kind":"custom","eventKey":"purchase"}`} {
		ldCreate(t, ts, "shop", body, auth...)
	}
	ldCreate(t, ts, "other", ldConversionBody, auth...)

	client := ldSDK(t, ts, false)
	user := ldcontext.New("user-1")
	org := ldcontext.NewMulti(ldcontext.New("user-2"), ldcontext.NewWithKind("org", "acme"))
	before := time.Now()
	require.NoError(t, client.TrackEvent("signed-up", user))
	require.NoError(t, client.TrackEvent("signed-up", org))
	require.NoError(t, client.TrackMetric("purchase", user, 12.5, ldvalue.Null()))
	require.NoError(t, client.TrackData("purchase", org, ldvalue.String("no value"))) // a conversion only
	require.NoError(t, client.TrackEvent("not-a-metric", user))
	_, _ = client.BoolVariation("some-flag", user, false) // summary events are ignored
	client.Flush()
	// FlushAndWait's reply is not reliable while a diagnostic post is in flight; wait for the values instead.
	require.Eventually(t, func() bool { return len(ts.points()) == 5 }, 5*time.Second, 10*time.Millisecond)

	got := pointsByMetric(ts)
	require.Len(t, got["signup"], 2, "two conversions")
	for _, p := range got["signup"] {
		assert.Equal(t, 1.0, p.dp.DoubleValue())
		assert.Equal(t, pmetric.MetricTypeSum, p.metric.Type())
		assert.Equal(t, pmetric.AggregationTemporalityDelta, p.metric.Sum().AggregationTemporality())
		assert.Equal(t, map[string]any{otelmap.AttrAPI: "launchdarkly", otelmap.AttrTenant: "org-a", otelmap.AttrLaunchDarklyProject: "shop"}, p.resource)
		assert.WithinRange(t, p.dp.Timestamp().AsTime(), before.Add(-time.Second), time.Now().Add(time.Second), "the event's creationDate")
	}
	require.Len(t, got["revenue"], 1, "TrackMetric gives the numeric metric its value; TrackData has no metricValue")
	rev := got["revenue"][0]
	assert.Equal(t, 12.5, rev.dp.DoubleValue())
	assert.Equal(t, "USD", rev.metric.Unit())
	assert.Equal(t, pmetric.MetricTypeGauge, rev.metric.Type())
	assert.Equal(t, map[string]any{otelmap.MetaAggregation: "average", otelmap.MetaInterval: "hour", otelmap.MetaKeyed: false}, rev.metric.Metadata().AsRaw(), "aggregated in events::interval windows (default hour)")
	assert.Len(t, got["any-purchase"], 2, "a conversion metric counts every purchase event")
	assert.Len(t, got, 3, "nothing else: no values for the other project or unknown events")
	assert.Len(t, ts.sink.AllMetrics(), 1, "one payload, one batch")

	// The SDK sent its diagnostic events and they were answered (else it would have stopped sending).
	assert.Eventually(t, func() bool { return ts.rcv.ld.diagnostics.Load() >= 1 }, 5*time.Second, 10*time.Millisecond)
}

// An SDK whose events URI is the collector's root URL, as a user sets it
// (LaunchDarkly's events host takes /bulk and /diagnostic at its root), posts
// to /bulk and /diagnostic: both are served there, and every event counts once.
func TestLaunchDarklyGoSDKEventsURIAtRoot(t *testing.T) {
	ts := startReceiver(t, ldEventsConfig, nil)
	ldCreate(t, ts, "shop", ldConversionBody)
	ldCreate(t, ts, "shop", ldNumericBody)

	client := ldSDKWithEventsURI(t, ts, ts.base+"/", false)
	user := ldcontext.New("user-1")
	for range 3 {
		require.NoError(t, client.TrackEvent("signed-up", user))
	}
	require.NoError(t, client.TrackMetric("purchase", user, 2.5, ldvalue.Null()))
	require.NoError(t, client.TrackMetric("purchase", user, 4, ldvalue.Null()))
	client.Flush()
	require.Eventually(t, func() bool { return len(ts.points()) >= 5 }, 5*time.Second, 10*time.Millisecond)
	// The SDK's diagnostic-init went to /diagnostic at the root and was answered.
	require.Eventually(t, func() bool { return ts.rcv.ld.diagnostics.Load() >= 1 }, 5*time.Second, 10*time.Millisecond)
	client.Flush() // nothing left to send: no value twice
	require.NoError(t, client.Close())

	got := pointsByMetric(ts)
	require.Len(t, got["signup"], 3, "three conversions, each once")
	for _, p := range got["signup"] {
		assert.Equal(t, 1.0, p.dp.DoubleValue())
	}
	require.Len(t, got["revenue"], 2)
	assert.Equal(t, 2.5, got["revenue"][0].dp.DoubleValue())
	assert.Equal(t, 4.0, got["revenue"][1].dp.DoubleValue())
	assert.Len(t, got, 2)
	accepted, refused := ts.rcv.stats.counts("")
	assert.Equal(t, int64(5), accepted[apiLaunchDarkly], "the receiver's own counter agrees")
	assert.Zero(t, refused[apiLaunchDarkly])

	// The root paths take the same SDK keys as <events.path>.
	assert.Equal(t, http.StatusUnauthorized, ts.do(http.MethodPost, "/bulk", `[]`, "Authorization", "sdk-unknown").status)
	assert.Equal(t, http.StatusUnauthorized, ts.do(http.MethodPost, "/diagnostic", `{}`).status)
	assert.Equal(t, http.StatusAccepted, ts.do(http.MethodPost, "/bulk", `[]`, "Authorization", "sdk-other").status)
}

func TestLaunchDarklyGoSDKBackpressure(t *testing.T) {
	ts := startReceiver(t, ldEventsConfig, nil)
	ldCreate(t, ts, "shop", ldConversionBody)
	// The first payload and the SDK's single retry are refused; nothing is acknowledged.
	ts.rcv.next = consumertest.NewErr(errors.New("data refused due to high memory usage"))
	client := ldSDK(t, ts, true)
	require.NoError(t, client.TrackEvent("signed-up", ldcontext.New("u")))
	client.Flush()
	// The payload and the SDK's one retry are both refused.
	require.Eventually(t, func() bool { _, refused := ts.rcv.stats.counts(""); return refused[apiLaunchDarkly] == 2 }, 5*time.Second, 10*time.Millisecond)
	assert.Empty(t, ts.points())
	assert.Zero(t, ts.rcv.ld.diagnostics.Load(), "DiagnosticOptOut")

	ts.rcv.next = ts.sink
	require.NoError(t, client.TrackEvent("signed-up", ldcontext.New("u")))
	client.Flush()
	assert.Eventually(t, func() bool { return len(ts.points()) == 1 }, 5*time.Second, 10*time.Millisecond, "the SDK keeps sending after a 503")
}

func TestLaunchDarklyEventsEndpoint(t *testing.T) {
	ts := startReceiver(t, ldEventsConfig, nil)
	ldCreateEventMetrics(t, ts)
	bulk := "/launchdarkly/events/bulk"
	key := []string{"Authorization", ldSDKKey, "X-LaunchDarkly-Event-Schema", "4"}

	// contextKeys (older SDKs) and context are both accepted; other kinds are ignored.
	payload := `[
	  {"kind":"index","creationDate":1700000000000,"context":{"kind":"user","key":"u1"}},
	  {"kind":"custom","creationDate":1700000000000,"key":"signed-up","contextKeys":{"user":"u1"}},
	  {"kind":"custom","creationDate":1700000001000,"key":"purchase","context":{"kind":"user","key":"u1"},"metricValue":3,"data":{"sku":"x"}},
	  {"kind":"feature","creationDate":1700000000000,"key":"flag","version":3,"variation":1,"value":true,"default":false,"context":{"kind":"user","key":"u1"}},
	  {"kind":"summary","startDate":1,"endDate":2,"features":{"flag":{"default":false,"counters":[{"version":3,"value":true,"count":1,"variation":1}],"contextKinds":["user"]}}},
	  {"kind":"identify","creationDate":1700000000000,"context":{"kind":"user","key":"u1"}},
	  {"kind":"pageview","creationDate":1700000002000,"url":"https://shop.example/checkout?step=2#top","context":{"kind":"user","key":"u1"}},
	  {"kind":"pageview","creationDate":1700000002000,"url":"https://shop.example/thanks/42","contextKeys":{"user":"u1"}},
	  {"kind":"pageview","creationDate":1700000002000,"url":"https://shop.example/elsewhere","contextKeys":{"user":"u1"}},
	  {"kind":"click","creationDate":1700000003000,"url":"https://shop.example/cart","selector":"#buy","contextKeys":{"user":"u1"}},
	  {"kind":"click","creationDate":1700000003000,"url":"https://shop.example/cart","selector":"#other","contextKeys":{"user":"u1"}},
	  {"kind":"click","creationDate":1700000003000,"key":"buy-click","url":"https://x.example/","contextKeys":{"user":"u1"}}
	]`
	resp := ts.do(http.MethodPost, bulk, payload, key...)
	require.Equal(t, http.StatusAccepted, resp.status, string(resp.body))
	got := pointsByMetric(ts)
	require.Len(t, got["signup"], 1)
	assert.Equal(t, time.UnixMilli(1700000000000).UTC(), got["signup"][0].dp.Timestamp().AsTime().UTC())
	require.Len(t, got["revenue"], 1)
	assert.Equal(t, 3.0, got["revenue"][0].dp.DoubleValue())
	assert.Len(t, got["any-purchase"], 1)
	assert.Len(t, got["checkout-view"], 2, "canonical URL (query and fragment ignored) and regex matchers")
	assert.Len(t, got["buy-click"], 2, "a matching URL and selector, and a click naming the metric by key")

	// Nothing in a payload is counted when part of it is malformed.
	n := len(ts.points())
	for _, bad := range []string{`{"kind":"custom"}`, `[{"kind":"custom","key":"signed-up","metricValue":"x"}]`, `[{"kind":"custom"}]`, `[{"kind":"custom","key":"signed-up"},{"kind":"custom","key":"signed-up","context":"u"}]`} {
		resp = ts.do(http.MethodPost, bulk, bad, key...)
		assert.Equal(t, http.StatusBadRequest, resp.status, bad)
		assert.Equal(t, "invalid_request", resp.json(t)["code"])
	}
	assert.Len(t, ts.points(), n)

	// Only configured SDK keys; the other key feeds its own project.
	for _, k := range []string{"", "sdk-unknown", "api-a"} {
		assert.Equal(t, http.StatusUnauthorized, ts.do(http.MethodPost, bulk, `[]`, "Authorization", k).status)
	}
	require.Equal(t, http.StatusAccepted, ts.do(http.MethodPost, bulk, `[{"kind":"custom","key":"signed-up","creationDate":1}]`, "Authorization", "sdk-other").status)
	assert.Len(t, ts.points(), n+1)
	last := ts.points()[n]
	assert.Equal(t, "other", last.resource[otelmap.AttrLaunchDarklyProject])

	assert.Equal(t, http.StatusAccepted, ts.do(http.MethodPost, "/launchdarkly/events/diagnostic", `{"kind":"diagnostic-init"}`, key...).status)

	// SDKs with gzip on send Content-Encoding: gzip; the HTTP server decodes it.
	var zipped bytes.Buffer
	zw := gzip.NewWriter(&zipped)
	_, _ = zw.Write([]byte(`[{"kind":"custom","key":"signed-up","creationDate":2}]`))
	require.NoError(t, zw.Close())
	req, err := http.NewRequest(http.MethodPost, ts.base+bulk, &zipped)
	require.NoError(t, err)
	req.Header.Set("Content-Encoding", "gzip")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", ldSDKKey)
	gz, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	gz.Body.Close()
	require.Equal(t, http.StatusAccepted, gz.StatusCode)
	assert.Len(t, ts.points(), n+2)
	assert.Equal(t, http.StatusMethodNotAllowed, ts.do(http.MethodGet, bulk, "", key...).status)

	// Backpressure: 503 with Retry-After, and the values are not acknowledged.
	ts.rcv.next = consumertest.NewErr(errors.New("memory limit"))
	resp = ts.do(http.MethodPost, bulk, `[{"kind":"custom","key":"signed-up"}]`, key...)
	require.Equal(t, http.StatusServiceUnavailable, resp.status)
	assert.Equal(t, "1", resp.header.Get("Retry-After"))
	assert.Equal(t, "service_unavailable", resp.json(t)["code"])
	// A payload with nothing to count needs no pipeline.
	assert.Equal(t, http.StatusAccepted, ts.do(http.MethodPost, bulk, `[{"kind":"custom","key":"unknown"}]`, key...).status)
}

func TestLaunchDarklyEventsPathAndSwitch(t *testing.T) {
	ts := startReceiver(t, func(c *Config) {
		ldEventsConfig(c)
		c.LaunchDarkly.Events.Path = "/ld-events"
	}, nil)
	assert.Equal(t, http.StatusAccepted, ts.do(http.MethodPost, "/ld-events/bulk", `[]`, "Authorization", ldSDKKey).status)
	assert.Equal(t, http.StatusNotFound, ts.do(http.MethodPost, "/launchdarkly/events/bulk", `[]`, "Authorization", ldSDKKey).status)

	off := startReceiver(t, func(c *Config) {
		ldEventsConfig(c)
		c.LaunchDarkly.Events.Enabled = false
	}, nil)
	assert.Equal(t, http.StatusNotFound, off.do(http.MethodPost, "/launchdarkly/events/bulk", `[]`, "Authorization", ldSDKKey).status)
	assert.Equal(t, http.StatusOK, off.do(http.MethodGet, "/api/v2/metrics/p", "").status)

	none := startReceiver(t, func(c *Config) { c.LaunchDarkly.Enabled = false }, nil)
	assert.Equal(t, http.StatusNotFound, none.do(http.MethodGet, "/api/v2/metrics/p", "").status)
	assert.Equal(t, http.StatusNotFound, none.do(http.MethodPost, "/launchdarkly/events/bulk", `[]`).status)
}

// The event paths at the root take nothing from another API: with the events
// endpoint on and off, every route each API registers answers the same, and
// with it off nobody serves the root event paths (net/http's own 404). Run
// with the default prefixes and with every path_prefix empty, where the other
// APIs' routes come closest to the root.
func TestLaunchDarklyEventPathsCollideWithNothing(t *testing.T) {
	otherRoutes := []struct{ method, path string }{
		{http.MethodGet, "/v2/customMetrics"}, {http.MethodGet, "/v2/customMetrics/"}, {http.MethodPost, "/v2/customMetrics"},
		{http.MethodGet, "/v2/customMetrics/m"}, {http.MethodDelete, "/v2/customMetrics/m"}, {http.MethodPost, "/v2/customMetrics/m/data"},
		{http.MethodPost, "/api/1/impact/1/register_impact"},
		{http.MethodGet, "/api/deploymentmetrics"}, {http.MethodGet, "/api/deploymentmetrics/tag"}, {http.MethodPost, "/api/deploymentmetrics/tag"},
		{http.MethodGet, "/api/v2/metrics/p"}, {http.MethodGet, "/api/v2/metrics/p/"}, {http.MethodPost, "/api/v2/metrics/p"},
		{http.MethodGet, "/api/v2/metrics/p/m"}, {http.MethodPatch, "/api/v2/metrics/p/m"}, {http.MethodDelete, "/api/v2/metrics/p/m"},
		{http.MethodGet, "/custom-metrics/api/v1/app/a/custom-metrics"}, {http.MethodPost, "/custom-metrics/api/v1/app/a/custom-metrics"},
		{http.MethodGet, "/custom-metrics/api/v1/app/a/custom-metrics/n"}, {http.MethodDelete, "/custom-metrics/api/v1/app/a/custom-metrics/n"},
	}
	rootEventPaths := []string{"/bulk", "/diagnostic", "/events/bulk/" + ldClientSideID, "/events/diagnostic/" + ldClientSideID}
	for _, noPrefixes := range []bool{false, true} {
		prefixes := func(c *Config) {
			ldEventsConfig(c)
			if noPrefixes {
				c.ThreatConnect.PathPrefix = ""
			}
		}
		on := startReceiver(t, prefixes, nil)
		off := startReceiver(t, func(c *Config) { prefixes(c); c.LaunchDarkly.Events.Enabled = false }, nil)
		tcPrefix := "/api"
		if noPrefixes {
			tcPrefix = ""
		}
		for _, rt := range otherRoutes {
			path := rt.path
			if strings.HasPrefix(path, "/v2/customMetrics") {
				path = tcPrefix + path
			}
			a, b := on.do(rt.method, path, `{}`), off.do(rt.method, path, `{}`)
			assert.Equal(t, b.status, a.status, "%s %s", rt.method, path)
			if path != "/api/deploymentmetrics" { // its platform document carries the uptime
				assert.Equal(t, string(b.body), string(a.body), "%s %s", rt.method, path)
			}
			assert.NotEqual(t, "404 page not found\n", string(a.body), "%s %s is routed to its API", rt.method, path)
		}
		for _, path := range rootEventPaths {
			resp := off.do(http.MethodPost, path, `[]`, "Authorization", ldSDKKey)
			assert.Equal(t, http.StatusNotFound, resp.status, path)
			assert.Equal(t, "404 page not found\n", string(resp.body), "no API serves %s", path)
			resp = on.do(http.MethodPost, path, `[]`, "Authorization", "sdk-unknown")
			if strings.HasPrefix(path, "/events/") {
				assert.Equal(t, http.StatusNotFound, resp.status, path)
				assert.Equal(t, "not_found", resp.json(t)["code"], "LaunchDarkly's answer to an unknown client-side ID: %s", path)
				continue
			}
			assert.Equal(t, http.StatusUnauthorized, resp.status, path)
			assert.Equal(t, "unauthorized", resp.json(t)["code"], path)
		}
	}
}

// ldClientSideID is an environment's client-side ID (24 hex digits, as LaunchDarkly's).
const ldClientSideID = "5f0a1b2c3d4e5f6a7b8c9d0e"

// Client-side SDKs post to /events/bulk/{client-side ID}, with no
// Authorization header. There is no client-side SDK in Go (the JavaScript SDK
// needs a browser), so the payload is sent over raw HTTP, in the shape and
// with the headers js-client-sdk sends: pageview and click events naming their
// metric by key, custom events with contextKeys and an optional metricValue.
func TestLaunchDarklyClientSideEvents(t *testing.T) {
	ts := startReceiver(t, func(c *Config) {
		ldEventsConfig(c)
		c.LaunchDarkly.AccessTokens = []LaunchDarklyAccessToken{{Token: "api-a", Access: Access{Tenant: "org-a"}}, {Token: "api-default"}}
		c.LaunchDarkly.Events.ClientSideIDs = []LaunchDarklyClientSideID{{ID: ldClientSideID, Tenant: "org-a", Project: "shop"}}
	}, nil)
	auth := ldAuth("api-a")
	for _, body := range []string{ldConversionBody, ldNumericBody, ldClickBody, ldPageviewBody} {
		ldCreate(t, ts, "shop", body, auth...)
	}
	ldCreate(t, ts, "other", ldConversionBody, auth...)
	ldCreate(t, ts, "shop", ldConversionBody, ldAuth("api-default")...) // the default tenant's: not this ID's

	jsHeaders := []string{"X-LaunchDarkly-Event-Schema", "4", "X-LaunchDarkly-User-Agent", "JSClient/3.5.0", "X-LaunchDarkly-Payload-ID", "a5f9bc3c-7a43-4d5e-9b59-0d6d7ac8b1ff"}
	payload := `[
	  {"kind":"identify","creationDate":1700000000000,"context":{"kind":"user","key":"u1"}},
	  {"kind":"custom","key":"signed-up","creationDate":1700000000000,"contextKeys":{"user":"u1"},"url":"https://shop.example/"},
	  {"kind":"custom","key":"signed-up","creationDate":1700000000500,"contextKeys":{"user":"u2"},"url":"https://shop.example/"},
	  {"kind":"custom","key":"purchase","creationDate":1700000001000,"contextKeys":{"user":"u1"},"metricValue":19.5,"data":{"sku":"x"},"url":"https://shop.example/cart"},
	  {"kind":"pageview","key":"checkout-view","url":"https://shop.example/checkout","creationDate":1700000002000,"contextKeys":{"user":"u1"}},
	  {"kind":"click","key":"buy-click","url":"https://shop.example/cart","selector":"#buy","creationDate":1700000003000,"contextKeys":{"user":"u1"}},
	  {"kind":"summary","startDate":1,"endDate":2,"features":{}}
	]`
	resp := ts.do(http.MethodPost, "/events/bulk/"+ldClientSideID, payload, jsHeaders...)
	require.Equal(t, http.StatusAccepted, resp.status, string(resp.body))
	got := pointsByMetric(ts)
	require.Len(t, got["signup"], 2)
	require.Len(t, got["revenue"], 1)
	assert.Equal(t, 19.5, got["revenue"][0].dp.DoubleValue())
	assert.Len(t, got["checkout-view"], 1)
	assert.Len(t, got["buy-click"], 1)
	assert.Len(t, got, 4)
	for _, p := range ts.points() {
		assert.Equal(t, map[string]any{otelmap.AttrAPI: "launchdarkly", otelmap.AttrTenant: "org-a", otelmap.AttrLaunchDarklyProject: "shop"}, p.resource, "the client-side ID's tenant and project")
	}
	n := len(ts.points())

	// An unknown client-side ID gets 404 in LaunchDarkly's shape; nothing counts.
	for _, path := range []string{"/events/bulk/5f0a1b2c3d4e5f6a7b8c9d0f", "/events/bulk/" + ldSDKKey, "/events/diagnostic/nope"} {
		resp = ts.do(http.MethodPost, path, payload, jsHeaders...)
		require.Equal(t, http.StatusNotFound, resp.status, path)
		assert.JSONEq(t, `{"code":"not_found","message":"Invalid resource identifier"}`, string(resp.body), path)
	}
	assert.Equal(t, http.StatusNotFound, ts.do(http.MethodPost, "/events/bulk/", payload).status, "no ID")
	assert.Len(t, ts.points(), n)

	// The ID is the credential: an SDK key in the header does not replace it.
	assert.Equal(t, http.StatusNotFound, ts.do(http.MethodPost, "/events/bulk/x", `[]`, "Authorization", ldSDKKey).status)
	assert.Equal(t, http.StatusAccepted, ts.do(http.MethodPost, "/events/diagnostic/"+ldClientSideID, `{"kind":"diagnostic-init"}`, jsHeaders...).status)
	resp = ts.do(http.MethodGet, "/events/bulk/"+ldClientSideID, "")
	assert.Equal(t, http.StatusMethodNotAllowed, resp.status)
	assert.Equal(t, "method_not_allowed", resp.json(t)["code"])
	resp = ts.do(http.MethodPost, "/events/bulk/"+ldClientSideID, `[{"kind":"custom"}]`, jsHeaders...)
	assert.Equal(t, http.StatusBadRequest, resp.status)
	assert.Equal(t, "invalid_request", resp.json(t)["code"])
	assert.Len(t, ts.points(), n)

	// In a browser the SDK's post is preceded by a CORS preflight, which
	// confighttp's cors settings answer when the page's origin and the SDK's
	// headers are allowed (README). Browsers list the requested headers sorted.
	cors := startReceiver(t, func(c *Config) {
		c.LaunchDarkly.Events.ClientSideIDs = []LaunchDarklyClientSideID{{ID: ldClientSideID, Project: "shop"}}
		c.ServerConfig.CORS = configoptional.Some(confighttp.CORSConfig{
			AllowedOrigins: []string{"https://shop.example"},
			AllowedHeaders: []string{"Content-Type", "X-LaunchDarkly-Event-Schema", "X-LaunchDarkly-User-Agent", "X-LaunchDarkly-Payload-ID", "X-LaunchDarkly-Wrapper"},
		})
	}, nil)
	resp = cors.do(http.MethodOptions, "/events/bulk/"+ldClientSideID, "", "Origin", "https://shop.example",
		"Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "content-type,x-launchdarkly-event-schema,x-launchdarkly-payload-id,x-launchdarkly-user-agent")
	assert.Equal(t, http.StatusNoContent, resp.status)
	assert.Equal(t, "https://shop.example", resp.header.Get("Access-Control-Allow-Origin"))
	resp = cors.do(http.MethodPost, "/events/bulk/"+ldClientSideID, `[]`, append([]string{"Origin", "https://shop.example"}, jsHeaders...)...)
	assert.Equal(t, http.StatusAccepted, resp.status)
	assert.Equal(t, "https://shop.example", resp.header.Get("Access-Control-Allow-Origin"))

	off := startReceiver(t, func(c *Config) {
		c.LaunchDarkly.Events.Enabled = false
		c.LaunchDarkly.Events.ClientSideIDs = []LaunchDarklyClientSideID{{ID: ldClientSideID, Project: "shop"}}
	}, nil)
	assert.Equal(t, http.StatusNotFound, off.do(http.MethodPost, "/events/bulk/"+ldClientSideID, `[]`).status, "events::enabled false turns the client-side paths off too")
}
