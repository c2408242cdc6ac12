package custommetricsexporter

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/exporterhelper"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/processor/processortest"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/custommetrics/bundle/exporter/custommetricsexporter/internal/metadata"
	"github.com/custommetrics/bundle/internal/collectortest"
	"github.com/custommetrics/bundle/internal/otelmap"
	tc "github.com/custommetrics/bundle/internal/wire/threatconnect"
	"github.com/custommetrics/bundle/processor/aggregateprocessor"
	"github.com/custommetrics/bundle/receiver/custommetricsreceiver"
)

const (
	tcAccessID  = "12345678901234567890"
	tcSecret    = "tc-secret"
	tcToken     = "tc-token"
	sleuthKey   = "sleuth-key"
	bigfixUser  = "deploy-bot"
	bigfixPass  = "bot-pass"
	bigfixAdmin = "admin"
	bigfixAdmPw = "admin-pass"
)

// peer is a second collector's custommetrics receiver on loopback, with
// credentials, in front of an aggregate processor (whose windows answer
// returnValue) that passes the accepted raw values on to sink.
type peer struct {
	base string
	sink *consumertest.MetricsSink
}

func startPeer(t *testing.T, mutate func(*custommetricsreceiver.Config)) *peer {
	t.Helper()
	f := custommetricsreceiver.NewFactory()
	cfg := f.CreateDefaultConfig().(*custommetricsreceiver.Config)
	cfg.ServerConfig.NetAddr.Endpoint = collectortest.FreeAddr(t)
	cfg.ThreatConnect.Tokens = []custommetricsreceiver.ThreatConnectToken{{Token: tcToken}}
	cfg.ThreatConnect.HMACKeys = []custommetricsreceiver.ThreatConnectHMACKey{{AccessID: tcAccessID, SecretKey: tcSecret}}
	cfg.Sleuth.APIKeys = []custommetricsreceiver.SleuthAPIKey{{Key: sleuthKey}}
	cfg.Sleuth.ImpactSources = []custommetricsreceiver.SleuthImpactSource{{ID: 42, Metric: "checkout.latency", Unit: "ms"}}
	cfg.Sleuth.MinInterval = 0
	cfg.BigFix.Users = []custommetricsreceiver.BigFixUser{
		{Username: bigfixUser, Password: bigfixPass, Role: custommetricsreceiver.RoleOperator},
		{Username: bigfixAdmin, Password: bigfixAdmPw, Role: custommetricsreceiver.RoleMasterOperator},
	}
	if mutate != nil {
		mutate(cfg)
	}
	require.NoError(t, cfg.Validate())
	p := &peer{base: "http://" + cfg.ServerConfig.NetAddr.Endpoint, sink: new(consumertest.MetricsSink)}
	af := aggregateprocessor.NewFactory()
	aggCfg := af.CreateDefaultConfig().(*aggregateprocessor.Config)
	aggCfg.KeepRaw = true
	aggCfg.CheckInterval = time.Hour // no window figure reaches sink during a test
	agg, err := af.CreateMetrics(context.Background(), processortest.NewNopSettings(af.Type()), aggCfg, p.sink)
	require.NoError(t, err)
	require.NoError(t, agg.Start(context.Background(), componenttest.NewNopHost()))
	t.Cleanup(func() { require.NoError(t, agg.Shutdown(context.Background())) })
	r, err := f.CreateMetrics(context.Background(), receivertest.NewNopSettings(f.Type()), cfg, agg)
	require.NoError(t, err)
	require.NoError(t, r.Start(context.Background(), componenttest.NewNopHost()))
	t.Cleanup(func() { require.NoError(t, r.Shutdown(context.Background())) })
	return p
}

// call sends a request to the peer; auth is the Authorization header value.
func (p *peer) call(t *testing.T, method, path, body, auth string) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, p.base+path, rd)
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, b
}

func (p *peer) createTC(t *testing.T, name, dataType string, keyed bool) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"name": name, "dataType": dataType, "interval": "Hourly", "keyedValues": keyed})
	status, b := p.call(t, http.MethodPost, "/api/v2/customMetrics", string(body), tc.TokenScheme+tcToken)
	require.Equal(t, http.StatusCreated, status, "%s", b)
}

// figure asks the peer for a window's figure by posting a value that does
// not change it (value/weight/date chosen per dataType) with returnValue.
func (p *peer) figure(t *testing.T, metric string, body string) float64 {
	t.Helper()
	status, b := p.call(t, http.MethodPost, "/api/v2/customMetrics/"+metric+"/data?returnValue=true", body, tc.TokenScheme+tcToken)
	require.Equal(t, http.StatusOK, status, "%s", b)
	var rv tc.ReturnValue
	require.NoError(t, json.Unmarshal(b, &rv))
	return rv.Value
}

// newTestExporter creates and starts the exporter without a queue, so that
// ConsumeMetrics returns the outcome, with fast retries.
func newTestExporter(t *testing.T, mutate func(*Config)) exporter.Metrics {
	t.Helper()
	f := NewFactory()
	cfg := f.CreateDefaultConfig().(*Config)
	cfg.QueueConfig = configoptional.None[exporterhelper.QueueBatchConfig]()
	cfg.RetryConfig.InitialInterval = 10 * time.Millisecond
	cfg.RetryConfig.MaxInterval = 50 * time.Millisecond
	cfg.RetryConfig.MaxElapsedTime = 20 * time.Second
	mutate(cfg)
	require.NoError(t, cfg.Validate())
	exp, err := f.CreateMetrics(context.Background(), exportertest.NewNopSettings(metadata.Type), cfg)
	require.NoError(t, err)
	require.NoError(t, exp.Start(context.Background(), componenttest.NewNopHost()))
	t.Cleanup(func() { require.NoError(t, exp.Shutdown(context.Background())) })
	return exp
}

var hour0 = time.Date(2024, 1, 10, 0, 0, 0, 0, time.UTC)

// figureMetrics builds one window figure as the aggregate processor emits it.
func figureMetrics(name, agg string, start time.Time, value float64, attrs map[string]string) pmetric.Metrics {
	md := pmetric.NewMetrics()
	sm := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty()
	sm.Scope().SetName("github.com/custommetrics/bundle/processor/aggregateprocessor")
	m := sm.Metrics().AppendEmpty()
	m.SetName(name)
	m.Metadata().PutStr(otelmap.MetaAggregation, agg)
	m.Metadata().PutStr(otelmap.MetaInterval, "hour")
	var dp pmetric.NumberDataPoint
	if agg == "sum" || agg == "count" {
		s := m.SetEmptySum()
		s.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
		dp = s.DataPoints().AppendEmpty()
	} else {
		dp = m.SetEmptyGauge().DataPoints().AppendEmpty()
	}
	dp.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
	dp.SetTimestamp(pcommon.NewTimestampFromTime(start.Add(time.Hour)))
	dp.SetDoubleValue(value)
	for k, v := range attrs {
		dp.Attributes().PutStr(k, v)
	}
	return md
}

type raw struct {
	at     time.Time
	value  float64
	attrs  map[string]string
	weight float64
}

func rawMetrics(name string, points ...raw) pmetric.Metrics {
	md := pmetric.NewMetrics()
	m := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName(name)
	dps := m.SetEmptyGauge().DataPoints()
	for _, r := range points {
		dp := dps.AppendEmpty()
		dp.SetTimestamp(pcommon.NewTimestampFromTime(r.at))
		dp.SetDoubleValue(r.value)
		for k, v := range r.attrs {
			dp.Attributes().PutStr(k, v)
		}
		if r.weight != 0 {
			dp.Attributes().PutDouble(otelmap.AttrWeight, r.weight)
		}
	}
	return md
}

// sinkPoints lists the peer's accepted points of one metric as "key value time [weight]".
func sinkPoints(sink *consumertest.MetricsSink, name string) []string {
	var out []string
	for _, md := range sink.AllMetrics() {
		rms := md.ResourceMetrics()
		for i := 0; i < rms.Len(); i++ {
			sms := rms.At(i).ScopeMetrics()
			for j := 0; j < sms.Len(); j++ {
				ms := sms.At(j).Metrics()
				for k := 0; k < ms.Len(); k++ {
					m := ms.At(k)
					if m.Name() != name {
						continue
					}
					var dps pmetric.NumberDataPointSlice
					if m.Type() == pmetric.MetricTypeSum {
						dps = m.Sum().DataPoints()
					} else {
						dps = m.Gauge().DataPoints()
					}
					for p := 0; p < dps.Len(); p++ {
						dp := dps.At(p)
						s := ""
						if v, ok := dp.Attributes().Get(otelmap.AttrKey); ok {
							s = v.Str() + " "
						}
						s += jsonNum(dp.DoubleValue()) + " " + dp.Timestamp().AsTime().UTC().Format(time.RFC3339)
						if v, ok := dp.Attributes().Get(otelmap.AttrWeight); ok {
							s += " w=" + jsonNum(v.Double())
						}
						out = append(out, s)
					}
				}
			}
		}
	}
	return out
}

func jsonNum(f float64) string { b, _ := json.Marshal(f); return string(b) }

func tcExporterConfig(p *peer, hmac bool, metrics ...ThreatConnectMetric) func(*Config) {
	return func(c *Config) {
		c.ThreatConnect = &ThreatConnectConfig{Endpoint: p.base, Metrics: metrics}
		if hmac {
			c.ThreatConnect.AccessID, c.ThreatConnect.SecretKey = tcAccessID, tcSecret
		} else {
			c.ThreatConnect.Token = tcToken
		}
	}
}

// Raw values reach ThreatConnect as values with their own date, key and weight.
func TestThreatConnectRawRoundTrip(t *testing.T) {
	p := startPeer(t, nil)
	p.createTC(t, "latency", "Average", true)
	exp := newTestExporter(t, tcExporterConfig(p, true,
		ThreatConnectMetric{Match: Match{Name: "http.latency"}, Metric: "latency", KeyAttribute: "region"}))

	md := rawMetrics("http.latency",
		raw{at: hour0.Add(time.Minute), value: 1.5, attrs: map[string]string{"region": "eu"}},
		raw{at: hour0.Add(2 * time.Minute), value: 2.5, attrs: map[string]string{"region": "eu"}, weight: 3},
		raw{at: hour0.Add(3 * time.Minute), value: -4, attrs: map[string]string{"region": "us"}})
	require.NoError(t, exp.ConsumeMetrics(context.Background(), md))

	assert.Equal(t, []string{
		"eu 1.5 2024-01-10T00:01:00Z",
		"eu 2.5 2024-01-10T00:02:00Z w=3",
		"us -4 2024-01-10T00:03:00Z",
	}, sinkPoints(p.sink, "latency"))
	// The peer's figure is ThreatConnect's weighted average: (1.5 + 2.5·3) / 4.
	assert.Equal(t, 2.25, p.figure(t, "latency", `{"name":"eu","value":0,"weight":0,"date":"2024-01-10T00:30:00Z"}`))
}

// Window figures and their restatements leave the vendor's figure equal to
// ours for every dataType that can hold a figure, also after an exporter
// restart (state lost).
func TestThreatConnectFigureRoundTrip(t *testing.T) {
	p := startPeer(t, nil)
	for _, m := range []struct{ name, typ string }{
		{"orders", "Sum"}, {"peak", "Max"}, {"low", "Min"}, {"latest", "Last"}, {"earliest", "First"}, {"mean", "Average"},
	} {
		p.createTC(t, m.name, m.typ, m.name == "orders")
	}
	// The OpenTelemetry name is the ThreatConnect name, except for orders.count.
	mapping := []ThreatConnectMetric{{Match: Match{Name: "orders.count"}, Metric: "orders"}}
	for _, n := range []string{"peak", "low", "latest", "earliest", "mean"} {
		mapping = append(mapping, ThreatConnectMetric{Match: Match{Name: n}})
	}
	key := map[string]string{otelmap.AttrKey: "eu"}
	probe := map[string]string{
		"orders":   `{"name":"eu","value":0,"date":"2024-01-10T00:10:00Z"}`,
		"peak":     `{"value":-1e300,"date":"2024-01-10T00:10:00Z"}`,
		"low":      `{"value":1e300,"date":"2024-01-10T00:10:00Z"}`,
		"latest":   `{"value":-1,"date":"2024-01-10T00:00:00Z"}`,
		"earliest": `{"value":-1,"date":"2024-01-10T00:59:59Z"}`,
		"mean":     `{"value":0,"weight":0,"date":"2024-01-10T00:10:00Z"}`,
	}
	emissions := map[string][]float64{
		"orders.count": {10, 12.5, 12.5, 11}, // restatements, one unchanged re-emission, a decrease
		"peak":         {7, 9, 9},
		"low":          {7, 3},
		"latest":       {3, 4, 8},
		"earliest":     {5, 2, 1},
		"mean":         {4, 6, 5.5},
	}
	tcName := func(n string) string {
		if n == "orders.count" {
			return "orders"
		}
		return n
	}
	agg := map[string]string{"orders.count": "sum", "peak": "max", "low": "min", "latest": "last", "earliest": "first", "mean": "average"}

	exp := newTestExporter(t, tcExporterConfig(p, true, mapping...))
	for name, figs := range emissions {
		for _, f := range figs {
			attrs := map[string]string(nil)
			if name == "orders.count" {
				attrs = key
			}
			require.NoError(t, exp.ConsumeMetrics(context.Background(), figureMetrics(name, agg[name], hour0, f, attrs)))
		}
	}
	// A restarted exporter (no state) restates Sum and Last exactly.
	exp2 := newTestExporter(t, tcExporterConfig(p, false, mapping...))
	require.NoError(t, exp2.ConsumeMetrics(context.Background(), figureMetrics("orders.count", "sum", hour0, 20, key)))
	emissions["orders.count"] = append(emissions["orders.count"], 20)
	require.NoError(t, exp2.ConsumeMetrics(context.Background(), figureMetrics("latest", "last", hour0, 11, nil)))
	emissions["latest"] = append(emissions["latest"], 11)

	for name, figs := range emissions {
		want := figs[len(figs)-1]
		assert.Equal(t, want, p.figure(t, tcName(name), probe[tcName(name)]), "figure of %s", name)
	}
	// Sum forwards differences: 10, +2.5, (unchanged: nothing), -1.5, then after
	// the restart a 0 probe and +9.
	var sent []float64
	for _, s := range sinkPoints(p.sink, "orders") {
		var v float64
		require.NoError(t, json.Unmarshal([]byte(strings.Fields(s)[1]), &v))
		sent = append(sent, v)
	}
	assert.Equal(t, []float64{0, 10, 2.5, -1.5, 0, 9, 0}, sent) // probes at 0 included (last: the test's own probe)
}

// A window figure of another interval, or for a Count metric, is refused permanently.
func TestThreatConnectFigureRefusals(t *testing.T) {
	p := startPeer(t, nil)
	p.createTC(t, "hits", "Count", false)
	p.createTC(t, "daily", "Sum", false)
	exp := newTestExporter(t, tcExporterConfig(p, false,
		ThreatConnectMetric{Match: Match{Name: "hits"}}, ThreatConnectMetric{Match: Match{Name: "daily"}},
		ThreatConnectMetric{Match: Match{Name: "missing"}}))
	md := figureMetrics("hits", "count", hour0, 3, nil)
	err := exp.ConsumeMetrics(context.Background(), md)
	require.True(t, consumererror.IsPermanent(err), "%v", err)
	assert.Contains(t, err.Error(), "Count metric")

	md = figureMetrics("daily", "sum", hour0, 3, nil)
	md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(0).Metadata().PutStr(otelmap.MetaInterval, "day")
	md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(0).Sum().DataPoints().At(0).SetTimestamp(pcommon.NewTimestampFromTime(hour0.Add(24 * time.Hour)))
	err = exp.ConsumeMetrics(context.Background(), md)
	require.True(t, consumererror.IsPermanent(err), "%v", err)
	assert.Contains(t, err.Error(), "interval is Hourly")

	err = exp.ConsumeMetrics(context.Background(), rawMetrics("missing", raw{at: hour0, value: 1}))
	require.True(t, consumererror.IsPermanent(err), "%v", err)
	assert.Contains(t, err.Error(), tc.MsgNotFound) // the vendor's own message
	assert.Empty(t, sinkPoints(p.sink, "hits"))
}

// Sleuth gets one value per impact source per batch: the newest.
func TestSleuthRoundTrip(t *testing.T) {
	p := startPeer(t, nil)
	exp := newTestExporter(t, func(c *Config) {
		c.Sleuth = &SleuthConfig{Endpoint: p.base, APIKey: sleuthKey, Impacts: []SleuthImpact{{Match: Match{Regexp: `deploy\..*`}, ImpactID: 42}}}
	})
	md := rawMetrics("deploy.latency", raw{at: hour0.Add(2 * time.Minute), value: 5.25}, raw{at: hour0.Add(time.Minute), value: 3})
	require.NoError(t, exp.ConsumeMetrics(context.Background(), md))
	// An older value than the one registered is not sent after it.
	require.NoError(t, exp.ConsumeMetrics(context.Background(), rawMetrics("deploy.latency", raw{at: hour0, value: 9})))
	require.NoError(t, exp.ConsumeMetrics(context.Background(), rawMetrics("deploy.errors", raw{at: hour0.Add(3 * time.Minute), value: 1})))
	assert.Equal(t, []string{"5.25 2024-01-10T00:02:00Z", "1 2024-01-10T00:03:00Z"}, sinkPoints(p.sink, "checkout.latency"))
}

// Sleuth's rate limit: the peer answers 429 with Retry-After; the error is a
// retryable throttle carrying the value.
func TestSleuthRateLimitIsRetryable(t *testing.T) {
	p := startPeer(t, func(c *custommetricsreceiver.Config) { c.Sleuth.MinInterval = 120 * time.Second })
	cfg := createDefaultConfig().(*Config)
	cfg.Sleuth = &SleuthConfig{Endpoint: p.base, APIKey: sleuthKey, Impacts: []SleuthImpact{{Match: Match{Name: "x"}, ImpactID: 42}}}
	e, err := newExporter(cfg, exportertest.NewNopSettings(metadata.Type))
	require.NoError(t, err)
	require.NoError(t, e.start(context.Background(), componenttest.NewNopHost()))
	defer func() { require.NoError(t, e.shutdown(context.Background())) }()
	require.NoError(t, e.push(context.Background(), rawMetrics("x", raw{at: hour0, value: 1})))
	err = e.push(context.Background(), rawMetrics("x", raw{at: hour0.Add(time.Minute), value: 2}))
	require.Error(t, err)
	assert.False(t, consumererror.IsPermanent(err))
	assert.Contains(t, err.Error(), "HTTP 429")
	var me consumererror.Metrics
	require.True(t, errors.As(err, &me))
	assert.Equal(t, 1, me.Data().DataPointCount())
}

// BigFix: the tag's document holds the newest value of every member, across batches.
func TestBigFixRoundTrip(t *testing.T) {
	p := startPeer(t, nil)
	exp := newTestExporter(t, func(c *Config) {
		c.BigFix = &BigFixConfig{Endpoint: p.base, Username: bigfixUser, Password: bigfixPass, Tags: []BigFixTag{
			{Match: Match{Name: "build.duration"}, Tag: "ci", Field: "duration"},
			{Match: Match{Name: "tests.failed"}, Tag: "ci", Field: "tests_failed", KeyAttribute: "suite"},
		}}
	})
	require.NoError(t, exp.ConsumeMetrics(context.Background(), rawMetrics("build.duration",
		raw{at: hour0.Add(time.Minute), value: 12.5}, raw{at: hour0, value: 99})))
	require.NoError(t, exp.ConsumeMetrics(context.Background(), rawMetrics("tests.failed",
		raw{at: hour0, value: 2, attrs: map[string]string{"suite": "unit"}}, raw{at: hour0, value: 1, attrs: map[string]string{"suite": "e2e"}})))

	status, b := p.call(t, http.MethodGet, "/api/deploymentmetrics/ci", "", basic(bigfixAdmin, bigfixAdmPw))
	require.Equal(t, http.StatusOK, status, "%s", b)
	var doc struct {
		Tag     string           `json:"tag"`
		Metrics []map[string]any `json:"metrics"`
	}
	require.NoError(t, json.Unmarshal(b, &doc))
	assert.Equal(t, "ci", doc.Tag)
	// BigFix keeps a non-array body as the only member of the metrics collection.
	assert.Equal(t, []map[string]any{{"duration": 12.5, "tests_failed": map[string]any{"unit": 2.0, "e2e": 1.0}}}, doc.Metrics)
	// The peer keys BigFix values by collection member: "0 <value> <date>".
	assert.Equal(t, []string{"12.5", "12.5"}, values(sinkPoints(p.sink, "ci.duration"), 1))
	assert.Equal(t, []string{"2"}, values(sinkPoints(p.sink, "ci.tests_failed.unit"), 1))
}

// values returns field i (0: the value of an unkeyed point, 1 of a keyed
// one) of each sinkPoints entry, sorted.
func values(points []string, i int) []string {
	var out []string
	for _, p := range points {
		out = append(out, strings.Fields(p)[i])
	}
	sort.Strings(out)
	return out
}

func basic(user, pass string) string {
	req, _ := http.NewRequest(http.MethodGet, "/", nil)
	req.SetBasicAuth(user, pass)
	return req.Header.Get("Authorization")
}

// Wrong credentials are permanent errors with the vendor's message, for every API.
func TestAuthFailuresArePermanent(t *testing.T) {
	p := startPeer(t, nil)
	p.createTC(t, "m", "Sum", false)
	cases := map[string]struct {
		cfg  func(*Config)
		name string
		msg  string
	}{
		"threatconnect token": {func(c *Config) {
			c.ThreatConnect = &ThreatConnectConfig{Endpoint: p.base, Token: "wrong", Metrics: []ThreatConnectMetric{{Match: Match{Name: "m"}}}}
		}, "m", "HTTP 401: Unauthorized"},
		"threatconnect hmac": {func(c *Config) {
			c.ThreatConnect = &ThreatConnectConfig{Endpoint: p.base, AccessID: tcAccessID, SecretKey: "wrong", Metrics: []ThreatConnectMetric{{Match: Match{Name: "m"}}}}
		}, "m", "HTTP 401: Signature data did not match expected result"},
		"sleuth": {func(c *Config) {
			c.Sleuth = &SleuthConfig{Endpoint: p.base, APIKey: "wrong", Impacts: []SleuthImpact{{Match: Match{Name: "m"}, ImpactID: 42}}}
		}, "m", "HTTP 401: Unauthorized"},
		"bigfix": {func(c *Config) {
			c.BigFix = &BigFixConfig{Endpoint: p.base, Username: bigfixUser, Password: "wrong", Tags: []BigFixTag{{Match: Match{Name: "m"}, Tag: "t"}}}
		}, "m", "HTTP 401: Unauthorized"},
	}
	for name, tt := range cases {
		t.Run(name, func(t *testing.T) {
			exp := newTestExporter(t, tt.cfg)
			start := time.Now()
			err := exp.ConsumeMetrics(context.Background(), rawMetrics(tt.name, raw{at: hour0, value: 1}))
			require.Error(t, err)
			assert.True(t, consumererror.IsPermanent(err), "%v", err)
			assert.Contains(t, err.Error(), tt.msg)
			assert.Less(t, time.Since(start), time.Second, "no retries")
		})
	}
	assert.Empty(t, sinkPoints(p.sink, "m"))
}

// flaky answers the first requests with the given statuses (and Retry-After),
// then 200.
type flaky struct {
	statuses   []int
	retryAfter string
	calls      atomic.Int32
	times      []time.Time
	bodies     []string
}

func (f *flaky) serve(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := int(f.calls.Add(1)) - 1
		b, _ := io.ReadAll(r.Body)
		f.times = append(f.times, time.Now())
		f.bodies = append(f.bodies, string(bytes.TrimSpace(b)))
		if n < len(f.statuses) {
			if f.retryAfter != "" {
				w.Header().Set("Retry-After", f.retryAfter)
			}
			http.Error(w, "slow down", f.statuses[n])
			return
		}
		_, _ = w.Write([]byte("Success"))
	}))
	t.Cleanup(srv.Close)
	return srv
}

// 429 with Retry-After is honoured: the retry waits that long although the
// configured back-off is 10 ms. Values already forwarded to another API in
// the same batch are not sent again with the retry.
func TestRetryAfterHonoured(t *testing.T) {
	p := startPeer(t, nil)
	p.createTC(t, "raw", "Sum", false)
	f := &flaky{statuses: []int{http.StatusTooManyRequests}, retryAfter: "1"}
	srv := f.serve(t)
	exp := newTestExporter(t, func(c *Config) {
		tcExporterConfig(p, false, ThreatConnectMetric{Match: Match{Name: "v"}, Metric: "raw"})(c)
		c.Sleuth = &SleuthConfig{Endpoint: srv.URL, APIKey: "k", Impacts: []SleuthImpact{{Match: Match{Name: "v"}, ImpactID: 7}}}
	})
	start := time.Now()
	require.NoError(t, exp.ConsumeMetrics(context.Background(), rawMetrics("v", raw{at: hour0, value: 4})))
	require.Equal(t, int32(2), f.calls.Load())
	gap := f.times[1].Sub(f.times[0])
	assert.GreaterOrEqual(t, gap, 990*time.Millisecond, "waited %v", gap)
	assert.Less(t, time.Since(start), 5*time.Second)
	assert.Equal(t, f.bodies[0], f.bodies[1])
	assert.JSONEq(t, `{"value":4,"date":"2024-01-10T00:00:00Z"}`, f.bodies[1])
	// ThreatConnect got the value once, not once per attempt.
	assert.Equal(t, []string{"4 2024-01-10T00:00:00Z"}, sinkPoints(p.sink, "raw"))
}

// 5xx is retried (without Retry-After, with the configured back-off).
func TestServerErrorIsRetried(t *testing.T) {
	f := &flaky{statuses: []int{http.StatusInternalServerError, http.StatusBadGateway}}
	srv := f.serve(t)
	exp := newTestExporter(t, func(c *Config) {
		c.BigFix = &BigFixConfig{Endpoint: srv.URL, Username: "u", Password: "p", Tags: []BigFixTag{{Match: Match{Name: "v"}, Tag: "t"}}}
	})
	require.NoError(t, exp.ConsumeMetrics(context.Background(), rawMetrics("v", raw{at: hour0, value: 4})))
	assert.Equal(t, int32(3), f.calls.Load())
	assert.JSONEq(t, `{"v":4}`, f.bodies[2])
}

func TestRetryAfterParsing(t *testing.T) {
	now := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	d, ok := retryAfter("120", now)
	assert.True(t, ok)
	assert.Equal(t, 120*time.Second, d)
	d, ok = retryAfter(now.Add(3*time.Second).Format(http.TimeFormat), now)
	assert.True(t, ok)
	assert.Equal(t, 3*time.Second, d)
	_, ok = retryAfter("soon", now)
	assert.False(t, ok)
}
