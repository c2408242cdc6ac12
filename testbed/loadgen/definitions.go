package loadgen

import (
	"context"
	"net/http"
	"strconv"

	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
)

// The two APIs that manage definitions rather than carry values: their
// targets create the definitions through the API itself in Setup, and send
// the values the way their users' systems do (LaunchDarkly: the server SDKs'
// analytics events; Embrace: OTLP points of the base metric from the apps).

// LaunchDarklySDKKey and LaunchDarklyProject are the SDK key and project the
// scenario configuration declares under launchdarkly::events::sdk_keys.
const (
	LaunchDarklySDKKey  = "sdk-testbed"
	LaunchDarklyProject = "tb"
)

// LaunchDarkly returns a target posting SDK analytics payloads (POST
// /launchdarkly/events/bulk, "Authorization: <sdk key>") of perReq custom
// events each, with back-dated creationDate and a metricValue, to numeric
// custom metrics (unitAggregationType sum) it creates through the metrics API
// in Setup. The receiver aggregates them in hour windows (events::interval
// default), so they are accounted as windows of the metric key.
func LaunchDarkly(s Spread, perReq int) Target {
	s = s.norm()
	s.Keys = 0
	s.Interval = Hourly
	perReq = max(perReq, 1)
	key := func(m int) string { return s.Prefix + "ld_" + strconv.Itoa(m) }
	eventKey := func(m int) string { return s.Prefix + "ld_event_" + strconv.Itoa(m) }
	p := &Pool{TargetName: "launchdarkly-sdk", PerRequest: perReq}
	hdr := http.Header{"Authorization": {LaunchDarklySDKKey}}
	for i := 0; i < s.Size; i++ {
		events := make([]map[string]any, 0, perReq)
		var pts []Point
		for j := 0; j < perReq; j++ {
			m, _, date, v := s.point(i*perReq + j)
			events = append(events, map[string]any{
				"kind": "custom", "key": eventKey(m), "creationDate": date.UnixMilli(), "metricValue": v,
				"context": map[string]any{"kind": "user", "key": "u" + strconv.Itoa(i%97)},
			})
			pts = append(pts, Point{Metric: key(m), Window: s.Interval.start(date).UnixNano(), Value: v})
		}
		p.Reqs = append(p.Reqs, &Request{
			Method: http.MethodPost, Path: "/launchdarkly/events/bulk", ContentType: "application/json",
			Header: hdr, Body: mustJSON(events), Points: pts,
		})
	}
	p.SetupFunc = func(ctx context.Context, c *http.Client, base string) error {
		for m := 0; m < s.Metrics; m++ {
			def := mustJSON(map[string]any{
				"key": key(m), "name": key(m), "kind": "custom", "eventKey": eventKey(m),
				"isNumeric": true, "unit": "items", "unitAggregationType": "sum", "successCriteria": "HigherThanBaseline",
			})
			if err := expect2xx(ctx, c, http.MethodPost, base+"/api/v2/metrics/"+LaunchDarklyProject, "application/json", def, http.StatusConflict); err != nil {
				return err
			}
		}
		return nil
	}
	return p
}

// EmbraceApp and EmbraceBaseMetric are the app and base metric the scenario
// configuration allows under embrace::base_metrics (base metric attributes
// "key" and "os"). The base metric's own name is outside the tb_ namespace:
// only the derived metrics are accounted.
const (
	EmbraceApp        = "tbapp"
	EmbraceBaseMetric = "emb_sessions"
)

// Embrace returns a target that creates s.Metrics Embrace custom metrics in
// Setup (POST /custom-metrics/api/v1/app/{app}/custom-metrics: base metric
// EmbraceBaseMetric, filter os = "ios", group_by key, hourly) and then posts
// OTLP/HTTP JSON points of the base metric (perReq per request) from the app,
// a third of them from "android". Only the iOS points count, in every
// definition's hour window of their key: the filter is checked under load.
func Embrace(s Spread, perReq int) Target {
	s = s.norm()
	s.Interval = Hourly
	if s.Keys <= 0 {
		s.Keys = 8
	}
	perReq = max(perReq, 1)
	defs := make([]string, s.Metrics)
	for m := range defs {
		defs[m] = s.Prefix + "emb_" + strconv.Itoa(m)
	}
	p := &Pool{TargetName: "embrace-otlp", PerRequest: perReq}
	for i := 0; i < s.Size; i++ {
		md := pmetric.NewMetrics()
		rm := md.ResourceMetrics().AppendEmpty()
		rm.Resource().Attributes().PutStr("app.id", EmbraceApp)
		sm := rm.ScopeMetrics().AppendEmpty()
		var pts []Point
		for j := 0; j < perReq; j++ {
			n := i*perReq + j
			_, key, date, v := s.point(n)
			os := "ios"
			if n%3 == 2 {
				os = "android"
			}
			dp := appendDeltaSum(sm, EmbraceBaseMetric, date, v)
			dp.Attributes().PutStr("key", key)
			dp.Attributes().PutStr("os", os)
			if os != "ios" {
				continue
			}
			for _, d := range defs {
				pts = append(pts, Point{Metric: d, Key: key, Window: s.Interval.start(date).UnixNano(), Value: v})
			}
		}
		body, err := pmetricotlp.NewExportRequestFromMetrics(md).MarshalJSON()
		if err != nil {
			panic(err)
		}
		p.Reqs = append(p.Reqs, &Request{Method: http.MethodPost, Path: "/v1/metrics", ContentType: "application/json", Body: body, Points: pts})
	}
	p.SetupFunc = func(ctx context.Context, c *http.Client, base string) error {
		for _, d := range defs {
			def := mustJSON(map[string]any{
				"name": d, "metric": EmbraceBaseMetric, "group_by": []string{"key"},
				"filters":          map[string]any{"op": "and", "children": []any{map[string]any{"field_op": "eq", "key": "os", "val": "ios"}}},
				"time_granularity": []string{"hourly"},
			})
			if err := expect2xx(ctx, c, http.MethodPost, base+"/custom-metrics/api/v1/app/"+EmbraceApp+"/custom-metrics", "application/json", def, http.StatusConflict); err != nil {
				return err
			}
		}
		return nil
	}
	return p
}
