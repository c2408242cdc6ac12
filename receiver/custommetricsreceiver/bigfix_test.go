package custommetricsreceiver

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/custommetrics/bundle/internal/otelmap"
)

// The examples of ../shared/api/004_eb19efa8c4cd9830.txt, with "..." left out.
const bigFixDocCustomMetrics = `{"bla": "3"}`

func bigFixConfig(c *Config) {
	c.BigFix.Users = []BigFixUser{
		{Username: "master", Password: "mpw", Role: RoleMasterOperator},
		{Username: "op", Password: "opw", Role: RoleOperator},
	}
}

func TestBigFixDocumentExamples(t *testing.T) {
	ts := startReceiver(t, bigFixConfig, nil)
	now := time.Date(2018, 1, 12, 12, 0, 0, 0, time.UTC)
	ts.rcv.bigfix.now = func() time.Time { return now }
	master := []string{"Authorization", basic("master", "mpw")}

	// POST creates the document tagged "custom"; its metrics field holds the body.
	resp := ts.do(http.MethodPost, "/api/deploymentmetrics/custom", bigFixDocCustomMetrics, "Authorization", basic("op", "opw"))
	require.Equal(t, http.StatusOK, resp.status, string(resp.body))
	want := `{"tag": "custom", "metrics": [{"bla": "3"}], "lastChanged": "12 Jan 2018 12:00"}`
	assert.JSONEq(t, want, string(resp.body))

	// GET /api/deploymentmetrics/custom gives the document's example object.
	resp = ts.do(http.MethodGet, "/api/deploymentmetrics/custom", "", master...)
	require.Equal(t, http.StatusOK, resp.status)
	assert.JSONEq(t, want, string(resp.body))

	// GET /api/deploymentmetrics gives the array, platform first.
	resp = ts.do(http.MethodGet, "/api/deploymentmetrics", "", master...)
	require.Equal(t, http.StatusOK, resp.status)
	var docs []map[string]any
	require.NoError(t, json.Unmarshal(resp.body, &docs))
	require.Len(t, docs, 2)
	assert.Equal(t, "platform", docs[0]["tag"])
	assert.Equal(t, "custom", docs[1]["tag"])
	assert.Equal(t, "12 Jan 2018 12:00", docs[0]["lastChanged"])

	// The numeric leaf "3" became a gauge point named from the tag and the path.
	pts := ts.points()
	require.Len(t, pts, 1)
	assert.Equal(t, "custom.bla", pts[0].metric.Name())
	assert.Equal(t, 3.0, pts[0].dp.DoubleValue())
	assert.Equal(t, map[string]any{otelmap.AttrAPI: "bigfix"}, pts[0].resource)

	// POST again updates the document.
	now = now.Add(time.Hour)
	resp = ts.do(http.MethodPost, "/api/deploymentmetrics/custom", `[{"bla": 4, "nested": {"x": [1, "two", 3.5]}, "flag": true}]`, "Authorization", basic("op", "opw"))
	require.Equal(t, http.StatusOK, resp.status, string(resp.body))
	assert.JSONEq(t, `{"tag":"custom","metrics":[{"bla":4,"nested":{"x":[1,"two",3.5]},"flag":true}],"lastChanged":"12 Jan 2018 13:00"}`, string(resp.body))
	names := map[string]float64{}
	for _, p := range ts.points()[1:] {
		names[p.metric.Name()] = p.dp.DoubleValue()
	}
	assert.Equal(t, map[string]float64{"custom.bla": 4, "custom.nested.x.0": 1, "custom.nested.x.2": 3.5}, names)
}

// TestBigFixNamesAreStable: a tag's metric names do not change when it gains
// members (a dashboard of "dup.bla" keeps working); the member index is the
// series key (custommetrics.key).
func TestBigFixNamesAreStable(t *testing.T) {
	ts := startReceiver(t, bigFixConfig, nil)
	master := []string{"Authorization", basic("master", "mpw")}
	require.Equal(t, http.StatusOK, ts.do(http.MethodPost, "/api/deploymentmetrics/dup", `{"bla": 1}`, master...).status)
	require.Equal(t, http.StatusOK, ts.do(http.MethodPost, "/api/deploymentmetrics/dup", `[{"bla": 2}, {"bla": 3}]`, master...).status)
	type named struct {
		name, key string
		v         float64
	}
	var got []named
	for _, p := range ts.points() {
		k, _ := p.dp.Attributes().Get(otelmap.AttrKey)
		got = append(got, named{p.metric.Name(), k.AsString(), p.dp.DoubleValue()})
	}
	assert.Equal(t, []named{{"dup.bla", "0", 1}, {"dup.bla", "0", 2}, {"dup.bla", "1", 3}}, got)
}

func TestBigFixPlatform(t *testing.T) {
	ts := startReceiver(t, bigFixConfig, nil)
	master := []string{"Authorization", basic("master", "mpw")}
	require.Equal(t, http.StatusOK, ts.do(http.MethodPost, "/api/deploymentmetrics/custom", `{"a":"1","b":"2"}`, master...).status)

	resp := ts.do(http.MethodPost, "/api/deploymentmetrics/platform", `{"number_of_endpoints": "5"}`, master...)
	assert.Equal(t, http.StatusForbidden, resp.status)
	assert.Contains(t, string(resp.body), "reserved")

	resp = ts.do(http.MethodGet, "/api/deploymentmetrics/platform", "", master...)
	require.Equal(t, http.StatusOK, resp.status)
	var doc struct {
		Tag     string              `json:"tag"`
		Metrics []map[string]string `json:"metrics"`
	}
	require.NoError(t, json.Unmarshal(resp.body, &doc))
	require.Len(t, doc.Metrics, 1)
	assert.Equal(t, "platform", doc.Tag)
	assert.Equal(t, "2", doc.Metrics[0]["values_accepted_bigfix"])
	assert.Equal(t, "1", doc.Metrics[0]["definitions_bigfix"])
	assert.Equal(t, "0", doc.Metrics[0]["values_refused_threatconnect"])
	assert.Contains(t, doc.Metrics[0], "uptime_seconds")
}

func TestBigFixAuthAndErrors(t *testing.T) {
	ts := startReceiver(t, bigFixConfig, nil)
	tests := []struct {
		name, method, path, body, auth string
		status                         int
	}{
		{"no credentials", http.MethodGet, "/api/deploymentmetrics", "", "", 401},
		{"wrong password", http.MethodGet, "/api/deploymentmetrics", "", basic("master", "x"), 401},
		{"operator may not read", http.MethodGet, "/api/deploymentmetrics", "", basic("op", "opw"), 403},
		{"operator may not read one", http.MethodGet, "/api/deploymentmetrics/custom", "", basic("op", "opw"), 403},
		{"unknown tag", http.MethodGet, "/api/deploymentmetrics/nope", "", basic("master", "mpw"), 404},
		{"not JSON", http.MethodPost, "/api/deploymentmetrics/custom", "<BES/>", basic("op", "opw"), 400},
		{"empty body", http.MethodPost, "/api/deploymentmetrics/custom", "", basic("op", "opw"), 400},
		{"wrong method", http.MethodDelete, "/api/deploymentmetrics/custom", "", basic("master", "mpw"), 405},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h []string
			if tt.auth != "" {
				h = []string{"Authorization", tt.auth}
			}
			resp := ts.do(tt.method, tt.path, tt.body, h...)
			require.Equal(t, tt.status, resp.status, string(resp.body))
			assert.Equal(t, "text/plain; charset=utf-8", resp.header.Get("Content-Type"))
			if tt.status == http.StatusUnauthorized {
				assert.Contains(t, resp.header.Get("WWW-Authenticate"), "Basic")
			}
		})
	}
	assert.Empty(t, ts.points())
	assert.Equal(t, http.StatusNotFound, ts.do(http.MethodGet, "/api/deploymentmetrics/custom", "", "Authorization", basic("master", "mpw")).status, "nothing stored")
}

func basic(user, pass string) string {
	req, _ := http.NewRequest(http.MethodGet, "/", nil)
	req.SetBasicAuth(user, pass)
	return req.Header.Get("Authorization")
}

// A post whose values the pipeline refuses puts the previous document back,
// unless another post of the tag was accepted meanwhile: then that post's
// document stands (it was acknowledged).
func TestBigFixRefusalUndoesOnlyItsOwnDocument(t *testing.T) {
	entered, release := make(chan struct{}, 1), make(chan struct{})
	// A pipeline that refuses the value 1 (as memory_limiter refuses under
	// pressure), after waiting for release, and accepts the others.
	next, err := consumer.NewMetrics(func(_ context.Context, md pmetric.Metrics) error {
		v := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(0).Gauge().DataPoints().At(0).DoubleValue()
		if v != 1 {
			return nil
		}
		entered <- struct{}{}
		<-release
		return errors.New("refused")
	})
	require.NoError(t, err)
	ts := startReceiver(t, bigFixConfig, next)
	op := []string{"Authorization", basic("op", "opw")}
	metricsOf := func(tag string) string {
		resp := ts.do(http.MethodGet, "/api/deploymentmetrics/"+tag, "", "Authorization", basic("master", "mpw"))
		if resp.status != http.StatusOK {
			return strconv.Itoa(resp.status)
		}
		var doc struct{ Metrics json.RawMessage }
		require.NoError(t, json.Unmarshal(resp.body, &doc))
		return string(doc.Metrics)
	}
	require.Equal(t, http.StatusOK, ts.do(http.MethodPost, "/api/deploymentmetrics/t", `{"x":0}`, op...).status)

	// Refused while another post was accepted: the accepted one stands.
	refused := make(chan int)
	go func() { refused <- ts.do(http.MethodPost, "/api/deploymentmetrics/t", `{"x":1}`, op...).status }()
	<-entered
	require.Equal(t, http.StatusOK, ts.do(http.MethodPost, "/api/deploymentmetrics/t", `{"x":2}`, op...).status)
	release <- struct{}{}
	assert.Equal(t, http.StatusServiceUnavailable, <-refused)
	assert.Equal(t, `[{"x":2}]`, metricsOf("t"))

	// Refused alone: the previous document is back.
	go func() { refused <- ts.do(http.MethodPost, "/api/deploymentmetrics/t", `{"x":1}`, op...).status }()
	<-entered
	release <- struct{}{}
	assert.Equal(t, http.StatusServiceUnavailable, <-refused)
	assert.Equal(t, `[{"x":2}]`, metricsOf("t"))

	// A refused first post of a tag leaves no document.
	go func() { refused <- ts.do(http.MethodPost, "/api/deploymentmetrics/new", `{"x":1}`, op...).status }()
	<-entered
	release <- struct{}{}
	assert.Equal(t, http.StatusServiceUnavailable, <-refused)
	assert.Equal(t, "404", metricsOf("new"))
}
