package custommetricsreceiver // import "github.com/custommetrics/bundle/receiver/custommetricsreceiver"

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.uber.org/zap"

	"github.com/custommetrics/bundle/internal/aggregation"
	"github.com/custommetrics/bundle/internal/calendar"
	"github.com/custommetrics/bundle/internal/definitions"
	"github.com/custommetrics/bundle/internal/figures"
	"github.com/custommetrics/bundle/internal/otelmap"
	tc "github.com/custommetrics/bundle/internal/wire/threatconnect"
)

// threatConnectAPI serves ThreatConnect's Custom Metrics API (v2).
type threatConnectAPI struct {
	r   *customMetricsReceiver
	cfg ThreatConnectConfig
	now func() time.Time
}

func newThreatConnectAPI(r *customMetricsReceiver) *threatConnectAPI {
	return &threatConnectAPI{r: r, cfg: r.cfg.ThreatConnect, now: time.Now}
}

func (a *threatConnectAPI) register(mux *http.ServeMux) {
	base := a.cfg.PathPrefix + "/v2/customMetrics"
	collection := methods(writeTCError, map[string]http.HandlerFunc{
		http.MethodGet:  a.auth(false, a.list),
		http.MethodPost: a.auth(true, a.create),
	})
	mux.Handle(base, collection)
	mux.Handle(base+"/{$}", collection)
	mux.Handle(base+"/{metric}", methods(writeTCError, map[string]http.HandlerFunc{
		http.MethodGet:    a.auth(false, a.get),
		http.MethodDelete: a.auth(true, a.delete),
	}))
	mux.Handle(base+"/{metric}/data", methods(writeTCError, map[string]http.HandlerFunc{
		http.MethodPost: a.auth(true, a.data),
	}))
}

// writeTCError answers in ThreatConnect's failure envelope.
func writeTCError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, tc.FailureEnvelope{Status: tc.StatusFailure, Message: msg})
}

type tcHandler func(w http.ResponseWriter, r *http.Request, tenant string)

// auth authenticates with a TC-Token or an HMAC signature. With no credentials
// configured the API is open and everything belongs to the default tenant.
func (a *threatConnectAPI) auth(write bool, next tcHandler) http.HandlerFunc {
	open := len(a.cfg.Tokens)+len(a.cfg.HMACKeys) == 0
	return func(w http.ResponseWriter, r *http.Request) {
		if open {
			next(w, r, "")
			return
		}
		access, err := a.authenticate(r)
		if err != nil {
			writeTCError(w, http.StatusUnauthorized, err.Error())
			return
		}
		if write && access.ReadOnly {
			writeTCError(w, http.StatusForbidden, tc.ErrAccessDenied.Error())
			return
		}
		next(w, r, access.Tenant)
	}
}

// authenticate returns the credential's access, or an error whose text is
// ThreatConnect's own message for the failure.
func (a *threatConnectAPI) authenticate(r *http.Request) (Access, error) {
	creds, err := tc.ParseAuthorization(r.Header.Get("Authorization"))
	if err != nil {
		return Access{}, tc.ErrAccessDenied
	}
	if creds.Token != "" {
		// Compare against every token so the time taken does not reveal which matched.
		var found Access
		ok := false
		for _, t := range a.cfg.Tokens {
			if equalSecret(creds.Token, string(t.Token)) && !ok {
				found, ok = t.Access, true
			}
		}
		if !ok {
			return Access{}, tc.ErrUnauthorized
		}
		return found, nil
	}
	for _, k := range a.cfg.HMACKeys {
		if k.AccessID != creds.AccessID {
			continue
		}
		if err := tc.VerifySignatureWithin(string(k.SecretKey), r.RequestURI, r.Method, r.Header.Get(tc.TimestampHeader), creds.Signature, a.now(), a.cfg.HMACMaxSkew); err != nil {
			a.r.settings.Logger.Debug("ThreatConnect signature refused", zap.String("access_id", k.AccessID), zap.Error(err))
			return Access{}, err
		}
		return k.Access, nil
	}
	return Access{}, tc.ErrUnauthorized
}

func (a *threatConnectAPI) metrics(ctx context.Context, tenant string) (*definitions.Collection[tc.MetricConfig], error) {
	return definitions.CollectionOf[tc.MetricConfig](ctx, a.r.registry, definitions.KindThreatConnectMetric, tenant)
}

// lookup finds a metric by name or, when the path segment is an integer, by ID
// (names that are integers are refused at creation, so the two cannot clash).
func lookup(c *definitions.Collection[tc.MetricConfig], nameOrID string) (tc.MetricConfig, bool) {
	if id, err := strconv.ParseInt(nameOrID, 10, 64); err == nil {
		return c.Find(func(m tc.MetricConfig) bool { return m.ID == id })
	}
	return c.Get(nameOrID)
}

func (a *threatConnectAPI) list(w http.ResponseWriter, r *http.Request, tenant string) {
	c, err := a.metrics(r.Context(), tenant)
	if err != nil {
		a.internalError(w, err)
		return
	}
	start, limit, err := tc.ParsePaging(r.URL.Query())
	if err != nil {
		writeTCError(w, http.StatusBadRequest, err.Error())
		return
	}
	items := c.List()
	total := len(items)
	items = items[min(start, total):min(start+limit, total)]
	// resultCount is the total, as ThreatConnect reports it; the page may hold fewer.
	writeJSON(w, http.StatusOK, tc.SuccessEnvelope{Status: tc.StatusSuccess, Data: tc.ListData{ResultCount: total, CustomMetricConfig: append([]tc.MetricConfig{}, items...)}})
}

func (a *threatConnectAPI) get(w http.ResponseWriter, r *http.Request, tenant string) {
	c, err := a.metrics(r.Context(), tenant)
	if err != nil {
		a.internalError(w, err)
		return
	}
	m, ok := lookup(c, r.PathValue("metric"))
	if !ok {
		writeTCError(w, http.StatusNotFound, tc.MsgNotFound)
		return
	}
	writeJSON(w, http.StatusOK, tc.SuccessEnvelope{Status: tc.StatusSuccess, Data: tc.OneData{CustomMetricConfig: m}})
}

func (a *threatConnectAPI) create(w http.ResponseWriter, r *http.Request, tenant string) {
	body, ok := readBody(w, r, writeTCError)
	if !ok {
		return
	}
	def, err := tc.ParseCreate(body)
	if err != nil {
		writeTCError(w, http.StatusBadRequest, err.Error())
		return
	}
	if le := a.r.cfg.Limits.name("name", def.Name); le != nil {
		writeTCError(w, le.Status, le.Error())
		return
	}
	c, err := a.metrics(r.Context(), tenant)
	if err != nil {
		a.internalError(w, err)
		return
	}
	created, err := c.Create(r.Context(), def.Name, func(id int64) (tc.MetricConfig, error) {
		def.ID = id
		return def, nil
	})
	switch {
	case errors.Is(err, definitions.ErrExists):
		writeTCError(w, http.StatusConflict, "The name for this custom metric is invalid, a custom metric with this name already exists")
	case err != nil:
		a.internalError(w, err)
	default:
		writeJSON(w, http.StatusCreated, tc.SuccessEnvelope{Status: tc.StatusSuccess, Data: tc.OneData{CustomMetricConfig: created}})
	}
}

func (a *threatConnectAPI) delete(w http.ResponseWriter, r *http.Request, tenant string) {
	c, err := a.metrics(r.Context(), tenant)
	if err != nil {
		a.internalError(w, err)
		return
	}
	m, ok := lookup(c, r.PathValue("metric"))
	if !ok {
		writeTCError(w, http.StatusNotFound, tc.MsgNotFound)
		return
	}
	if _, err := c.Delete(r.Context(), m.Name); err != nil {
		if errors.Is(err, definitions.ErrNotFound) { // deleted concurrently
			writeTCError(w, http.StatusNotFound, tc.MsgNotFound)
			return
		}
		a.internalError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": tc.StatusSuccess})
}

func (a *threatConnectAPI) data(w http.ResponseWriter, r *http.Request, tenant string) {
	body, ok := readBody(w, r, writeTCError)
	if !ok {
		return
	}
	returnValue, err := parseBoolParam(r, "returnValue")
	if err != nil {
		writeTCError(w, http.StatusBadRequest, err.Error())
		return
	}
	if returnValue && !a.cfg.ReturnValue {
		writeTCError(w, http.StatusBadRequest, errReturnValueOff)
		return
	}
	c, err := a.metrics(r.Context(), tenant)
	if err != nil {
		a.internalError(w, err)
		return
	}
	m, ok := lookup(c, r.PathValue("metric"))
	if !ok {
		writeTCError(w, http.StatusNotFound, tc.MsgNotFound)
		return
	}
	fn, _ := tc.Func(m.DataType)
	iv, _ := tc.Window(m.Interval)
	p, err := tc.ParseData(body, fn == aggregation.Count)
	if err != nil {
		writeTCError(w, http.StatusBadRequest, err.Error())
		return
	}
	if le := a.r.cfg.Limits.key("name (the key of a keyed value)", p.Name); le != nil {
		writeTCError(w, le.Status, le.Error())
		return
	}
	switch {
	case m.KeyedValues && p.Name == "":
		writeTCError(w, http.StatusBadRequest, "name is required: "+m.Name+" is a keyed metric")
		return
	case !m.KeyedValues && p.Name != "":
		// Accepting it would drop the key silently.
		writeTCError(w, http.StatusBadRequest, "name is not allowed: "+m.Name+" is not a keyed metric")
		return
	}
	if !p.HasDate {
		p.Date = a.now()
	}

	def := tcDefinition(m, fn, iv)
	batch := otelmap.NewBatch(apiThreatConnect, tenant, a.r.settings.BuildInfo.Version)
	batch.Add(m.Name, "", def, otelmap.Value{
		Key: p.Name, Value: p.Value, Time: pcommon.NewTimestampFromTime(p.Date), Weight: p.Weight, HasWeight: p.HasWeight,
	})
	md, n := batch.Metrics()
	// Only a returnValue request asks for figures: a slot keeps the
	// aggregate processor's windows pinned until it is filled.
	ctx, slot := r.Context(), (*figures.Slot)(nil)
	if returnValue {
		ctx, slot = figures.NewContext(ctx)
	}
	if err := a.r.consume(ctx, apiThreatConnect, md, n); err != nil {
		status, msg := refusal(err)
		if status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", retryAfterSeconds)
		}
		writeTCError(w, status, msg)
		return
	}
	if !returnValue {
		// ThreatConnect answers a plain data POST with 204 and no body.
		w.WriteHeader(http.StatusNoContent)
		return
	}

	// The pipeline has the value, and the aggregate processor that answered
	// the start-up probe has reported its window (internal/figures).
	f, ok := slot.Find(m.Name, iv)
	if !ok {
		// The value counted, but no figure exists that the receiver could
		// honestly answer: in cluster mode, a merge whose figures could not
		// be read back after its connection broke (the aggregate processor
		// logs it); otherwise a bug, or a pipeline changed at runtime.
		a.internalError(w, fmt.Errorf("no aggregate processor reported the window of %q for returnValue; the value itself was accepted", m.Name))
		return
	}
	writeJSON(w, http.StatusOK, tc.ReturnValue{Value: f.State.Value(fn), Date: time.Unix(0, f.Start).UTC().Format(tc.DateLayout)})
}

// errReturnValueOff answers ?returnValue=true when threatconnect::return_value is false.
const errReturnValueOff = "returnValue is disabled on this collector (threatconnect::return_value is false): post without returnValue=true"

// tcDefinition maps a ThreatConnect metric config, whose dataType and
// interval are fn and iv, to how its values are aggregated.
func tcDefinition(m tc.MetricConfig, fn aggregation.Func, iv calendar.Interval) otelmap.Definition {
	return otelmap.Definition{Aggregation: fn.String(), Interval: iv.String(), Keyed: m.KeyedValues, DeltaSum: fn == aggregation.Sum}
}

func (a *threatConnectAPI) internalError(w http.ResponseWriter, err error) {
	storeFailure(w, a.r.settings.Logger, apiThreatConnect, err, writeTCError, tc.MsgUnknownError)
}

func parseBoolParam(r *http.Request, name string) (bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(strings.ToLower(v))
	if err != nil {
		return false, errors.New("invalid " + name + " parameter: " + v)
	}
	return b, nil
}
