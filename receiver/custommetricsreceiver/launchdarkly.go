package custommetricsreceiver // import "github.com/custommetrics/bundle/receiver/custommetricsreceiver"

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/custommetrics/bundle/internal/definitions"
	"github.com/custommetrics/bundle/internal/jsonpatch"
	ld "github.com/custommetrics/bundle/internal/wire/launchdarkly"
)

// LaunchDarkly's list paging.
const (
	ldDefaultLimit = 20
	ldMaxLimit     = 50
)

// launchDarklyAPI serves LaunchDarkly's metrics API (v2) and its SDKs' events endpoint.
type launchDarklyAPI struct {
	r       *customMetricsReceiver
	cfg     LaunchDarklyConfig
	now     func() time.Time
	limiter *minuteLimiter
	// clientSideIDs are cfg.Events.ClientSideIDs by ID.
	clientSideIDs map[string]LaunchDarklyClientSideID
	// diagnostics counts the SDKs' diagnostic events answered.
	diagnostics atomic.Int64
}

func newLaunchDarklyAPI(r *customMetricsReceiver) *launchDarklyAPI {
	a := &launchDarklyAPI{r: r, cfg: r.cfg.LaunchDarkly, now: time.Now, limiter: newMinuteLimiter(r.cfg.LaunchDarkly.RateLimitPerMinute),
		clientSideIDs: map[string]LaunchDarklyClientSideID{}}
	for _, c := range a.cfg.Events.ClientSideIDs {
		a.clientSideIDs[c.ID] = c
	}
	return a
}

func (a *launchDarklyAPI) base(project string) string {
	return a.cfg.PathPrefix + "/api/v2/metrics/" + project
}

func (a *launchDarklyAPI) register(mux *http.ServeMux) {
	base := a.cfg.PathPrefix + "/api/v2/metrics"
	collection := methods(writeLDError, map[string]http.HandlerFunc{
		http.MethodGet:  a.auth(false, a.list),
		http.MethodPost: a.auth(true, a.create),
	})
	mux.Handle(base+"/{project}", collection)
	mux.Handle(base+"/{project}/{$}", collection)
	mux.Handle(base+"/{project}/{metric}", methods(writeLDError, map[string]http.HandlerFunc{
		http.MethodGet:    a.auth(false, a.get),
		http.MethodPatch:  a.auth(true, a.patch),
		http.MethodDelete: a.auth(true, a.delete),
	}))
	if a.cfg.Events.Enabled {
		if len(a.cfg.Events.SDKKeys) == 0 {
			a.r.settings.Logger.Warn("LaunchDarkly events endpoint has no sdk_keys configured: it refuses every request (401)")
		}
		a.registerEvents(mux)
	}
}

// ldCodes maps statuses to LaunchDarkly's error codes.
var ldCodes = map[int]string{
	http.StatusBadRequest:            ld.CodeInvalidRequest,
	http.StatusUnauthorized:          ld.CodeUnauthorized,
	http.StatusForbidden:             ld.CodeForbidden,
	http.StatusNotFound:              ld.CodeNotFound,
	http.StatusMethodNotAllowed:      ld.CodeMethodNotAllowed,
	http.StatusConflict:              ld.CodeConflict,
	http.StatusRequestEntityTooLarge: ld.CodeTooLarge,
	http.StatusTooManyRequests:       ld.CodeRateLimited,
	http.StatusInternalServerError:   ld.CodeInternal,
	http.StatusServiceUnavailable:    ld.CodeUnavailable,
}

// writeLDError answers in LaunchDarkly's error shape {"code","message"}.
func writeLDError(w http.ResponseWriter, status int, msg string) {
	code, ok := ldCodes[status]
	if !ok {
		code = strings.ToLower(strings.ReplaceAll(http.StatusText(status), " ", "_"))
	}
	writeJSON(w, status, ld.ErrorRep{Code: code, Message: msg})
}

type ldHandler func(w http.ResponseWriter, r *http.Request, tenant, project string)

// auth checks "Authorization: <access token>", the project and the rate limit.
func (a *launchDarklyAPI) auth(write bool, next ldHandler) http.HandlerFunc {
	open := len(a.cfg.AccessTokens) == 0
	return func(w http.ResponseWriter, r *http.Request) {
		var tok LaunchDarklyAccessToken
		if !open {
			got := r.Header.Get("Authorization")
			found := false
			for _, t := range a.cfg.AccessTokens {
				if equalSecret(got, string(t.Token)) && !found {
					tok, found = t, true
				}
			}
			if !found || got == "" {
				writeLDError(w, http.StatusUnauthorized, ld.MsgUnauthorized)
				return
			}
		}
		if retry, ok := a.limiter.allow(string(tok.Token), a.now()); !ok {
			w.Header().Set("Retry-After", strconv.Itoa(retry))
			w.Header().Set("X-Ratelimit-Reset", strconv.FormatInt(a.now().Add(time.Duration(retry)*time.Second).UnixMilli(), 10))
			writeLDError(w, http.StatusTooManyRequests, ld.MsgRateLimited)
			return
		}
		project := r.PathValue("project")
		if !ld.KeyPattern.MatchString(project) {
			writeLDError(w, http.StatusNotFound, ld.MsgNotFound)
			return
		}
		if len(tok.Projects) > 0 && !slices.Contains(tok.Projects, project) {
			writeLDError(w, http.StatusForbidden, ld.MsgForbidden)
			return
		}
		if write && tok.ReadOnly {
			writeLDError(w, http.StatusForbidden, ld.MsgForbidden)
			return
		}
		next(w, r, tok.Tenant, project)
	}
}

func (a *launchDarklyAPI) metrics(ctx context.Context, tenant string) (*definitions.Collection[ld.Metric], error) {
	return definitions.CollectionOf[ld.Metric](ctx, a.r.registry, definitions.KindLaunchDarklyMetric, tenant)
}

func ldKey(project, metric string) string { return project + "/" + metric }

func (a *launchDarklyAPI) list(w http.ResponseWriter, r *http.Request, tenant, project string) {
	q := r.URL.Query()
	limit, offset := ldDefaultLimit, 0
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > ldMaxLimit {
			writeLDError(w, http.StatusBadRequest, "limit must be an integer between 1 and 50")
			return
		}
		limit = n
	}
	if v := q.Get("offset"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeLDError(w, http.StatusBadRequest, "offset must be a non-negative integer")
			return
		}
		offset = n
	}
	var wantTags []string
	if f := q.Get("filter"); f != "" {
		rest, ok := strings.CutPrefix(strings.TrimSpace(f), "tags contains ")
		if !ok || json.Unmarshal([]byte(rest), &wantTags) != nil {
			writeLDError(w, http.StatusBadRequest, `unsupported filter: only tags contains ["tag1", ...] is supported`)
			return
		}
	}
	sortBy := q.Get("sort")
	switch sortBy {
	case "", "createdAt", "-createdAt", "name", "-name":
	default:
		writeLDError(w, http.StatusBadRequest, "sort must be createdAt or name, optionally prefixed with '-'")
		return
	}
	c, err := a.metrics(r.Context(), tenant)
	if err != nil {
		a.internalError(w, err)
		return
	}
	var items []ld.Metric
	for _, m := range c.List() {
		if m.Project != project {
			continue
		}
		if !hasAllTags(m.Tags, wantTags) {
			continue
		}
		items = append(items, m)
	}
	switch sortBy {
	case "name", "-name":
		slices.SortStableFunc(items, func(x, y ld.Metric) int { return strings.Compare(ld.Rep(x, "", true).Name, ld.Rep(y, "", true).Name) })
	}
	if strings.HasPrefix(sortBy, "-") {
		slices.Reverse(items)
	}
	total := len(items)
	page := items[min(offset, total):min(offset+limit, total)]
	base := a.base(project)
	out := ld.MetricCollectionRep{Items: make([]ld.MetricRep, 0, len(page)), TotalCount: total, Links: map[string]ld.Link{
		"self": {Href: pageHref(base, limit, offset), Type: "application/json"},
	}}
	for _, m := range page {
		out.Items = append(out.Items, ld.Rep(m, base, true))
	}
	if offset+limit < total {
		out.Links["next"] = ld.Link{Href: pageHref(base, limit, offset+limit), Type: "application/json"}
	}
	if offset > 0 {
		out.Links["prev"] = ld.Link{Href: pageHref(base, limit, max(offset-limit, 0)), Type: "application/json"}
	}
	writeJSON(w, http.StatusOK, out)
}

func pageHref(base string, limit, offset int) string {
	href := base + "?limit=" + strconv.Itoa(limit)
	if offset > 0 {
		href += "&offset=" + strconv.Itoa(offset)
	}
	return href
}

func hasAllTags(have, want []string) bool {
	for _, t := range want {
		if !slices.Contains(have, t) {
			return false
		}
	}
	return true
}

func (a *launchDarklyAPI) create(w http.ResponseWriter, r *http.Request, tenant, project string) {
	body, ok := readBody(w, r, writeLDError)
	if !ok {
		return
	}
	fields, err := ld.ParsePost(body)
	if err != nil {
		writeLDError(w, http.StatusBadRequest, err.Error())
		return
	}
	if le := a.checkFields(fields); le != nil {
		writeLDError(w, le.Status, le.Error())
		return
	}
	if err := ldUnsupported(fields); err != nil {
		writeLDError(w, http.StatusBadRequest, err.Error())
		return
	}
	c, err := a.metrics(r.Context(), tenant)
	if err != nil {
		a.internalError(w, err)
		return
	}
	now := a.now()
	created, err := c.Create(r.Context(), ldKey(project, fields.Key), func(int64) (ld.Metric, error) {
		return ld.Metric{
			Fields: fields, ID: newObjectID(), VersionID: newObjectID(), Project: project,
			CreationDate: now.UnixMilli(), LastModified: now, Version: 1,
		}, nil
	})
	switch {
	case errors.Is(err, definitions.ErrExists):
		writeLDError(w, http.StatusConflict, ld.MsgConflictKey)
	case err != nil:
		a.internalError(w, err)
	default:
		writeJSON(w, http.StatusCreated, ld.Rep(created, a.base(project), false))
	}
}

func (a *launchDarklyAPI) get(w http.ResponseWriter, r *http.Request, tenant, project string) {
	c, err := a.metrics(r.Context(), tenant)
	if err != nil {
		a.internalError(w, err)
		return
	}
	m, ok := c.Get(ldKey(project, r.PathValue("metric")))
	// versionId asks for one version of the metric. Only the current one is
	// kept (every effective patch gives a new _versionId), so another answers
	// 404, as LaunchDarkly answers a version it does not know.
	if v := r.URL.Query().Get("versionId"); ok && v != "" && v != m.VersionID {
		ok = false
	}
	if !ok {
		writeLDError(w, http.StatusNotFound, ld.MsgNotFound)
		return
	}
	writeJSON(w, http.StatusOK, ld.Rep(m, a.base(project), false))
}

func (a *launchDarklyAPI) delete(w http.ResponseWriter, r *http.Request, tenant, project string) {
	c, err := a.metrics(r.Context(), tenant)
	if err != nil {
		a.internalError(w, err)
		return
	}
	if _, err := c.Delete(r.Context(), ldKey(project, r.PathValue("metric"))); err != nil {
		if errors.Is(err, definitions.ErrNotFound) {
			writeLDError(w, http.StatusNotFound, ld.MsgNotFound)
			return
		}
		a.internalError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// ldPatchError is a refused patch, with LaunchDarkly's status and code.
type ldPatchError struct {
	status int
	code   string
	msg    string
}

func (e *ldPatchError) Error() string { return e.msg }

// parseLDPatch reads a JSON Patch array, or LaunchDarkly's {"patch": [...], "comment": "..."}.
func parseLDPatch(body []byte) (jsonpatch.Patch, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) > 0 && trimmed[0] == '{' {
		var wrapped struct {
			Patch        *[]json.RawMessage `json:"patch"`
			Comment      *string            `json:"comment"`
			Instructions json.RawMessage    `json:"instructions"`
		}
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&wrapped); err != nil {
			return nil, errors.New("invalid request body: expected a JSON Patch array or {\"patch\": [...], \"comment\": \"...\"}: " + err.Error())
		}
		if wrapped.Instructions != nil {
			return nil, errors.New("semantic patch (instructions) is not supported for metrics; send a JSON Patch")
		}
		if wrapped.Patch == nil {
			return nil, errors.New(`invalid request body: "patch" is required`)
		}
		return jsonpatch.ParseOperations(*wrapped.Patch)
	}
	return jsonpatch.Parse(trimmed)
}

func (a *launchDarklyAPI) patch(w http.ResponseWriter, r *http.Request, tenant, project string) {
	body, ok := readBody(w, r, writeLDError)
	if !ok {
		return
	}
	ops, err := parseLDPatch(body)
	if err != nil {
		writeLDError(w, http.StatusBadRequest, err.Error())
		return
	}
	for i, op := range ops {
		if op.Op == jsonpatch.OpTest {
			continue
		}
		targets := []jsonpatch.Pointer{op.Path}
		if op.Op == jsonpatch.OpMove {
			targets = append(targets, op.From)
		}
		for _, p := range targets {
			if len(p) == 0 {
				writeLDError(w, http.StatusBadRequest, "operation "+strconv.Itoa(i)+": the whole metric cannot be replaced")
				return
			}
			if ld.ServerManaged[p[0]] {
				writeLDError(w, http.StatusBadRequest, "operation "+strconv.Itoa(i)+": /"+p[0]+" cannot be changed")
				return
			}
		}
	}
	c, err := a.metrics(r.Context(), tenant)
	if err != nil {
		a.internalError(w, err)
		return
	}
	key := ldKey(project, r.PathValue("metric"))
	base := a.base(project)
	updated, err := c.Put(r.Context(), key, func(cur ld.Metric, exists bool) (ld.Metric, error) {
		if !exists {
			return cur, definitions.ErrNotFound
		}
		next, same, err := applyLDPatch(cur, ops, base)
		if err != nil {
			return cur, err
		}
		if same { // an empty or no-op patch answers the metric as it is, version unchanged
			return cur, nil
		}
		if le := a.checkFields(next.Fields); le != nil {
			return cur, &ldPatchError{status: le.Status, code: ld.CodeInvalidRequest, msg: le.Error()}
		}
		if err := ldUnsupported(next.Fields); err != nil {
			return cur, &ldPatchError{status: http.StatusBadRequest, code: ld.CodeInvalidRequest, msg: err.Error()}
		}
		now := a.now()
		next.VersionID = newObjectID()
		next.LastModified = now
		next.Version = cur.Version + 1
		return next, nil
	})
	var pe *ldPatchError
	switch {
	case errors.Is(err, definitions.ErrNotFound):
		writeLDError(w, http.StatusNotFound, ld.MsgNotFound)
	case errors.As(err, &pe):
		writeJSON(w, pe.status, ld.ErrorRep{Code: pe.code, Message: pe.msg})
	case err != nil:
		a.internalError(w, err)
	default:
		writeJSON(w, http.StatusOK, ld.Rep(updated, base, false))
	}
}

// applyLDPatch applies ops to the metric's representation and reads the
// result back as the metric's fields, refusing anything that is not a valid
// metric. same is true when nothing changed.
func applyLDPatch(cur ld.Metric, ops jsonpatch.Patch, base string) (next ld.Metric, same bool, err error) {
	invalid := func(msg string) error {
		return &ldPatchError{status: http.StatusBadRequest, code: ld.CodeInvalidRequest, msg: msg}
	}
	raw, err := json.Marshal(ld.Rep(cur, base, false))
	if err != nil {
		return cur, false, err
	}
	doc, err := jsonpatch.Decode(raw)
	if err != nil {
		return cur, false, err
	}
	out, err := ops.Apply(doc)
	if err != nil {
		if errors.Is(err, jsonpatch.ErrTestFailed) {
			return cur, false, &ldPatchError{status: http.StatusConflict, code: ld.CodeOptimisticLocking, msg: err.Error()}
		}
		return cur, false, invalid(err.Error())
	}
	obj, ok := out.(map[string]any)
	if !ok {
		return cur, false, invalid("the patched metric is not a JSON object")
	}
	if jsonpatch.Equal(doc, out) {
		return cur, true, nil
	}
	before := doc.(map[string]any)
	for m := range ld.ServerManaged {
		if !jsonpatch.Equal(before[m], obj[m]) {
			return cur, false, invalid("/" + m + " cannot be changed")
		}
		delete(obj, m)
	}
	obj["key"], obj["kind"] = cur.Key, cur.Kind
	fieldsJSON, err := json.Marshal(obj)
	if err != nil {
		return cur, false, invalid(err.Error())
	}
	fields, err := ld.DecodeFields(fieldsJSON)
	if err != nil {
		return cur, false, invalid(err.Error())
	}
	if err := fields.Validate(); err != nil {
		return cur, false, invalid("the patch would leave the metric invalid: " + err.Error())
	}
	next = cur
	next.Fields = fields
	return next, false, nil
}

// checkFields applies the limits to a metric's names and keys: key (the
// emitted metric's name) and name; eventKey and tags.
func (a *launchDarklyAPI) checkFields(f ld.Fields) *limitError {
	limits := a.r.cfg.Limits
	errs := []*limitError{limits.name("key", f.Key)}
	if f.Name != nil {
		errs = append(errs, limits.name("name", *f.Name))
	}
	if f.EventKey != nil {
		errs = append(errs, limits.key("eventKey", *f.EventKey))
	}
	for _, t := range f.Tags {
		errs = append(errs, limits.key("a tag", t))
	}
	if f.MaintainerID != nil {
		errs = append(errs, limits.key("maintainerId", *f.MaintainerID))
	}
	return firstLimitError(errs...)
}

// errPercentile refuses analysisType percentile: the events' values are
// aggregated per window as an average or a sum (unitAggregationType), and a
// percentile metric stored here would silently be averaged.
var errPercentile = errors.New(`analysisType "percentile" is not supported by this collector: a metric's values are aggregated per window as an average or a sum (unitAggregationType); use analysisType "mean"`)

// ldUnsupported refuses what LaunchDarkly accepts but this receiver cannot
// honour, rather than storing a metric that would mean something else here.
func ldUnsupported(f ld.Fields) error {
	if f.AnalysisType != nil && *f.AnalysisType == ld.AnalysisPercentile {
		return errPercentile
	}
	return nil
}

func (a *launchDarklyAPI) internalError(w http.ResponseWriter, err error) {
	storeFailure(w, a.r.settings.Logger, apiLaunchDarkly, err, writeLDError, "An internal error occurred")
}

// newObjectID returns 24 random hex digits, the shape of LaunchDarkly's _id and _versionId.
func newObjectID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// minuteLimiter allows n requests per credential per calendar minute; n == 0 allows all.
type minuteLimiter struct {
	n      int
	mu     sync.Mutex
	minute int64
	counts map[string]int
}

func newMinuteLimiter(n int) *minuteLimiter {
	return &minuteLimiter{n: n, counts: map[string]int{}}
}

// allow counts one request; when refused it returns the seconds until the next minute.
func (l *minuteLimiter) allow(credential string, now time.Time) (int, bool) {
	if l.n <= 0 {
		return 0, true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if m := now.Unix() / 60; m != l.minute {
		l.minute = m
		clear(l.counts)
	}
	if l.counts[credential] >= l.n {
		return int(60 - now.Unix()%60), false
	}
	l.counts[credential]++
	return 0, true
}
