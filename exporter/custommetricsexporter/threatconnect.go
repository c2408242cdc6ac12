package custommetricsexporter // import "github.com/custommetrics/bundle/exporter/custommetricsexporter"

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.uber.org/zap"

	"github.com/custommetrics/bundle/internal/aggregation"
	"github.com/custommetrics/bundle/internal/calendar"
	"github.com/custommetrics/bundle/internal/otelmap"
	tc "github.com/custommetrics/bundle/internal/wire/threatconnect"
)

const (
	// definitionTTL is how long a ThreatConnect metric's definition (dataType,
	// interval, keyedValues) is cached.
	definitionTTL = 10 * time.Minute
	// windowStateTTL is how long the state of a forwarded window is kept
	// after its last change (see README: only Average needs it).
	windowStateTTL = 7 * 24 * time.Hour
)

type tcWindowKey struct {
	metric, key string
	start       int64 // unix seconds
}

// tcVendorFigure is what is known of a window's figure at ThreatConnect
// (kept in the storage extension when one is configured). It aggregates no
// values: the figure itself comes whole from the aggregate processor
// (internal/windows); this remembers what the vendor already has, so that a
// restatement is forwarded as the difference the vendor needs.
type tcVendorFigure struct {
	Forwarded float64   `json:"forwarded"` // the last figure of ours that the vendor confirmed
	Known     bool      `json:"known"`     // Forwarded and Vendor are meaningful
	Vendor    float64   `json:"vendor"`    // the vendor's figure as it last answered (returnValue)
	Date      int64     `json:"date"`      // First/Last: date (unix s) of the last post
	Posts     int       `json:"posts"`     // Average: number of posts (weight 1 each)
	Touched   time.Time `json:"touched"`
}

// stateKey is the window's key in the storage extension.
func (k tcWindowKey) stateKey() string {
	return "tc/" + strconv.Quote(k.metric) + "/" + strconv.Quote(k.key) + "/" + strconv.FormatInt(k.start, 10)
}

type tcDefinition struct {
	cfg     tc.MetricConfig
	fetched time.Time
}

type tcForwarder struct {
	e    *customMetricsExporter
	cfg  *ThreatConnectConfig
	base string // <endpoint><api_path>/v2/customMetrics/

	mu        sync.Mutex // one batch at a time: figures are forwarded as differences
	defs      map[string]tcDefinition
	windows   map[tcWindowKey]*tcVendorFigure
	lastPrune time.Time
}

func newTCForwarder(e *customMetricsExporter, cfg *ThreatConnectConfig) *tcForwarder {
	return &tcForwarder{
		e: e, cfg: cfg,
		base:    strings.TrimRight(cfg.Endpoint, "/") + strings.TrimRight(cfg.APIPath, "/") + "/v2/customMetrics/",
		defs:    map[string]tcDefinition{},
		windows: map[tcWindowKey]*tcVendorFigure{},
	}
}

func (t *tcForwarder) mapping(name string) *ThreatConnectMetric {
	for i := range t.cfg.Metrics {
		if t.cfg.Metrics[i].matches(name) {
			return &t.cfg.Metrics[i]
		}
	}
	return nil
}

// authorize sets ThreatConnect's Authorization (and, for HMAC, Timestamp) header.
func (t *tcForwarder) authorize(req *http.Request) {
	if t.cfg.Token != "" {
		req.Header.Set("Authorization", tc.TokenScheme+string(t.cfg.Token))
		return
	}
	now := t.e.now().Unix()
	sig := tc.Sign(string(t.cfg.SecretKey), req.URL.RequestURI(), req.Method, now)
	req.Header.Set("Authorization", tc.HMACAuthorization(t.cfg.AccessID, sig))
	req.Header.Set(tc.TimestampHeader, strconv.FormatInt(now, 10))
}

func (t *tcForwarder) send(ctx context.Context, method, rawURL string, body any) (response, error) {
	req, err := jsonRequest(method, rawURL, body)
	if err != nil {
		return response{}, err
	}
	t.authorize(req)
	return t.e.do(ctx, apiThreatConnect, req)
}

// definition reads (and caches) the ThreatConnect metric's definition: its
// dataType decides how window figures are forwarded, keyedValues whether a
// key is sent.
func (t *tcForwarder) definition(ctx context.Context, name string) (tc.MetricConfig, error) {
	if d, ok := t.defs[name]; ok && t.e.now().Sub(d.fetched) < definitionTTL {
		return d.cfg, nil
	}
	resp, err := t.send(ctx, http.MethodGet, t.base+url.PathEscape(name), nil)
	if err != nil {
		return tc.MetricConfig{}, err
	}
	var env struct {
		Data tc.OneData `json:"data"`
	}
	if err := json.Unmarshal(resp.body, &env); err != nil || env.Data.CustomMetricConfig.DataType == "" {
		return tc.MetricConfig{}, consumererror.NewPermanent(fmt.Errorf("threatconnect: GET %s: unexpected answer: %s", name, vendorMessage(resp.body)))
	}
	t.defs[name] = tcDefinition{cfg: env.Data.CustomMetricConfig, fetched: t.e.now()}
	return env.Data.CustomMetricConfig, nil
}

// tcData is the body of POST .../{name}/data.
type tcData struct {
	Name   *string  `json:"name,omitempty"`
	Value  float64  `json:"value"`
	Date   string   `json:"date"`
	Weight *float64 `json:"weight,omitempty"`
}

// post sends one value; with returnValue it answers the window's figure.
func (t *tcForwarder) post(ctx context.Context, metric string, d tcData, returnValue bool) (float64, error) {
	u := t.base + url.PathEscape(metric) + "/data"
	if returnValue {
		u += "?returnValue=true"
	}
	resp, err := t.send(ctx, http.MethodPost, u, d)
	if err != nil || !returnValue {
		return 0, err
	}
	var rv tc.ReturnValue
	if err := json.Unmarshal(resp.body, &rv); err != nil {
		return 0, consumererror.NewPermanent(fmt.Errorf("threatconnect: POST %s/data?returnValue=true: unexpected answer: %s", metric, vendorMessage(resp.body)))
	}
	return rv.Value, nil
}

func tcDate(sec int64) string { return time.Unix(sec, 0).UTC().Format(tc.DateLayout) }

func (t *tcForwarder) forward(ctx context.Context, points []point, o *outcome) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.prune()
	for _, p := range points {
		m := t.mapping(p.metric)
		if m == nil {
			o.finish(p.ref)
			continue
		}
		name := m.Metric
		if name == "" {
			name = p.metric
		}
		def, err := t.definition(ctx, name)
		if err != nil {
			if consumererror.IsPermanent(err) {
				o.fail(err, p.ref)
				continue
			}
			return err
		}
		var key *string
		if def.KeyedValues {
			v, ok := p.attrs.Get(m.KeyAttribute)
			if !ok || v.AsString() == "" {
				o.fail(fmt.Errorf("threatconnect: %s: metric %q is keyed but the point has no %q attribute", p, name, m.KeyAttribute), p.ref)
				continue
			}
			k := v.AsString()
			key = &k
		}
		if p.figure {
			err = t.forwardFigure(ctx, p, name, def, key)
		} else {
			err = t.forwardRaw(ctx, p, name, key)
		}
		switch {
		case err == nil:
			o.finish(p.ref)
		case consumererror.IsPermanent(err):
			o.fail(err, p.ref)
		default:
			return err
		}
	}
	return nil
}

// forwardRaw posts a raw value with its own date (to the second, as
// ThreatConnect's dates go) and weight: ThreatConnect aggregates it itself.
func (t *tcForwarder) forwardRaw(ctx context.Context, p point, name string, key *string) error {
	d := tcData{Name: key, Value: p.value, Date: p.ts.AsTime().UTC().Format(tc.DateLayout)}
	if v, ok := p.attrs.Get(otelmap.AttrWeight); ok {
		if w, ok := weight(v); ok {
			d.Weight = &w
		}
	}
	_, err := t.post(ctx, name, d, false)
	return err
}

func weight(v pcommon.Value) (float64, bool) {
	switch v.Type() {
	case pcommon.ValueTypeDouble:
		return v.Double(), true
	case pcommon.ValueTypeInt:
		return float64(v.Int()), true
	case pcommon.ValueTypeStr:
		f, err := strconv.ParseFloat(v.Str(), 64)
		return f, err == nil
	}
	return 0, false
}

// forwardFigure makes the vendor's figure of the window equal to ours. The
// vendor adds every posted value to the window, so what is posted depends on
// the ThreatConnect metric's dataType (README: "Window figures").
func (t *tcForwarder) forwardFigure(ctx context.Context, p point, name string, def tc.MetricConfig, key *string) error {
	iv, err := calendar.ParseInterval(p.interval)
	want, ok := tc.IntervalOf(iv)
	if err != nil || !ok || want != def.Interval {
		return consumererror.NewPermanent(fmt.Errorf("threatconnect: %s: a %s window figure cannot be forwarded to %q, whose interval is %s: "+
			"the windows must be the same (forward raw values instead, or aggregate with the metric's interval)", p, p.interval, name, def.Interval))
	}
	start := p.start.AsTime().Unix()
	end := p.ts.AsTime().Unix()
	k := tcWindowKey{metric: name, start: start}
	if key != nil {
		k.key = *key
	}
	st := t.windows[k]
	if st == nil {
		st = &tcVendorFigure{}
		if _, err := t.e.loadState(ctx, k.stateKey(), st); err != nil {
			return err // retryable: nothing was posted
		}
		t.windows[k] = st
	}
	st.Touched = t.e.now()
	// Whatever happens below changes what is known of the vendor's figure.
	defer func() {
		if err := t.e.saveState(ctx, k.stateKey(), st); err != nil {
			t.e.logger.Warn("Could not keep the ThreatConnect window state; after a restart an Average restatement of this window may be inexact",
				zap.String("metric", name), zap.Error(err))
		}
	}()
	fig := p.value
	if st.Known && st.Forwarded == fig {
		return nil // re-emitted unchanged (at-least-once upstream)
	}
	data := func(v float64, date int64) tcData { return tcData{Name: key, Value: v, Date: tcDate(date)} }

	fn, _ := tc.FuncFold(def.DataType) // the vendor's answer, any case; an unknown one is refused below
	switch fn {
	case aggregation.Sum:
		// Post the difference to the vendor's figure. Without a known figure
		// (first emission, after a restart or a failed post) ask for it by
		// adding 0, which changes nothing.
		if !st.Known {
			v, err := t.post(ctx, name, data(0, start), true)
			if err != nil {
				return err
			}
			st.Vendor = v
		}
		if delta := fig - st.Vendor; delta != 0 {
			st.Known = false // unknown until the answer arrives
			v, err := t.post(ctx, name, data(delta, start), true)
			if err != nil {
				return err
			}
			st.Vendor = v
		}
	case aggregation.Min, aggregation.Max:
		// The vendor keeps the smallest (largest) value: a restatement only
		// moves the figure further, so posting the figure is enough, and
		// posting it again changes nothing.
		v, err := t.post(ctx, name, data(fig, start), true)
		if err != nil {
			return err
		}
		st.Vendor = v
	case aggregation.First, aggregation.Last:
		// The vendor keeps the value with the earliest (latest) date: post
		// the figure dated before (after) every earlier post. Last walks
		// forward from the window start, First backward from its last second.
		// The answer tells whether the post won; if not (state lost in a
		// restart), step further, doubling, up to the window's bound.
		first := fn == aggregation.First
		date, step := start, int64(1)
		if first {
			date, step = end-1, -1
		}
		if st.Date != 0 {
			date = st.Date + step
		}
		for {
			if date < start || date >= end {
				return consumererror.NewPermanent(fmt.Errorf("threatconnect: %s: no date left in the window to make %v the %s figure of %q",
					p, fig, fn, name))
			}
			v, err := t.post(ctx, name, data(fig, date), true)
			if err != nil {
				return err
			}
			st.Date, st.Vendor = date, v
			if v == fig {
				break
			}
			date += step
			step *= 2
		}
	case aggregation.Average:
		// The vendor's figure is sum(v·w)/sum(w). Every post has weight 1;
		// after n posts with figure A, posting fig·(n+1) − A·n makes it fig.
		v := fig
		if st.Known || st.Posts > 0 {
			v = fig*float64(st.Posts+1) - st.Vendor*float64(st.Posts)
		}
		one := 1.0
		d := data(v, start)
		d.Weight = &one
		got, err := t.post(ctx, name, d, true)
		if err != nil {
			st.Known = false
			return err
		}
		st.Posts++
		st.Vendor = got
	case aggregation.Count:
		return consumererror.NewPermanent(fmt.Errorf("threatconnect: %s: %q is a Count metric, which counts posts, not values: "+
			"forward raw values to it (keep_raw or a pipeline without aggregate), or forward the count figure to a Sum metric", p, name))
	default:
		return consumererror.NewPermanent(fmt.Errorf("threatconnect: %q has an unknown dataType %q", name, def.DataType))
	}
	st.Known, st.Forwarded = true, fig
	if st.Vendor != fig {
		t.e.logger.Warn("ThreatConnect's window figure differs from the forwarded one (floating-point rounding, or other writers)",
			zap.String("metric", name), zap.Float64("forwarded", fig), zap.Float64("vendor", st.Vendor), zap.String("window", tcDate(start)))
	}
	return nil
}

// prune forgets window states untouched for windowStateTTL, at most hourly.
func (t *tcForwarder) prune() {
	now := t.e.now()
	if now.Sub(t.lastPrune) < time.Hour {
		return
	}
	t.lastPrune = now
	for k, st := range t.windows {
		if now.Sub(st.Touched) > windowStateTTL {
			delete(t.windows, k)
			if err := t.e.deleteState(context.Background(), k.stateKey()); err != nil {
				t.e.logger.Warn("Could not delete an expired ThreatConnect window state", zap.Error(err))
			}
		}
	}
}
