package custommetricsreceiver // import "github.com/custommetrics/bundle/receiver/custommetricsreceiver"

import (
	"net/http"

	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/custommetrics/bundle/internal/calendar"
	"github.com/custommetrics/bundle/internal/otelmap"
	ld "github.com/custommetrics/bundle/internal/wire/launchdarkly"
)

// registerEvents serves the SDKs' event paths:
//
//	<events.path>/bulk, <events.path>/diagnostic   server-side SDKs, by SDK key
//	/bulk, /diagnostic                             the same, at the root
//	/events/bulk/{envId}, /events/diagnostic/{envId}   client-side SDKs, by client-side ID
//
// LaunchDarkly's events host takes the server-side SDKs' posts at /bulk and
// /diagnostic under its root, so an SDK whose events URI is this collector's
// root URL posts there. No other API has a path at the root: every other
// pattern starts with its API's fixed segments (<prefix>/v2/customMetrics,
// <prefix>/api/1/impact, <prefix>/api/deploymentmetrics, <prefix>/api/v2/metrics,
// <prefix>/custom-metrics/api/v1/app), and events.path is never "" or "/"
// (Validate), so <events.path>/bulk is never /bulk either. The client-side
// SDKs' paths are LaunchDarkly's too; no other pattern starts with /events.
// TestLaunchDarklyEventPathsCollideWithNothing checks this over HTTP.
func (a *launchDarklyAPI) registerEvents(mux *http.ServeMux) {
	bulk := methods(writeLDError, map[string]http.HandlerFunc{http.MethodPost: a.bulk})
	diagnostic := methods(writeLDError, map[string]http.HandlerFunc{http.MethodPost: a.diagnostic})
	for _, base := range []string{a.cfg.Events.Path, ""} {
		mux.Handle(base+"/bulk", bulk)
		mux.Handle(base+"/diagnostic", diagnostic)
	}
	mux.Handle("/events/bulk/{envId}", methods(writeLDError, map[string]http.HandlerFunc{http.MethodPost: a.clientBulk}))
	mux.Handle("/events/diagnostic/{envId}", methods(writeLDError, map[string]http.HandlerFunc{http.MethodPost: a.clientDiagnostic}))
}

// clientSideID authenticates a client-side SDK by the client-side ID in its
// path. The IDs are public, so a map lookup (not constant time) will do.
func (a *launchDarklyAPI) clientSideID(r *http.Request) (LaunchDarklyClientSideID, bool) {
	c, ok := a.clientSideIDs[r.PathValue("envId")]
	return c, ok
}

// sdkKey authenticates an SDK by "Authorization: <sdk key>".
func (a *launchDarklyAPI) sdkKey(r *http.Request) (LaunchDarklySDKKey, bool) {
	got := r.Header.Get("Authorization")
	var found LaunchDarklySDKKey
	ok := false
	for _, k := range a.cfg.Events.SDKKeys {
		if equalSecret(got, string(k.Key)) && !ok {
			found, ok = k, true
		}
	}
	return found, ok && got != ""
}

// diagnostic answers the server-side SDKs' diagnostic events.
func (a *launchDarklyAPI) diagnostic(w http.ResponseWriter, r *http.Request) {
	if _, ok := a.sdkKey(r); !ok {
		writeLDError(w, http.StatusUnauthorized, ld.MsgUnauthorized)
		return
	}
	a.answerDiagnostic(w, r)
}

// clientDiagnostic answers the client-side SDKs' diagnostic events; an
// unknown client-side ID gets 404, as from LaunchDarkly.
func (a *launchDarklyAPI) clientDiagnostic(w http.ResponseWriter, r *http.Request) {
	if _, ok := a.clientSideID(r); !ok {
		writeLDError(w, http.StatusNotFound, ld.MsgNotFound)
		return
	}
	a.answerDiagnostic(w, r)
}

// answerDiagnostic reads a diagnostic event; they carry no metric values.
func (a *launchDarklyAPI) answerDiagnostic(w http.ResponseWriter, r *http.Request) {
	if _, ok := readBody(w, r, writeLDError); !ok {
		return
	}
	a.diagnostics.Add(1)
	w.WriteHeader(http.StatusAccepted)
}

// bulk takes a server-side SDK's payload, authenticated by its SDK key.
func (a *launchDarklyAPI) bulk(w http.ResponseWriter, r *http.Request) {
	key, ok := a.sdkKey(r)
	if !ok {
		writeLDError(w, http.StatusUnauthorized, ld.MsgUnauthorized)
		return
	}
	a.ingest(w, r, key.Tenant, key.Project)
}

// clientBulk takes a client-side SDK's payload, authenticated by the
// client-side ID in its path; an unknown ID gets 404, as from LaunchDarkly.
func (a *launchDarklyAPI) clientBulk(w http.ResponseWriter, r *http.Request) {
	id, ok := a.clientSideID(r)
	if !ok {
		writeLDError(w, http.StatusNotFound, ld.MsgNotFound)
		return
	}
	a.ingest(w, r, id.Tenant, id.Project)
}

// ingest turns the custom, pageview and click events of an SDK's payload into
// values of the project's metrics, and answers 202 once the pipeline has them.
func (a *launchDarklyAPI) ingest(w http.ResponseWriter, r *http.Request, tenant, project string) {
	body, ok := readBody(w, r, writeLDError)
	if !ok {
		return
	}
	events, err := ld.ParseEvents(body)
	if err != nil {
		writeLDError(w, http.StatusBadRequest, err.Error())
		return
	}
	for _, e := range events {
		if le := a.r.cfg.Limits.key("an event's key", e.Key); le != nil {
			writeLDError(w, le.Status, le.Error())
			return
		}
	}
	if len(events) == 0 {
		w.WriteHeader(http.StatusAccepted)
		return
	}
	c, err := a.metrics(r.Context(), tenant)
	if err != nil {
		a.internalError(w, err)
		return
	}
	var metrics []ld.Metric
	for _, m := range c.List() {
		if m.Project == project {
			metrics = append(metrics, m)
		}
	}
	arrival := pcommon.NewTimestampFromTime(a.now())
	values := make([][]otelmap.Value, len(metrics))
	for _, e := range events {
		ts := arrival
		if e.CreationDate > 0 {
			ts = pcommon.Timestamp(int64(e.CreationDate) * 1e6)
		}
		for i, m := range metrics {
			if v, ok := eventValue(m, e); ok {
				values[i] = append(values[i], otelmap.Value{Value: v, Time: ts})
			}
		}
	}
	total := 0
	for _, vs := range values {
		total += len(vs)
	}
	if le := a.r.cfg.Limits.points(total); le != nil {
		writeLDError(w, le.Status, le.Error())
		return
	}
	batch := otelmap.NewBatch(apiLaunchDarkly, tenant, a.r.settings.BuildInfo.Version)
	for i, m := range metrics {
		if len(values[i]) > 0 {
			unit := ""
			if m.Numeric() && m.Unit != nil {
				unit = *m.Unit
			}
			batch.Add(m.Key, unit, ldDefinition(m, a.cfg.Events.Interval), values[i]...)
		}
	}
	md, n := batch.Metrics()
	if n == 0 {
		w.WriteHeader(http.StatusAccepted)
		return
	}
	md.ResourceMetrics().At(0).Resource().Attributes().PutStr(otelmap.AttrLaunchDarklyProject, project)
	if err := a.r.consume(r.Context(), apiLaunchDarkly, md, n); err != nil {
		status, msg := refusal(err)
		if status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", retryAfterSeconds)
		}
		writeLDError(w, status, msg)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// eventValue is the value event e gives metric m, if any: a custom event whose
// key is the metric's eventKey gives its metricValue (numeric metrics) or 1
// (conversions); a pageview or click gives 1 to an active metric of its kind
// that it names by key (as the JavaScript SDK sends them) or, without a key,
// whose URL matchers match its url (clicks: and whose selector it names, if any).
func eventValue(m ld.Metric, e ld.Event) (float64, bool) {
	switch e.Kind {
	case ld.EventCustom:
		if m.Kind != ld.KindCustom || m.EventKey == nil || *m.EventKey != e.Key {
			return 0, false
		}
		if m.Numeric() {
			if e.MetricValue == nil {
				return 0, false
			}
			return *e.MetricValue, true
		}
		return 1, true
	case ld.EventPageview, ld.EventClick:
		if m.Kind != e.Kind || !m.Active() {
			return 0, false
		}
		if e.Key != "" {
			return 1, e.Key == m.Key
		}
		if !m.MatchesURL(e.URL) {
			return 0, false
		}
		if e.Kind == ld.EventClick && e.Selector != "" && m.Selector != nil && *m.Selector != e.Selector {
			return 0, false
		}
		return 1, true
	}
	return 0, false
}

// ldDefinition maps a metric to how its values are aggregated, in windows
// of iv: numeric metrics average (or sum, per unitAggregationType) their
// values; conversions, page views and clicks count, as delta sums of 1.
// Aggregating matters beyond the figure: raw points of one series with the
// same millisecond timestamp would collapse into one in storage.
func ldDefinition(m ld.Metric, iv calendar.Interval) otelmap.Definition {
	return otelmap.Definition{Aggregation: m.Func().String(), Interval: iv.String(), DeltaSum: !m.Numeric()}
}
