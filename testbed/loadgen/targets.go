package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
)

// Epoch is the first day of the back-dated values: far enough in the past
// that every window is closed when its first value arrives, so the
// aggregate processor emits it at its next check.
var Epoch = time.Date(2020, 1, 6, 0, 0, 0, 0, time.UTC)

// Interval is a calendar interval the targets know how to align to.
type Interval string

// Intervals (ThreatConnect spelling).
const (
	Hourly Interval = "Hourly"
	Daily  Interval = "Daily"
)

func (iv Interval) start(t time.Time) time.Time {
	if iv == Hourly {
		return t.UTC().Truncate(time.Hour)
	}
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

// Spread describes which values and dates a target's pool holds.
type Spread struct {
	// Size is the number of distinct requests in the pool (default 4096).
	Size int
	// Metrics is the number of metrics (default 1), Keys the number of keys
	// per metric (0 = non-keyed).
	Metrics, Keys int
	// Days is the number of days the dates spread over from Epoch (default 3).
	Days int
	// Interval is the aggregation interval (default Daily).
	Interval Interval
	// Prefix is prepended to the metric names (default "tb_").
	Prefix string
	// From is the first day of the dates (default Epoch); From + Days must
	// lie in the past.
	From time.Time
}

func (s Spread) norm() Spread {
	if s.Size <= 0 {
		s.Size = 4096
	}
	if s.Metrics <= 0 {
		s.Metrics = 1
	}
	if s.Days <= 0 {
		s.Days = 3
	}
	if s.Interval == "" {
		s.Interval = Daily
	}
	if s.Prefix == "" {
		s.Prefix = "tb_"
	}
	if s.From.IsZero() {
		s.From = Epoch
	}
	return s
}

// point returns the i-th value of the spread: metric index, key, date, value.
// Keys cycle fastest so that a pool of Metrics*Keys requests covers every
// series once. Values are small integers, so sums are exact in float64.
func (s Spread) point(i int) (m int, key string, date time.Time, v float64) {
	m = i % s.Metrics
	j := i / s.Metrics
	if s.Keys > 0 {
		key = "k" + strconv.Itoa(j%s.Keys)
		j /= s.Keys
	}
	h := uint64(i)*2654435761 + 12345
	date = s.From.Add(time.Duration(h%uint64(s.Days*24*3600)) * time.Second)
	v = float64(1 + h%7)
	return m, key, date, v
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func expect2xx(ctx context.Context, c *http.Client, method, url, ctype string, body []byte, ok ...int) error {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", ctype)
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 == 2 {
		return nil
	}
	for _, s := range ok {
		if resp.StatusCode == s {
			return nil
		}
	}
	return fmt.Errorf("%s %s: %d %s", method, url, resp.StatusCode, bytes.TrimSpace(b))
}

// ThreatConnect returns a target posting single values to ThreatConnect's
// POST /api/v2/customMetrics/{name}/data, each with a back-dated date, to Sum
// metrics it creates in Setup (keyed when s.Keys > 0).
func ThreatConnect(s Spread) Target {
	s = s.norm()
	name := func(m int) string { return s.Prefix + "tc_" + strconv.Itoa(m) }
	p := &Pool{TargetName: "threatconnect", PerRequest: 1}
	for i := 0; i < s.Size; i++ {
		m, key, date, v := s.point(i)
		body := map[string]any{"value": v, "date": date.Format(time.RFC3339)}
		if key != "" {
			body["name"] = key
		}
		p.Reqs = append(p.Reqs, &Request{
			Method: http.MethodPost, Path: "/api/v2/customMetrics/" + name(m) + "/data",
			ContentType: "application/json", Body: mustJSON(body),
			Points: []Point{{Metric: name(m), Key: key, Window: s.Interval.start(date).UnixNano(), Value: v}},
		})
	}
	p.SetupFunc = func(ctx context.Context, c *http.Client, base string) error {
		for m := 0; m < s.Metrics; m++ {
			def := mustJSON(map[string]any{"name": name(m), "dataType": "Sum", "interval": string(s.Interval), "keyedValues": s.Keys > 0})
			if err := expect2xx(ctx, c, http.MethodPost, base+"/api/v2/customMetrics", "application/json", def, http.StatusConflict); err != nil {
				return err
			}
		}
		return nil
	}
	return p
}

// Sleuth returns a target registering impact values (POST
// /api/1/impact/{id}/register_impact) for impact sources 1..s.Metrics, which
// the collector's configuration must map to metrics SleuthMetric(id) (see
// SleuthMetric) with min_interval 0; the aggregate processor needs a sum rule
// for them (Sleuth values are gauges without aggregation metadata).
func Sleuth(s Spread) Target {
	s = s.norm()
	s.Keys = 0
	p := &Pool{TargetName: "sleuth", PerRequest: 1}
	for i := 0; i < s.Size; i++ {
		m, _, date, v := s.point(i)
		body := mustJSON(map[string]any{"value": v, "date": date.Format(time.RFC3339)})
		p.Reqs = append(p.Reqs, &Request{
			Method: http.MethodPost, Path: "/api/1/impact/" + strconv.Itoa(m+1) + "/register_impact",
			ContentType: "application/json", Body: body,
			Points: []Point{{Metric: SleuthMetric(s.Prefix, m+1), Window: s.Interval.start(date).UnixNano(), Value: v}},
		})
	}
	return p
}

// SleuthMetric is the metric name the scenario configuration gives impact source id.
func SleuthMetric(prefix string, id int) string { return prefix + "sleuth_" + strconv.Itoa(id) }

// BigFix returns a target posting deployment-metrics documents (POST
// /api/deploymentmetrics/{tag}) with one numeric leaf, "deployments". BigFix
// values carry their arrival time, so they are accounted as raw points
// (PointsWindow): the collector must pass them through unaggregated. The
// body's single member is key "0" (the receiver keys values by member).
func BigFix(s Spread) Target {
	s = s.norm()
	p := &Pool{TargetName: "bigfix", PerRequest: 1}
	for i := 0; i < s.Size; i++ {
		m, _, _, v := s.point(i)
		tag := s.Prefix + "bf_" + strconv.Itoa(m)
		p.Reqs = append(p.Reqs, &Request{
			Method: http.MethodPost, Path: "/api/deploymentmetrics/" + tag,
			ContentType: "application/json", Body: mustJSON(map[string]any{"deployments": v}),
			Points: []Point{{Metric: tag + ".deployments", Key: "0", Window: PointsWindow, Value: v}},
		})
	}
	return p
}

// OTLPEncoding is the body encoding of OTLP/HTTP requests.
type OTLPEncoding string

// OTLP/HTTP encodings.
const (
	OTLPJSON  OTLPEncoding = "json"
	OTLPProto OTLPEncoding = "proto"
)

// OTLP returns a target posting OTLP/HTTP metrics (POST /v1/metrics), perReq
// delta Sum points per request with back-dated timestamps and an attribute
// "key" when s.Keys > 0. The aggregate processor needs a sum rule for them.
func OTLP(s Spread, enc OTLPEncoding, perReq int) Target {
	s = s.norm()
	perReq = max(perReq, 1)
	p := &Pool{TargetName: "otlp-" + string(enc), PerRequest: perReq}
	ctype := "application/json"
	if enc == OTLPProto {
		ctype = "application/x-protobuf"
	}
	for i := 0; i < s.Size; i++ {
		md := pmetric.NewMetrics()
		rm := md.ResourceMetrics().AppendEmpty()
		rm.Resource().Attributes().PutStr("service.name", "testbed")
		sm := rm.ScopeMetrics().AppendEmpty()
		sm.Scope().SetName("testbed")
		var pts []Point
		for j := 0; j < perReq; j++ {
			m, key, date, v := s.point(i*perReq + j)
			metric := s.Prefix + "otlp_" + strconv.Itoa(m)
			dp := appendDeltaSum(sm, metric, date, v)
			if key != "" {
				dp.Attributes().PutStr("key", key)
			}
			pts = append(pts, Point{Metric: metric, Key: key, Window: s.Interval.start(date).UnixNano(), Value: v})
		}
		req := pmetricotlp.NewExportRequestFromMetrics(md)
		var body []byte
		var err error
		if enc == OTLPProto {
			body, err = req.MarshalProto()
		} else {
			body, err = req.MarshalJSON()
		}
		if err != nil {
			panic(err)
		}
		p.Reqs = append(p.Reqs, &Request{Method: http.MethodPost, Path: "/v1/metrics", ContentType: ctype, Body: body, Points: pts})
	}
	return p
}

// appendDeltaSum appends a delta Sum metric with one point to sm.
func appendDeltaSum(sm pmetric.ScopeMetrics, name string, date time.Time, v float64) pmetric.NumberDataPoint {
	m := sm.Metrics().AppendEmpty()
	m.SetName(name)
	sum := m.SetEmptySum()
	sum.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
	dp := sum.DataPoints().AppendEmpty()
	dp.SetTimestamp(pcommon.NewTimestampFromTime(date))
	dp.SetDoubleValue(v)
	return dp
}

// Bare returns a target for the bare net/http baseline: a single-value
// ThreatConnect-sized body to any path, nothing to account.
func Bare() Target {
	return &Pool{TargetName: "bare-net/http", PerRequest: 1, Reqs: []*Request{{
		Method: http.MethodPost, Path: "/api/v2/customMetrics/tb_tc_0/data", ContentType: "application/json",
		Body: []byte(`{"value":3,"date":"2020-01-06T10:00:00Z"}`),
	}}}
}

// Malformed returns a target of bad requests for the three APIs, none of
// which may be acknowledged: broken JSON, wrong types, unknown fields,
// unknown metrics and impact sources, a keyed metric without its key.
// metric is an existing non-keyed ThreatConnect metric.
func Malformed(metric string) Target {
	tc := "/api/v2/customMetrics/" + metric + "/data"
	bodies := []struct{ path, body string }{
		{tc, `{"value":`},
		{tc, `{"value":"abc"}`},
		{tc, `{"value":1,"dat":"2020-01-06T00:00:00Z"}`},
		{tc, `{"value":1,"date":"yesterday"}`},
		{tc, `{"value":1,"name":"k1"}`},
		{tc, `[1,2,3]`},
		{tc, "\x00\xff\xfe garbage"},
		{"/api/v2/customMetrics/tb_no_such_metric/data", `{"value":1}`},
		{"/api/1/impact/1/register_impact", `{"value":"NaNx"}`},
		{"/api/1/impact/1/register_impact", `{"value":`},
		{"/api/1/impact/999999/register_impact", `{"value":1}`},
		{"/api/deploymentmetrics/tb_bf_0", `{"deployments":`},
		{"/api/deploymentmetrics/platform", `{"x":1}`},
	}
	p := &Pool{TargetName: "malformed"}
	for _, b := range bodies {
		p.Reqs = append(p.Reqs, &Request{Method: http.MethodPost, Path: b.path, ContentType: "application/json", Body: []byte(b.body), ExpectFail: true})
	}
	return p
}

// Oversize returns a target of ThreatConnect data bodies of n bytes (a valid
// JSON document padded with spaces), which a collector with a smaller
// max_request_body_size must refuse with 413.
func Oversize(metric string, n int) Target {
	body := append([]byte(`{"value":1,"date":"2020-01-06T00:00:00Z"`), bytes.Repeat([]byte(" "), max(0, n-41))...)
	body = append(body, '}')
	return &Pool{TargetName: "oversize", Reqs: []*Request{{
		Method: http.MethodPost, Path: "/api/v2/customMetrics/" + metric + "/data", ContentType: "application/json",
		Body: body, ExpectFail: true,
	}}}
}
