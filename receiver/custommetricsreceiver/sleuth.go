package custommetricsreceiver // import "github.com/custommetrics/bundle/receiver/custommetricsreceiver"

import (
	"encoding/json"
	"errors"
	"math"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/custommetrics/bundle/internal/otelmap"
	"github.com/custommetrics/bundle/internal/wire/isodate"
	"github.com/custommetrics/bundle/internal/wire/number"
)

// Sleuth's documented answers (plain text).
const (
	sleuthOK           = "Success"
	sleuthBadValue     = "Bad Request - impact value must be a number"
	sleuthBadDate      = "Bad Request - date must be in ISO-8601 format"
	sleuthDateRange    = "Bad Request - date must be between 1700-01-01 and 2199-12-31"
	sleuthBadBody      = "Bad Request - body must be a JSON object or form data"
	sleuthUnauthorized = "Unauthorized"
	sleuthNotFound     = "MetricImpactSource Not Found"
)

// sleuthAPI serves Sleuth's custom metric impact registration.
type sleuthAPI struct {
	r       *customMetricsReceiver
	cfg     SleuthConfig
	sources map[int64]SleuthImpactSource
	now     func() time.Time

	mu   sync.Mutex
	last map[int64]time.Time // last accepted registration per impact source
}

func newSleuthAPI(r *customMetricsReceiver) *sleuthAPI {
	a := &sleuthAPI{r: r, cfg: r.cfg.Sleuth, sources: map[int64]SleuthImpactSource{}, now: time.Now, last: map[int64]time.Time{}}
	for _, s := range a.cfg.ImpactSources {
		a.sources[s.ID] = s
	}
	return a
}

func (a *sleuthAPI) register(mux *http.ServeMux) {
	mux.Handle(a.cfg.PathPrefix+"/api/1/impact/{id}/register_impact", methods(writeSleuthError, map[string]http.HandlerFunc{
		http.MethodPost: a.registerImpact,
	}))
}

func writeSleuthError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(msg))
}

type sleuthBody struct {
	Value  json.RawMessage `json:"value"`
	APIKey *string         `json:"api_key"`
	Date   *string         `json:"date"`
}

// parseSleuthBody reads a JSON body, or a form body as Sleuth's older
// documentation declares the parameters (form data).
func parseSleuthBody(contentType string, body []byte) (sleuthBody, error) {
	var req sleuthBody
	mt, _, _ := mime.ParseMediaType(contentType)
	if mt != "application/x-www-form-urlencoded" {
		err := json.Unmarshal(body, &req)
		return req, err
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return req, err
	}
	if form.Has("value") {
		raw, _ := json.Marshal(form.Get("value"))
		req.Value = raw
	}
	if form.Has("api_key") {
		k := form.Get("api_key")
		req.APIKey = &k
	}
	if form.Has("date") {
		d := form.Get("date")
		req.Date = &d
	}
	return req, nil
}

func (a *sleuthAPI) registerImpact(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r, writeSleuthError)
	if !ok {
		return
	}
	req, err := parseSleuthBody(r.Header.Get("Content-Type"), body)
	if err != nil {
		writeSleuthError(w, http.StatusBadRequest, sleuthBadBody)
		return
	}
	tenant, ok := a.authenticate(r, req.APIKey)
	if !ok {
		writeSleuthError(w, http.StatusUnauthorized, sleuthUnauthorized)
		return
	}
	id, perr := strconv.ParseInt(r.PathValue("id"), 10, 64)
	src, known := a.sources[id]
	if perr != nil || !known || src.Tenant != tenant {
		writeSleuthError(w, http.StatusNotFound, sleuthNotFound)
		return
	}
	value, ok := sleuthNumber(req.Value)
	if !ok {
		writeSleuthError(w, http.StatusBadRequest, sleuthBadValue)
		return
	}
	at := a.now()
	if req.Date != nil && *req.Date != "" {
		if at, err = isodate.Parse(*req.Date); err != nil {
			msg := sleuthBadDate
			if errors.Is(err, isodate.ErrRange) {
				msg = sleuthDateRange
			}
			writeSleuthError(w, http.StatusBadRequest, msg)
			return
		}
	}
	if wait := a.reserve(id); wait > 0 {
		secs := int(math.Ceil(wait.Seconds()))
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		writeSleuthError(w, http.StatusTooManyRequests, "You may only register a custom metric once every "+strconv.Itoa(int(a.cfg.MinInterval.Seconds()))+" seconds")
		return
	}

	batch := otelmap.NewBatch(apiSleuth, tenant, a.r.settings.BuildInfo.Version)
	batch.Add(src.Metric, src.Unit, otelmap.Definition{}, otelmap.Value{Value: value, Time: pcommon.NewTimestampFromTime(at)})
	md, n := batch.Metrics()
	if err := a.r.consume(r.Context(), apiSleuth, md, n); err != nil {
		a.release(id)
		status, msg := refusal(err)
		if status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", retryAfterSeconds)
		}
		writeSleuthError(w, status, msg)
		return
	}
	writeSleuthError(w, http.StatusOK, sleuthOK)
}

// reserve claims the impact source's registration slot; it returns how long to
// wait when the last registration was less than MinInterval ago.
func (a *sleuthAPI) reserve(id int64) time.Duration {
	if a.cfg.MinInterval <= 0 {
		return 0
	}
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	if last, ok := a.last[id]; ok {
		if next := last.Add(a.cfg.MinInterval); now.Before(next) {
			return next.Sub(now)
		}
	}
	a.last[id] = now
	return 0
}

// release gives the slot back when the pipeline refused the value, so the
// client's retry is not rate limited for a value that was never counted.
func (a *sleuthAPI) release(id int64) {
	if a.cfg.MinInterval <= 0 {
		return
	}
	a.mu.Lock()
	delete(a.last, id)
	a.mu.Unlock()
}

// authenticate accepts the key from "Authorization: apikey KEY" or the body's api_key.
func (a *sleuthAPI) authenticate(r *http.Request, bodyKey *string) (tenant string, ok bool) {
	if len(a.cfg.APIKeys) == 0 {
		return "", true
	}
	key := ""
	if h := r.Header.Get("Authorization"); len(h) > len("apikey ") && strings.EqualFold(h[:len("apikey ")], "apikey ") {
		key = strings.TrimSpace(h[len("apikey "):])
	} else if bodyKey != nil {
		key = *bodyKey
	}
	if key == "" {
		return "", false
	}
	for _, k := range a.cfg.APIKeys {
		if equalSecret(key, string(k.Key)) && !ok {
			tenant, ok = k.Tenant, true
		}
	}
	return tenant, ok
}

// sleuthNumber reads a float given as a JSON number or a numeric string, strictly (internal/wire/number).
func sleuthNumber(raw json.RawMessage) (float64, bool) {
	v, err := number.ParseJSON(raw)
	return v, err == nil
}
