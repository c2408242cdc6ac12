package custommetricsreceiver

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configopaque"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/processor/batchprocessor"
	"go.opentelemetry.io/collector/processor/memorylimiterprocessor"
	"go.opentelemetry.io/collector/processor/processortest"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/custommetrics/bundle/internal/otelmap"
	tc "github.com/custommetrics/bundle/internal/wire/threatconnect"
)

// The request and response examples of ../shared/api/000_3507a69df3cf31de.txt, literally.
const (
	tcDocCreate = `{
  "name" : "newMetric",
  "dataType" : "Sum",
  "interval" : "Daily",
  "keyedValues" : false,
  "description" : "Testing API Updates"
}`
	tcDocCreateResponse = `{
  "status": "Success",
  "data": {
    "customMetricConfig": {
      "id": 1234567,
      "name": "newMetric",
      "dataType": "Sum",
      "interval": "Daily",
      "keyedValues": false,
      "description": "Testing API Updates"
    }
  }
}`
	tcDocListResponse = `{
  "status": "Success",
  "data": {
    "resultCount": 2,
    "customMetricConfig": [
      {
        "id": 7,
        "name": "playbookRuns",
        "dataType": "Sum",
        "interval": "Hourly",
        "keyedValues": true,
        "description": "Monitor playbook runs."
      },
      {
        "id": 11,
        "name": "tasksCompleted",
        "dataType": "Sum",
        "interval": "Daily",
        "keyedValues": false,
        "description": "Track the number of tasks closed."
      }
    ]
  }
}`
	tcDocKeyedData = `{
  "name": "app1",
  "value": "1"
}`
	tcDocNonKeyedData = `{
  "value": "2",
  "date": "2018-01-19T14:44:00Z"
}`
	tcDocReturnValueData = `{
  "value": "2"
}`
	tcDocReturnValueResponse = `{
  "value": 2.0,
  "date": "2017-07-13T00:00:00Z"
}`
)

// withoutIDs removes "id" members, which the server assigns.
func withoutIDs(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			if k != "id" {
				out[k] = withoutIDs(e)
			}
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = withoutIDs(e)
		}
		return out
	}
	return v
}

func decode(t *testing.T, s string) map[string]any {
	return response{body: []byte(s)}.json(t)
}

// createDocMetrics creates the two metrics of the document's list example.
func createDocMetrics(t *testing.T, ts *testServer, header ...string) {
	for _, m := range decode(t, tcDocListResponse)["data"].(map[string]any)["customMetricConfig"].([]any) {
		def := m.(map[string]any)
		body := `{"name":"` + def["name"].(string) + `","dataType":"` + def["dataType"].(string) + `","interval":"` + def["interval"].(string) +
			`","keyedValues":` + strconv.FormatBool(def["keyedValues"].(bool)) + `,"description":"` + def["description"].(string) + `"}`
		resp := ts.do(http.MethodPost, "/api/v2/customMetrics", body, header...)
		require.Equal(t, http.StatusCreated, resp.status, string(resp.body))
	}
}

func TestThreatConnectDocumentExamples(t *testing.T) {
	ts := startReceiver(t, nil, nil)

	// Creating a Custom Metric: the document's body gives the document's answer (but for the id).
	resp := ts.do(http.MethodPost, "/api/v2/customMetrics", tcDocCreate)
	require.Equal(t, http.StatusCreated, resp.status, string(resp.body))
	assert.Equal(t, "application/json", resp.header.Get("Content-Type"))
	got := resp.json(t)
	assert.Equal(t, withoutIDs(decode(t, tcDocCreateResponse)), withoutIDs(got))
	newID := int64(got["data"].(map[string]any)["customMetricConfig"].(map[string]any)["id"].(float64))
	assert.Positive(t, newID)

	// Retrieving: the list example, after creating its two metrics.
	resp = ts.do(http.MethodDelete, "/api/v2/customMetrics/newMetric", "")
	require.Equal(t, http.StatusOK, resp.status, string(resp.body))
	createDocMetrics(t, ts)
	resp = ts.do(http.MethodGet, "/api/v2/customMetrics/", "") // with the document's trailing slash
	require.Equal(t, http.StatusOK, resp.status)
	assert.Equal(t, withoutIDs(decode(t, tcDocListResponse)), withoutIDs(resp.json(t)))
	resp = ts.do(http.MethodGet, "/api/v2/customMetrics", "")
	require.Equal(t, http.StatusOK, resp.status)
	list := resp.json(t)["data"].(map[string]any)["customMetricConfig"].([]any)

	// A specific metric by name, and by id.
	byName := ts.do(http.MethodGet, "/api/v2/customMetrics/playbookRuns", "")
	require.Equal(t, http.StatusOK, byName.status)
	id := int64(list[0].(map[string]any)["id"].(float64))
	byID := ts.do(http.MethodGet, "/api/v2/customMetrics/"+strconv.FormatInt(id, 10), "")
	require.Equal(t, http.StatusOK, byID.status)
	assert.JSONEq(t, string(byName.body), string(byID.body))
	assert.Equal(t, "playbookRuns", byName.json(t)["data"].(map[string]any)["customMetricConfig"].(map[string]any)["name"])

	// Content in a keyed metric.
	before := time.Now()
	resp = ts.do(http.MethodPost, "/api/v2/customMetrics/playbookRuns/data", tcDocKeyedData)
	require.Equal(t, http.StatusNoContent, resp.status, string(resp.body))
	assert.Empty(t, resp.body)
	// Content in a non-keyed metric, with the document's date.
	resp = ts.do(http.MethodPost, "/api/v2/customMetrics/tasksCompleted/data", tcDocNonKeyedData)
	require.Equal(t, http.StatusNoContent, resp.status, string(resp.body))

	pts := ts.points()
	require.Len(t, pts, 2)
	keyed := pts[0]
	assert.Equal(t, "playbookRuns", keyed.metric.Name())
	assert.Equal(t, pmetric.MetricTypeSum, keyed.metric.Type())
	assert.Equal(t, pmetric.AggregationTemporalityDelta, keyed.metric.Sum().AggregationTemporality())
	assert.Equal(t, 1.0, keyed.dp.DoubleValue())
	assert.Equal(t, map[string]any{otelmap.AttrKey: "app1"}, keyed.dp.Attributes().AsRaw())
	assert.Equal(t, map[string]any{otelmap.MetaAggregation: "sum", otelmap.MetaInterval: "hour", otelmap.MetaKeyed: true}, keyed.metric.Metadata().AsRaw())
	assert.Equal(t, map[string]any{otelmap.AttrAPI: "threatconnect"}, keyed.resource)
	assert.WithinRange(t, keyed.dp.Timestamp().AsTime(), before.Add(-time.Second), time.Now().Add(time.Second), "no date: arrival time")

	nonKeyed := pts[1]
	assert.Equal(t, "tasksCompleted", nonKeyed.metric.Name())
	assert.Equal(t, 2.0, nonKeyed.dp.DoubleValue())
	assert.Equal(t, 0, nonKeyed.dp.Attributes().Len())
	assert.Equal(t, time.Date(2018, 1, 19, 14, 44, 0, 0, time.UTC), nonKeyed.dp.Timestamp().AsTime())
	assert.Equal(t, "day", nonKeyed.metric.Metadata().AsRaw()[otelmap.MetaInterval])

	// Deleting by id.
	resp = ts.do(http.MethodDelete, "/api/v2/customMetrics/"+strconv.FormatInt(id, 10), "")
	require.Equal(t, http.StatusOK, resp.status)
	assert.Equal(t, http.StatusNotFound, ts.do(http.MethodGet, "/api/v2/customMetrics/playbookRuns", "").status)
}

func TestThreatConnectReturnValue(t *testing.T) {
	ts := startWithAggregate(t, nil, nil)
	now := time.Date(2017, 7, 13, 9, 30, 0, 0, time.UTC)
	tca := threatConnectOf(t, ts)
	tca.now = func() time.Time { return now }
	createDocMetrics(t, ts)

	// The document's example: the answer is the window's figure, dated at the window's start.
	resp := ts.do(http.MethodPost, "/api/v2/customMetrics/tasksCompleted/data?returnValue=true", tcDocReturnValueData)
	require.Equal(t, http.StatusOK, resp.status, string(resp.body))
	assert.JSONEq(t, tcDocReturnValueResponse, string(resp.body))

	// A second value in the same (daily) window adds up; one without returnValue counts too.
	require.Equal(t, http.StatusNoContent, ts.do(http.MethodPost, "/api/v2/customMetrics/tasksCompleted/data", `{"value": 3}`).status)
	resp = ts.do(http.MethodPost, "/api/v2/customMetrics/tasksCompleted/data?returnValue=true", `{"value":"2"}`)
	assert.JSONEq(t, `{"value": 7, "date": "2017-07-13T00:00:00Z"}`, string(resp.body))

	// A back-dated value lands in its own, long-closed window.
	resp = ts.do(http.MethodPost, "/api/v2/customMetrics/tasksCompleted/data?returnValue=true", `{"value":"5","date":"2016-02-29T23:59:59Z"}`)
	assert.JSONEq(t, `{"value": 5, "date": "2016-02-29T00:00:00Z"}`, string(resp.body))

	// Keyed: one figure per key, in hourly windows.
	resp = ts.do(http.MethodPost, "/api/v2/customMetrics/playbookRuns/data?returnValue=true", `{"name":"app1","value":"1"}`)
	assert.JSONEq(t, `{"value": 1, "date": "2017-07-13T09:00:00Z"}`, string(resp.body))
	resp = ts.do(http.MethodPost, "/api/v2/customMetrics/playbookRuns/data?returnValue=true", `{"name":"app2","value":"4"}`)
	assert.JSONEq(t, `{"value": 4, "date": "2017-07-13T09:00:00Z"}`, string(resp.body))
	resp = ts.do(http.MethodPost, "/api/v2/customMetrics/playbookRuns/data?returnValue=true", `{"name":"app1","value":"1"}`)
	assert.JSONEq(t, `{"value": 2, "date": "2017-07-13T09:00:00Z"}`, string(resp.body))
}

func TestThreatConnectReturnValuePerDataType(t *testing.T) {
	values := []struct{ value, weight, date string }{
		{"4", "", "2024-02-29T10:05:00Z"},
		{"10", "3", "2024-02-29T10:01:00Z"}, // earliest by its own date, though not first to arrive
		{"1", "1", "2024-02-29T10:59:59Z"},  // latest
		{"7", "", "2024-02-29T10:30:00Z"},
	}
	want := map[string]float64{
		"Sum": 22, "Count": 4, "Min": 1, "Max": 10, "First": 10, "Last": 1,
		"Average": (4*1 + 10*3 + 1*1 + 7*1) / 6.0,
	}
	ts := startWithAggregate(t, nil, nil)
	for dt, expected := range want {
		resp := ts.do(http.MethodPost, "/api/v2/customMetrics", `{"name":"m`+dt+`","dataType":"`+dt+`","interval":"Hourly","keyedValues":false}`)
		require.Equal(t, http.StatusCreated, resp.status, string(resp.body))
		var last response
		for _, v := range values {
			body := `{"value":"` + v.value + `","date":"` + v.date + `"`
			if v.weight != "" {
				body += `,"weight":"` + v.weight + `"`
			}
			last = ts.do(http.MethodPost, "/api/v2/customMetrics/m"+dt+"/data?returnValue=true", body+"}")
			require.Equal(t, http.StatusOK, last.status, string(last.body))
		}
		got := last.json(t)
		assert.InDelta(t, expected, got["value"], 1e-9, dt)
		assert.Equal(t, "2024-02-29T10:00:00Z", got["date"], dt)
	}
}

func TestThreatConnectErrors(t *testing.T) {
	ts := startReceiver(t, func(c *Config) { c.ServerConfig.MaxRequestBodySize = 256 }, nil)
	createDocMetrics(t, ts)
	tests := []struct {
		name, method, path, body string
		status                   int
		message                  string
	}{
		{"malformed JSON", http.MethodPost, "/api/v2/customMetrics/tasksCompleted/data", `{"value":`, 400, "invalid JSON body"},
		{"value not a number", http.MethodPost, "/api/v2/customMetrics/tasksCompleted/data", `{"value":"two"}`, 400, "invalid value"},
		{"value missing", http.MethodPost, "/api/v2/customMetrics/tasksCompleted/data", `{"date":"2018-01-19T14:44:00Z"}`, 400, "value is required"},
		{"value wrong type", http.MethodPost, "/api/v2/customMetrics/tasksCompleted/data", `{"value":true}`, 400, "invalid value"},
		{"value not finite", http.MethodPost, "/api/v2/customMetrics/tasksCompleted/data", `{"value":"NaN"}`, 400, "not a decimal number"},
		{"value beyond float64", http.MethodPost, "/api/v2/customMetrics/tasksCompleted/data", `{"value":1e309}`, 400, "not a decimal number"},
		{"value in hexadecimal", http.MethodPost, "/api/v2/customMetrics/tasksCompleted/data", `{"value":"0x1p4"}`, 400, "not a decimal number"},
		{"value with digit separators", http.MethodPost, "/api/v2/customMetrics/tasksCompleted/data", `{"value":"1_000"}`, 400, "not a decimal number"},
		{"value with spaces", http.MethodPost, "/api/v2/customMetrics/tasksCompleted/data", `{"value":" 1"}`, 400, "not a decimal number"},
		{"date 9999", http.MethodPost, "/api/v2/customMetrics/tasksCompleted/data", `{"value":"2","date":"9999-12-31T00:00:00Z"}`, 400, "out of range"},
		{"date 2300", http.MethodPost, "/api/v2/customMetrics/tasksCompleted/data", `{"value":"2","date":"2300-01-01"}`, 400, "out of range"},
		{"date year 1", http.MethodPost, "/api/v2/customMetrics/tasksCompleted/data", `{"value":"2","date":"0001-01-01T00:00:00Z"}`, 400, "out of range"},
		{"date 0001-06-01", http.MethodPost, "/api/v2/customMetrics/tasksCompleted/data", `{"value":"2","date":"0001-06-01"}`, 400, "out of range"},
		{"invalid date", http.MethodPost, "/api/v2/customMetrics/tasksCompleted/data", `{"value":"2","date":"19/01/2018"}`, 400, "invalid date"},
		{"negative weight", http.MethodPost, "/api/v2/customMetrics/tasksCompleted/data", `{"value":"2","weight":"-1"}`, 400, "invalid weight"},
		{"value × weight overflows", http.MethodPost, "/api/v2/customMetrics/tasksCompleted/data", `{"value":"1e300","weight":"1e300"}`, 400, "invalid weight"},
		{"unknown field", http.MethodPost, "/api/v2/customMetrics/tasksCompleted/data", `{"value":"2","vaule":"3"}`, 400, "unknown field"},
		{"keyed without name", http.MethodPost, "/api/v2/customMetrics/playbookRuns/data", `{"value":"1"}`, 400, "name is required"},
		{"name on non-keyed", http.MethodPost, "/api/v2/customMetrics/tasksCompleted/data", `{"name":"x","value":"1"}`, 400, "name is not allowed"},
		{"unknown metric", http.MethodPost, "/api/v2/customMetrics/nope/data", `{"value":"1"}`, 404, tc.MsgNotFound},
		{"unknown metric get", http.MethodGet, "/api/v2/customMetrics/nope", "", 404, tc.MsgNotFound},
		{"unknown id", http.MethodDelete, "/api/v2/customMetrics/999999", "", 404, tc.MsgNotFound},
		{"wrong method", http.MethodPut, "/api/v2/customMetrics/tasksCompleted", `{}`, 405, "not allowed"},
		{"wrong method data", http.MethodGet, "/api/v2/customMetrics/tasksCompleted/data", "", 405, "not allowed"},
		{"oversize", http.MethodPost, "/api/v2/customMetrics/tasksCompleted/data", `{"value":"1","date":"` + strings.Repeat("9", 300) + `"}`, 413, "too large"},
		{"duplicate", http.MethodPost, "/api/v2/customMetrics", `{"name":"tasksCompleted","dataType":"Sum","interval":"Daily"}`, 409, "already exists"},
		{"bad dataType", http.MethodPost, "/api/v2/customMetrics", `{"name":"x","dataType":"Median","interval":"Daily"}`, 400, "invalid dataType"},
		{"bad interval", http.MethodPost, "/api/v2/customMetrics", `{"name":"x","dataType":"Sum","interval":"Minutely"}`, 400, "invalid interval"},
		{"numeric name", http.MethodPost, "/api/v2/customMetrics", `{"name":"42","dataType":"Sum","interval":"Daily"}`, 400, "must not be a number"},
		{"no name", http.MethodPost, "/api/v2/customMetrics", `{"dataType":"Sum","interval":"Daily"}`, 400, "name is required"},
		{"bad paging", http.MethodGet, "/api/v2/customMetrics?resultLimit=501", "", 400, "maximum value for resultLimit is 500"},
		{"bad returnValue", http.MethodPost, "/api/v2/customMetrics/tasksCompleted/data?returnValue=perhaps", `{"value":"1"}`, 400, "invalid returnValue"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := ts.do(tt.method, tt.path, tt.body)
			require.Equal(t, tt.status, resp.status, string(resp.body))
			body := resp.json(t)
			assert.Equal(t, "Failure", body["status"])
			assert.Contains(t, body["message"], tt.message)
			if tt.status == http.StatusMethodNotAllowed {
				assert.NotEmpty(t, resp.header.Get("Allow"))
			}
		})
	}
	assert.Empty(t, ts.points(), "no bad request may produce a value")
	list := ts.do(http.MethodGet, "/api/v2/customMetrics", "").json(t)
	assert.EqualValues(t, 2, list["data"].(map[string]any)["resultCount"], "no bad request may create a metric")
}

func TestThreatConnectBackpressure(t *testing.T) {
	ts := startWithAggregate(t, nil, nil)
	aggregate := ts.rcv.next
	ts.rcv.next = consumertest.NewErr(errors.New("data refused due to high memory usage"))
	createDocMetrics(t, ts)
	resp := ts.do(http.MethodPost, "/api/v2/customMetrics/tasksCompleted/data?returnValue=true", `{"value":"2","date":"2018-01-19T14:44:00Z"}`)
	require.Equal(t, http.StatusServiceUnavailable, resp.status)
	assert.Equal(t, "1", resp.header.Get("Retry-After"))
	assert.Equal(t, "Failure", resp.json(t)["status"])

	// The refused value was not counted: the window starts from zero once the pipeline accepts again.
	ts.rcv.next = aggregate
	resp = ts.do(http.MethodPost, "/api/v2/customMetrics/tasksCompleted/data?returnValue=true", `{"value":"3","date":"2018-01-19T14:44:00Z"}`)
	require.Equal(t, http.StatusOK, resp.status)
	assert.JSONEq(t, `{"value":3,"date":"2018-01-19T00:00:00Z"}`, string(resp.body))

	// A permanent refusal is the client's problem: 400, not retryable.
	ts.rcv.next = consumertest.NewErr(consumererror.NewPermanent(errors.New("bad data")))
	resp = ts.do(http.MethodPost, "/api/v2/customMetrics/tasksCompleted/data", `{"value":"3"}`)
	require.Equal(t, http.StatusBadRequest, resp.status)
	assert.Empty(t, resp.header.Get("Retry-After"))
}

func TestThreatConnectConcurrentCreateHasOneWinner(t *testing.T) {
	ts := startReceiver(t, nil, nil)
	const n = 16
	var wg sync.WaitGroup
	statuses := make([]int, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i] = ts.do(http.MethodPost, "/api/v2/customMetrics", `{"name":"race","dataType":"Sum","interval":"Daily"}`).status
		}()
	}
	wg.Wait()
	count := map[int]int{}
	for _, s := range statuses {
		count[s]++
	}
	assert.Equal(t, map[int]int{http.StatusCreated: 1, http.StatusConflict: n - 1}, count)
}

func tcAuthConfig(c *Config) {
	c.ThreatConnect.Tokens = []ThreatConnectToken{
		{Token: "tok-a", Access: Access{Tenant: "org-a"}},
		{Token: "tok-ro", Access: Access{Tenant: "org-a", ReadOnly: true}},
		{Token: "tok-b", Access: Access{Tenant: "org-b"}},
	}
	c.ThreatConnect.HMACKeys = []ThreatConnectHMACKey{{AccessID: "12345678901234567890", SecretKey: configopaque.String("s3cr3t"), Access: Access{Tenant: "org-a"}}}
}

func TestThreatConnectTokenAuthAndTenants(t *testing.T) {
	ts := startReceiver(t, tcAuthConfig, nil)
	createDocMetrics(t, ts, "Authorization", "TC-Token tok-a")

	for _, h := range []string{"", "TC-Token wrong", "Bearer tok-a", "TC-Token ", "TC 1:"} {
		resp := ts.do(http.MethodGet, "/api/v2/customMetrics", "", "Authorization", h)
		require.Equal(t, http.StatusUnauthorized, resp.status, "header %q", h)
		assert.Equal(t, "Failure", resp.json(t)["status"])
	}
	// A read-only token reads but may not write.
	assert.Equal(t, http.StatusOK, ts.do(http.MethodGet, "/api/v2/customMetrics/tasksCompleted", "", "Authorization", "TC-Token tok-ro").status)
	resp := ts.do(http.MethodPost, "/api/v2/customMetrics/tasksCompleted/data", `{"value":"1"}`, "Authorization", "TC-Token tok-ro")
	assert.Equal(t, http.StatusForbidden, resp.status)
	// Another tenant sees none of org-a's metrics.
	resp = ts.do(http.MethodGet, "/api/v2/customMetrics", "", "Authorization", "TC-Token tok-b")
	assert.EqualValues(t, 0, resp.json(t)["data"].(map[string]any)["resultCount"])
	assert.Equal(t, http.StatusNotFound, ts.do(http.MethodPost, "/api/v2/customMetrics/tasksCompleted/data", `{"value":"1"}`, "Authorization", "TC-Token tok-b").status)

	require.Equal(t, http.StatusNoContent, ts.do(http.MethodPost, "/api/v2/customMetrics/tasksCompleted/data", `{"value":"1"}`, "Authorization", "TC-Token tok-a").status)
	pts := ts.points()
	require.Len(t, pts, 1)
	assert.Equal(t, map[string]any{otelmap.AttrAPI: "threatconnect", otelmap.AttrTenant: "org-a"}, pts[0].resource)
}

// signedRequest signs the way ThreatConnect's SDKs do: HMAC-SHA256 over
// "<path?query>:<METHOD>:<timestamp>", Base64, "TC <accessId>:<signature>".
func signedRequest(ts *testServer, method, pathWithQuery, body, accessID, secret string, at time.Time) response {
	unix := at.Unix()
	sig := tc.Sign(secret, pathWithQuery, method, unix)
	return ts.do(method, pathWithQuery, body, "Authorization", tc.HMACAuthorization(accessID, sig), "Timestamp", strconv.FormatInt(unix, 10))
}

func TestThreatConnectHMACAuth(t *testing.T) {
	ts := startWithAggregate(t, tcAuthConfig, nil)
	createDocMetrics(t, ts, "Authorization", "TC-Token tok-a")
	const id, secret = "12345678901234567890", "s3cr3t"
	now := time.Now()

	resp := signedRequest(ts, http.MethodPost, "/api/v2/customMetrics/tasksCompleted/data?returnValue=true", `{"value":"2"}`, id, secret, now)
	require.Equal(t, http.StatusOK, resp.status, string(resp.body))
	assert.Equal(t, 2.0, resp.json(t)["value"])

	// Tampered: the signature covers the query, the method and the timestamp.
	sig := tc.Sign(secret, "/api/v2/customMetrics/tasksCompleted/data", http.MethodPost, now.Unix())
	resp = ts.do(http.MethodPost, "/api/v2/customMetrics/tasksCompleted/data?returnValue=true", `{"value":"2"}`,
		"Authorization", tc.HMACAuthorization(id, sig), "Timestamp", strconv.FormatInt(now.Unix(), 10))
	assert.Equal(t, http.StatusUnauthorized, resp.status, "query not covered by the signature")
	resp = ts.do(http.MethodGet, "/api/v2/customMetrics/tasksCompleted/data", "",
		"Authorization", tc.HMACAuthorization(id, sig), "Timestamp", strconv.FormatInt(now.Unix(), 10))
	assert.Contains(t, []int{http.StatusUnauthorized, http.StatusMethodNotAllowed}, resp.status)
	resp = ts.do(http.MethodGet, "/api/v2/customMetrics", "",
		"Authorization", tc.HMACAuthorization(id, tc.Sign(secret, "/api/v2/customMetrics", http.MethodGet, now.Unix())), "Timestamp", strconv.FormatInt(now.Unix()+1, 10))
	assert.Equal(t, http.StatusUnauthorized, resp.status, "timestamp not covered by the signature")
	assert.Equal(t, http.StatusUnauthorized, signedRequest(ts, http.MethodGet, "/api/v2/customMetrics", "", id, "wrong", now).status)
	assert.Equal(t, http.StatusUnauthorized, signedRequest(ts, http.MethodGet, "/api/v2/customMetrics", "", "unknown", secret, now).status)

	// ThreatConnect's five-minute clock skew.
	assert.Equal(t, http.StatusOK, signedRequest(ts, http.MethodGet, "/api/v2/customMetrics", "", id, secret, now.Add(-4*time.Minute)).status)
	assert.Equal(t, http.StatusUnauthorized, signedRequest(ts, http.MethodGet, "/api/v2/customMetrics", "", id, secret, now.Add(-6*time.Minute)).status)
	assert.Equal(t, http.StatusUnauthorized, signedRequest(ts, http.MethodGet, "/api/v2/customMetrics", "", id, secret, now.Add(6*time.Minute)).status)
}

func threatConnectOf(t *testing.T, ts *testServer) *threatConnectAPI {
	t.Helper()
	require.NotNil(t, ts.rcv.tc)
	return ts.rcv.tc
}

// TestThreatConnectReturnValueNeedsAnAggregateProcessor: with
// threatconnect::return_value, the receiver starts only in front of an
// aggregate processor that answers synchronously, and says how to fix it.
func TestThreatConnectReturnValueNeedsAnAggregateProcessor(t *testing.T) {
	returnValue := func(c *Config) { c.ThreatConnect.ReturnValue = true }
	batch := func(t *testing.T, mutate func(*batchprocessor.Config)) consumer.Metrics {
		f := batchprocessor.NewFactory()
		cfg := f.CreateDefaultConfig().(*batchprocessor.Config)
		mutate(cfg)
		p, err := f.CreateMetrics(context.Background(), processortest.NewNopSettings(f.Type()), cfg, startAggregate(t, consumertest.NewNop(), nil))
		require.NoError(t, err)
		require.NoError(t, p.Start(context.Background(), componenttest.NewNopHost()))
		t.Cleanup(func() { require.NoError(t, p.Shutdown(context.Background())) })
		return p
	}
	for name, next := range map[string]func(t *testing.T) consumer.Metrics{
		"a sink": func(*testing.T) consumer.Metrics { return new(consumertest.MetricsSink) },
		// The batch processor returns at once and drops an empty batch.
		"batch before aggregate":             func(t *testing.T) consumer.Metrics { return batch(t, func(*batchprocessor.Config) {}) },
		"batch (timeout 0) before aggregate": func(t *testing.T) consumer.Metrics { return batch(t, func(c *batchprocessor.Config) { c.Timeout = 0 }) },
	} {
		t.Run(name, func(t *testing.T) {
			r, _ := newTestReceiver(t, returnValue, next(t))
			err := r.Start(context.Background(), componenttest.NewNopHost())
			require.ErrorIs(t, err, errNoFigures)
			for _, says := range []string{"no aggregate processor answered", "every pipeline of this receiver", "batch processor", "set threatconnect::return_value to false"} {
				assert.ErrorContains(t, err, says)
			}
			require.NoError(t, r.Shutdown(context.Background()))
		})
	}

	t.Run("a refusing pipeline", func(t *testing.T) {
		refused := errors.New("data refused due to high memory usage")
		r, _ := newTestReceiver(t, returnValue, consumertest.NewErr(refused))
		err := r.Start(context.Background(), componenttest.NewNopHost())
		require.ErrorIs(t, err, refused)
		assert.ErrorContains(t, err, "threatconnect::return_value: the pipeline refused the start-up probe")
		require.NoError(t, r.Shutdown(context.Background()))
	})

	t.Run("memory_limiter before aggregate", func(t *testing.T) {
		f := memorylimiterprocessor.NewFactory()
		cfg := f.CreateDefaultConfig().(*memorylimiterprocessor.Config)
		cfg.CheckInterval = time.Second
		cfg.MemoryLimitMiB = 4096
		cfg.MemorySpikeLimitMiB = 1024
		sink := new(consumertest.MetricsSink)
		ml, err := f.CreateMetrics(context.Background(), processortest.NewNopSettings(f.Type()), cfg, startAggregate(t, sink, nil))
		require.NoError(t, err)
		require.NoError(t, ml.Start(context.Background(), componenttest.NewNopHost()))
		t.Cleanup(func() { require.NoError(t, ml.Shutdown(context.Background())) })
		ts := serve(t, returnValue, sink, ml)
		assert.Empty(t, sink.AllMetrics(), "the probe stops at the aggregate processor")
		createDocMetrics(t, ts)
		resp := ts.do(http.MethodPost, "/api/v2/customMetrics/tasksCompleted/data?returnValue=true", `{"value":"2","date":"2018-01-19T14:44:00Z"}`)
		require.Equal(t, http.StatusOK, resp.status, string(resp.body))
		assert.JSONEq(t, `{"value":2,"date":"2018-01-19T00:00:00Z"}`, string(resp.body))
	})

	t.Run("return_value false", func(t *testing.T) {
		ts := startReceiver(t, func(c *Config) { c.ThreatConnect.ReturnValue = false }, nil)
		assert.Empty(t, ts.sink.AllMetrics(), "no probe")
		createDocMetrics(t, ts)
		resp := ts.do(http.MethodPost, "/api/v2/customMetrics/tasksCompleted/data?returnValue=true", `{"value":"2"}`)
		require.Equal(t, http.StatusBadRequest, resp.status)
		assert.Equal(t, map[string]any{"status": "Failure", "message": errReturnValueOff}, resp.json(t))
		assert.Contains(t, errReturnValueOff, "returnValue is disabled on this collector")
		assert.Empty(t, ts.points(), "a refused request counts nothing")
		assert.Equal(t, http.StatusNoContent, ts.do(http.MethodPost, "/api/v2/customMetrics/tasksCompleted/data?returnValue=false", `{"value":"2"}`).status)
		assert.Equal(t, http.StatusNoContent, ts.do(http.MethodPost, "/api/v2/customMetrics/tasksCompleted/data", `{"value":"2"}`).status)
		assert.Len(t, ts.points(), 2)
	})
}

// TestThreatConnectMissingFigureIsAnError: a pipeline that stops reporting
// figures after the start-up check (here: the aggregate processor taken out
// at runtime) gets a 500 and an error in the log, never a made-up figure.
func TestThreatConnectMissingFigureIsAnError(t *testing.T) {
	ts := startWithAggregate(t, nil, nil)
	core, logs := observer.New(zap.ErrorLevel)
	ts.rcv.settings.Logger = zap.New(core)
	createDocMetrics(t, ts)
	ts.rcv.next = ts.sink

	resp := ts.do(http.MethodPost, "/api/v2/customMetrics/tasksCompleted/data?returnValue=true", `{"value":"2"}`)
	require.Equal(t, http.StatusInternalServerError, resp.status, string(resp.body))
	assert.Equal(t, map[string]any{"status": "Failure", "message": tc.MsgUnknownError}, resp.json(t))
	require.Len(t, ts.points(), 1, "the value itself was accepted")
	got := logs.FilterMessage("API request failed").All()
	require.Len(t, got, 1)
	assert.Contains(t, got[0].ContextMap()["error"], `no aggregate processor reported the window of "tasksCompleted"`)

	// Without returnValue nothing is asked: 204 as ever.
	assert.Equal(t, http.StatusNoContent, ts.do(http.MethodPost, "/api/v2/customMetrics/tasksCompleted/data", `{"value":"2"}`).status)
}
