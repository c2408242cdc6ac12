package custommetricsreceiver // import "github.com/custommetrics/bundle/receiver/custommetricsreceiver"

import (
	"errors"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/custommetrics/bundle/internal/otelmap"
	"github.com/custommetrics/bundle/internal/wire/isodate"
	"github.com/custommetrics/bundle/internal/wire/sleuth"
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
	mux.Handle(a.cfg.PathPrefix+sleuth.ImpactPattern, methods(writeSleuthError, map[string]http.HandlerFunc{
		http.MethodPost: a.registerImpact,
	}))
}

func writeSleuthError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(msg))
}

func (a *sleuthAPI) registerImpact(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r, writeSleuthError)
	if !ok {
		return
	}
	req, err := sleuth.ParseBody(r.Header.Get("Content-Type"), body)
	if err != nil {
		writeSleuthError(w, http.StatusBadRequest, sleuth.BadBody)
		return
	}
	tenant, ok := a.authenticate(r, req.APIKey)
	if !ok {
		writeSleuthError(w, http.StatusUnauthorized, sleuth.Unauthorized)
		return
	}
	id, perr := strconv.ParseInt(r.PathValue("id"), 10, 64)
	src, known := a.sources[id]
	if perr != nil || !known || src.Tenant != tenant {
		writeSleuthError(w, http.StatusNotFound, sleuth.NotFound)
		return
	}
	value, ok := sleuth.Number(req.Value)
	if !ok {
		writeSleuthError(w, http.StatusBadRequest, sleuth.BadValue)
		return
	}
	at := a.now()
	if req.Date != nil && *req.Date != "" {
		if at, err = isodate.Parse(*req.Date); err != nil {
			msg := sleuth.BadDate
			if errors.Is(err, isodate.ErrRange) {
				msg = sleuth.DateRange
			}
			writeSleuthError(w, http.StatusBadRequest, msg)
			return
		}
	}
	if wait := a.reserve(id); wait > 0 {
		secs := int(math.Ceil(wait.Seconds()))
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		writeSleuthError(w, http.StatusTooManyRequests, sleuth.TooFrequent(int(a.cfg.MinInterval.Seconds())))
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
	writeSleuthError(w, http.StatusOK, sleuth.Success)
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
	key, inHeader := sleuth.KeyOf(r.Header.Get("Authorization"))
	if !inHeader && bodyKey != nil {
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
