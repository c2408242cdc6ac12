package custommetricsreceiver

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Every limit is tested with bodies just below (at) and just above it; a
// refused request must leave nothing counted (the sink) and nothing stored.

func TestLimitsDefaultsAndValidation(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	assert.Equal(t, LimitsConfig{MaxNameLength: 256, MaxKeyLength: 1024, MaxPointsPerRequest: 10000}, cfg.Limits)
	require.NoError(t, cfg.Limits.Validate())
	assert.EqualError(t, LimitsConfig{}.Validate(), "max_name_length, max_key_length, max_points_per_request must be positive")
	assert.ErrorContains(t, LimitsConfig{MaxNameLength: 1, MaxKeyLength: -1, MaxPointsPerRequest: 1}.Validate(), "max_key_length must be positive")
}

func TestThreatConnectLimits(t *testing.T) {
	ts := startWithAggregate(t, func(c *Config) {
		c.Limits.MaxNameLength = 10
		c.Limits.MaxKeyLength = 8
	}, nil)
	create := func(name string, keyed bool) response {
		return ts.do(http.MethodPost, "/api/v2/customMetrics", `{"name":"`+name+`","dataType":"Sum","interval":"Hourly","keyedValues":`+strconv.FormatBool(keyed)+`}`)
	}

	// Metric names: max_name_length.
	require.Equal(t, http.StatusCreated, create(strings.Repeat("n", 10), true).status)
	resp := create(strings.Repeat("m", 11), false)
	assert.Equal(t, http.StatusBadRequest, resp.status)
	assert.Equal(t, "Failure", resp.json(t)["status"])
	assert.Contains(t, resp.json(t)["message"], "limits::max_name_length")
	assert.Equal(t, http.StatusNotFound, ts.do(http.MethodGet, "/api/v2/customMetrics/"+strings.Repeat("m", 11), "").status, "nothing stored")

	// Keys of keyed values: max_key_length.
	data := "/api/v2/customMetrics/" + strings.Repeat("n", 10) + "/data"
	require.Equal(t, http.StatusNoContent, ts.do(http.MethodPost, data, `{"name":"`+strings.Repeat("k", 8)+`","value":1}`).status)
	resp = ts.do(http.MethodPost, data+"?returnValue=true", `{"name":"`+strings.Repeat("k", 9)+`","value":1}`)
	assert.Equal(t, http.StatusBadRequest, resp.status)
	assert.Equal(t, "Failure", resp.json(t)["status"])
	assert.Contains(t, resp.json(t)["message"], "limits::max_key_length")
	assert.Len(t, ts.points(), 1, "the refused value is not counted")
}

func TestBigFixLimits(t *testing.T) {
	ts := startReceiver(t, func(c *Config) {
		c.Limits.MaxNameLength = 20
		c.Limits.MaxPointsPerRequest = 4
	}, nil)
	post := func(tag, body string) response { return ts.do(http.MethodPost, "/api/deploymentmetrics/"+tag, body) }

	// Values per request: max_points_per_request, 413 in BigFix's plain text.
	require.Equal(t, http.StatusOK, post("custom", `[1,2,3,4]`).status)
	resp := post("custom", `[1,2,3,4,5]`)
	assert.Equal(t, http.StatusRequestEntityTooLarge, resp.status)
	assert.Equal(t, "text/plain; charset=utf-8", resp.header.Get("Content-Type"))
	assert.Contains(t, string(resp.body), "limits::max_points_per_request")
	resp = post("custom", `{"a":1,"b":[2,3],"c":{"d":"4","e":5}}`) // nested leaves count too
	assert.Equal(t, http.StatusRequestEntityTooLarge, resp.status)
	assert.Len(t, ts.points(), 4, "nothing of a refused body is counted")
	assert.JSONEq(t, `{"tag":"custom","metrics":[1,2,3,4]}`, withoutLastChanged(t, ts.do(http.MethodGet, "/api/deploymentmetrics/custom", "").body), "nor stored")

	// Metric names ("<tag>.<JSON path>", so object keys count): max_name_length.
	require.Equal(t, http.StatusOK, post("t", `{"`+strings.Repeat("k", 18)+`":1}`).status) // t. + 18 = 20
	resp = post("u", `{"`+strings.Repeat("k", 19)+`":1}`)
	assert.Equal(t, http.StatusBadRequest, resp.status)
	assert.Contains(t, string(resp.body), "limits::max_name_length")
	// Tags: max_name_length.
	require.Equal(t, http.StatusOK, post(strings.Repeat("g", 20), `[7]`).status)
	resp = post(strings.Repeat("h", 21), `"not a number"`)
	assert.Equal(t, http.StatusBadRequest, resp.status)
	assert.True(t, strings.HasPrefix(string(resp.body), "Bad Request: tag is 21 bytes long"), string(resp.body))
	assert.Len(t, ts.points(), 6)
	assert.Equal(t, http.StatusNotFound, ts.do(http.MethodGet, "/api/deploymentmetrics/u", "").status)
	assert.Equal(t, http.StatusNotFound, ts.do(http.MethodGet, "/api/deploymentmetrics/"+strings.Repeat("h", 21), "").status)
}

// TestBigFixDefaultPointsLimit: an array of 10,000 numbers is accepted, 10,001 is not.
func TestBigFixDefaultPointsLimit(t *testing.T) {
	ts := startReceiver(t, nil, nil)
	numbers := func(n int) string { return "[" + strings.TrimSuffix(strings.Repeat("1,", n), ",") + "]" }
	assert.Equal(t, http.StatusRequestEntityTooLarge, ts.do(http.MethodPost, "/api/deploymentmetrics/big", numbers(10001)).status)
	assert.Empty(t, ts.sink.AllMetrics())
	require.Equal(t, http.StatusOK, ts.do(http.MethodPost, "/api/deploymentmetrics/big", numbers(10000)).status)
	assert.Equal(t, 10000, ts.sink.DataPointCount())
}

func withoutLastChanged(t *testing.T, body []byte) string {
	t.Helper()
	var doc map[string]any
	require.NoError(t, json.Unmarshal(body, &doc))
	delete(doc, "lastChanged")
	out, err := json.Marshal(doc)
	require.NoError(t, err)
	return string(out)
}

func TestLaunchDarklyMetricLimits(t *testing.T) {
	ts := startReceiver(t, func(c *Config) {
		c.Limits.MaxNameLength = 12
		c.Limits.MaxKeyLength = 10
	}, nil)
	n12, n13 := strings.Repeat("a", 12), strings.Repeat("b", 13)
	k10, k11 := strings.Repeat("e", 10), strings.Repeat("f", 11)
	ldCreate(t, ts, "p", `{"key":"`+n12+`","name":"`+n12+`","kind":"custom","eventKey":"`+k10+`","tags":["`+k10+`"]}`)
	for _, body := range []string{
		`{"key":"` + n13 + `","kind":"custom","eventKey":"e"}`,
		`{"key":"x","name":"` + n13 + `","kind":"custom","eventKey":"e"}`,
		`{"key":"y","kind":"custom","eventKey":"` + k11 + `"}`,
		`{"key":"z","kind":"custom","eventKey":"e","tags":["ok","` + k11 + `"]}`,
	} {
		resp := ts.do(http.MethodPost, "/api/v2/metrics/p", body)
		require.Equal(t, http.StatusBadRequest, resp.status, body)
		assert.Equal(t, "invalid_request", resp.json(t)["code"])
		assert.Contains(t, resp.json(t)["message"], "limits::max_")
	}
	resp := ts.do(http.MethodGet, "/api/v2/metrics/p", "")
	assert.EqualValues(t, 1, resp.json(t)["totalCount"], "nothing refused was stored")

	// A patch may not take a metric over a limit either; a refused one changes nothing.
	path := "/api/v2/metrics/p/" + n12
	for _, patch := range []string{
		`[{"op":"replace","path":"/name","value":"` + n13 + `"}]`,
		`[{"op":"replace","path":"/eventKey","value":"` + k11 + `"}]`,
		`[{"op":"add","path":"/tags/-","value":"` + k11 + `"}]`,
	} {
		resp = ts.do(http.MethodPatch, path, patch)
		require.Equal(t, http.StatusBadRequest, resp.status, patch)
		assert.Equal(t, "invalid_request", resp.json(t)["code"])
	}
	got := ts.do(http.MethodGet, path, "").json(t)
	assert.EqualValues(t, 1, got["_version"])
	resp = ts.do(http.MethodPatch, path, `[{"op":"replace","path":"/name","value":"`+strings.Repeat("c", 12)+`"}]`)
	require.Equal(t, http.StatusOK, resp.status, string(resp.body))
	assert.EqualValues(t, 2, resp.json(t)["_version"])
}

func TestLaunchDarklyEventLimits(t *testing.T) {
	ts := startReceiver(t, func(c *Config) {
		ldEventsConfig(c)
		c.Limits.MaxKeyLength = 10
		c.Limits.MaxPointsPerRequest = 3
	}, nil)
	ldCreate(t, ts, "shop", `{"key":"signup","kind":"custom","eventKey":"signed-up"}`)
	bulk := "/launchdarkly/events/bulk"
	key := []string{"Authorization", ldSDKKey}
	events := func(n int, eventKey string) string {
		e := `{"kind":"custom","creationDate":1700000000000,"key":"` + eventKey + `","contextKeys":{"user":"u"}}`
		return "[" + strings.TrimSuffix(strings.Repeat(e+",", n), ",") + "]"
	}

	require.Equal(t, http.StatusAccepted, ts.do(http.MethodPost, bulk, events(3, "signed-up"), key...).status)
	assert.Equal(t, 3, ts.sink.DataPointCount())
	resp := ts.do(http.MethodPost, bulk, events(4, "signed-up"), key...)
	assert.Equal(t, http.StatusRequestEntityTooLarge, resp.status)
	assert.Equal(t, "request_entity_too_large", resp.json(t)["code"])
	assert.Contains(t, resp.json(t)["message"], "limits::max_points_per_request")

	// Event keys: max_key_length; one long key refuses the whole payload.
	require.Equal(t, http.StatusAccepted, ts.do(http.MethodPost, bulk, events(1, strings.Repeat("k", 10)), key...).status)
	resp = ts.do(http.MethodPost, bulk, `[`+strings.TrimSuffix(events(1, "signed-up"), "]")[1:]+`,`+events(1, strings.Repeat("k", 11))[1:], key...)
	assert.Equal(t, http.StatusBadRequest, resp.status, string(resp.body))
	assert.Equal(t, "invalid_request", resp.json(t)["code"])
	assert.Contains(t, resp.json(t)["message"], "limits::max_key_length")
	assert.Equal(t, 3, ts.sink.DataPointCount(), "nothing of a refused payload is counted")
	_, refused := ts.rcv.stats.counts("")
	assert.Zero(t, refused[apiLaunchDarkly])
}

// TestLaunchDarklyDefaultPointsLimit: one event may give values to several
// metrics, so points, not events, are counted: 5,000 events feeding two
// metrics are 10,000 values (accepted), 5,001 are 10,002 (413).
func TestLaunchDarklyDefaultPointsLimit(t *testing.T) {
	ts := startReceiver(t, ldEventsConfig, nil)
	ldCreate(t, ts, "shop", `{"key":"signup","kind":"custom","eventKey":"signed-up"}`)
	ldCreate(t, ts, "shop", `{"key":"signup-too","kind":"custom","eventKey":"signed-up"}`)
	events := func(n int) string {
		e := `{"kind":"custom","creationDate":1700000000000,"key":"signed-up"}`
		return "[" + strings.TrimSuffix(strings.Repeat(e+",", n), ",") + "]"
	}
	key := []string{"Authorization", ldSDKKey}
	assert.Equal(t, http.StatusRequestEntityTooLarge, ts.do(http.MethodPost, "/launchdarkly/events/bulk", events(5001), key...).status)
	assert.Empty(t, ts.sink.AllMetrics())
	require.Equal(t, http.StatusAccepted, ts.do(http.MethodPost, "/launchdarkly/events/bulk", events(5000), key...).status)
	assert.Equal(t, 10000, ts.sink.DataPointCount())
}

func TestEmbraceLimits(t *testing.T) {
	ts := startReceiver(t, func(c *Config) {
		c.Limits.MaxNameLength = 12
		c.Limits.MaxKeyLength = 10
		c.Embrace.BaseMetrics = []EmbraceBaseMetric{{Name: "sessions_total", Attributes: []string{strings.Repeat("a", 10), strings.Repeat("b", 11)}}}
	}, nil)
	ok := `{"name":"` + strings.Repeat("n", 12) + `","metric":"sessions_total","group_by":["` + strings.Repeat("a", 10) + `"],"filters":{"field_op":"eq","key":"` + strings.Repeat("a", 10) + `","val":"1"}}`
	require.Equal(t, http.StatusOK, ts.do(http.MethodPost, embraceBase, ok).status)
	for _, body := range []string{
		`{"name":"` + strings.Repeat("m", 13) + `","metric":"sessions_total"}`,
		`{"name":"g","metric":"sessions_total","group_by":["` + strings.Repeat("b", 11) + `"]}`,
		`{"name":"f","metric":"sessions_total","filters":{"op":"and","children":[{"field_op":"eq","key":"` + strings.Repeat("b", 11) + `","val":"1"}]}}`,
	} {
		resp := ts.do(http.MethodPost, embraceBase, body)
		require.Equal(t, http.StatusBadRequest, resp.status, body)
		assert.Equal(t, []string{"message"}, keys(resp.json(t)))
		assert.Contains(t, resp.json(t)["message"], "limits::max_")
	}
	resp := ts.do(http.MethodGet, embraceBase, "")
	assert.Len(t, resp.json(t)["results"], 1, "nothing refused was stored")
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
