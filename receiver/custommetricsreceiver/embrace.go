package custommetricsreceiver // import "github.com/custommetrics/bundle/receiver/custommetricsreceiver"

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/custommetrics/bundle/internal/definitions"
	"github.com/custommetrics/bundle/internal/wire/embrace"
)

// embraceAPI serves Embrace's Custom Metrics API (v1): derived-metric
// definitions that the aggregate processor computes.
type embraceAPI struct {
	r      *customMetricsReceiver
	cfg    EmbraceConfig
	prefix string
	bases  []embrace.BaseMetric
}

func newEmbraceAPI(r *customMetricsReceiver) *embraceAPI {
	a := &embraceAPI{r: r, cfg: r.cfg.Embrace, prefix: r.cfg.Embrace.PathPrefix + "/custom-metrics/api/v1/app/"}
	for _, b := range a.cfg.BaseMetrics {
		a.bases = append(a.bases, embrace.BaseMetric{Name: b.Name, Attributes: b.Attributes})
	}
	return a
}

// wrap serves the API's paths itself and hands every other request to next.
// The paths are routed here rather than by http.ServeMux, which would answer
// an empty app_id ("/app//custom-metrics") with a redirect instead of the
// document's 400.
func (a *embraceAPI) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rest, ok := strings.CutPrefix(r.URL.Path, a.prefix)
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		a.route(w, r, rest)
	})
}

func writeEmbraceError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, embrace.ErrorBody{Message: msg})
}

func (a *embraceAPI) route(w http.ResponseWriter, r *http.Request, rest string) {
	parts := strings.Split(rest, "/")
	if len(parts) == 3 && parts[2] == "" {
		parts = parts[:2] // trailing slash
	}
	if len(parts) < 2 || len(parts) > 3 || parts[1] != "custom-metrics" {
		writeEmbraceError(w, http.StatusNotFound, "not found")
		return
	}
	app := parts[0]
	if len(parts) == 2 {
		methods(writeEmbraceError, map[string]http.HandlerFunc{
			http.MethodGet:  a.auth(app, false, func(w http.ResponseWriter, r *http.Request, tenant string) { a.list(w, r, tenant, app) }),
			http.MethodPost: a.auth(app, true, func(w http.ResponseWriter, r *http.Request, tenant string) { a.create(w, r, tenant, app) }),
		})(w, r)
		return
	}
	name := parts[2]
	methods(writeEmbraceError, map[string]http.HandlerFunc{
		http.MethodGet:    a.auth(app, false, func(w http.ResponseWriter, r *http.Request, tenant string) { a.get(w, r, tenant, app, name) }),
		http.MethodDelete: a.auth(app, true, func(w http.ResponseWriter, r *http.Request, tenant string) { a.delete(w, r, tenant, app, name) }),
	})(w, r)
}

// auth checks "Authorization: Bearer <token>" and the token's apps. The
// document lists 403 as its only access failure, so a missing or unknown
// token is 403 too.
func (a *embraceAPI) auth(app string, write bool, next func(w http.ResponseWriter, r *http.Request, tenant string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var tok EmbraceToken
		if len(a.cfg.Tokens) > 0 {
			scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
			token = strings.TrimSpace(token)
			found := false
			if strings.EqualFold(scheme, "Bearer") && token != "" {
				for _, t := range a.cfg.Tokens {
					if equalSecret(token, string(t.Token)) && !found {
						tok, found = t, true
					}
				}
			}
			if !found {
				writeEmbraceError(w, http.StatusForbidden, embrace.MsgUnauthorized)
				return
			}
		}
		if app == "" {
			writeEmbraceError(w, http.StatusBadRequest, embrace.MsgEmptyAppID)
			return
		}
		if !embrace.AppIDPattern.MatchString(app) {
			writeEmbraceError(w, http.StatusBadRequest, "app_id is invalid")
			return
		}
		if (len(tok.AppIDs) > 0 && !slices.Contains(tok.AppIDs, app)) || (write && tok.ReadOnly) {
			writeEmbraceError(w, http.StatusForbidden, embrace.MsgForbidden)
			return
		}
		next(w, r, tok.Tenant)
	}
}

func (a *embraceAPI) metrics(ctx context.Context, tenant string) (*definitions.Collection[embrace.CustomMetric], error) {
	return definitions.CollectionOf[embrace.CustomMetric](ctx, a.r.registry, definitions.KindEmbraceMetric, tenant)
}

func embraceKey(app, name string) string { return app + "/" + name }

func (a *embraceAPI) create(w http.ResponseWriter, r *http.Request, tenant, app string) {
	body, ok := readBody(w, r, writeEmbraceError)
	if !ok {
		return
	}
	m, err := embrace.ParseCreate(body, app, a.bases)
	if err != nil {
		writeEmbraceError(w, http.StatusBadRequest, err.Error())
		return
	}
	if le := a.checkLimits(&m); le != nil {
		writeEmbraceError(w, le.Status, le.Error())
		return
	}
	c, err := a.metrics(r.Context(), tenant)
	if err != nil {
		a.internalError(w, err)
		return
	}
	// Seven random characters (62^7 choices) rarely collide; never hand out one in use.
	for {
		m.CustomMetricID = embrace.NewID()
		if _, taken := c.Find(func(x embrace.CustomMetric) bool { return x.CustomMetricID == m.CustomMetricID }); !taken {
			break
		}
	}
	created, err := c.Create(r.Context(), embraceKey(app, m.Name), func(int64) (embrace.CustomMetric, error) { return m, nil })
	switch {
	case errors.Is(err, definitions.ErrExists):
		writeEmbraceError(w, http.StatusConflict, embrace.MsgConflict)
	case err != nil:
		a.internalError(w, err)
	default:
		writeJSON(w, http.StatusOK, created)
	}
}

// checkLimits applies the limits to a definition's name (the emitted
// metric's name) and the attribute keys it groups and filters on.
func (a *embraceAPI) checkLimits(m *embrace.CustomMetric) *limitError {
	limits := a.r.cfg.Limits
	errs := []*limitError{limits.name("name", m.Name)}
	for _, k := range m.GroupBy {
		errs = append(errs, limits.key("a group_by attribute", k))
	}
	for _, k := range m.Filters.Keys() {
		errs = append(errs, limits.key("a filter key", k))
	}
	return firstLimitError(errs...)
}

func (a *embraceAPI) list(w http.ResponseWriter, r *http.Request, tenant, app string) {
	c, err := a.metrics(r.Context(), tenant)
	if err != nil {
		a.internalError(w, err)
		return
	}
	out := embrace.ListResponse{Results: []embrace.CustomMetric{}}
	for _, m := range c.List() {
		if m.AppID == app {
			out.Results = append(out.Results, m)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *embraceAPI) get(w http.ResponseWriter, r *http.Request, tenant, app, name string) {
	c, err := a.metrics(r.Context(), tenant)
	if err != nil {
		a.internalError(w, err)
		return
	}
	m, ok := c.Get(embraceKey(app, name))
	if !ok {
		writeEmbraceError(w, http.StatusNotFound, embrace.MsgNotFound)
		return
	}
	writeJSON(w, http.StatusOK, m)
}

func (a *embraceAPI) delete(w http.ResponseWriter, r *http.Request, tenant, app, name string) {
	c, err := a.metrics(r.Context(), tenant)
	if err != nil {
		a.internalError(w, err)
		return
	}
	if _, err := c.Delete(r.Context(), embraceKey(app, name)); err != nil {
		if errors.Is(err, definitions.ErrNotFound) {
			writeEmbraceError(w, http.StatusNotFound, embrace.MsgNotFound)
			return
		}
		a.internalError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *embraceAPI) internalError(w http.ResponseWriter, err error) {
	storeFailure(w, a.r.settings.Logger, apiEmbrace, err, writeEmbraceError, embrace.MsgInternal)
}
