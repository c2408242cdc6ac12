package custommetricsreceiver // import "github.com/custommetrics/bundle/receiver/custommetricsreceiver"

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.uber.org/zap"

	"github.com/custommetrics/bundle/internal/definitions"
	"github.com/custommetrics/bundle/internal/otelmap"
	"github.com/custommetrics/bundle/internal/wire/bigfix"
	tc "github.com/custommetrics/bundle/internal/wire/threatconnect"
)

// bigFixAPI serves BigFix's deployment metrics REST API.
type bigFixAPI struct {
	r   *customMetricsReceiver
	cfg BigFixConfig
	now func() time.Time
	// creds are cfg.Users' credentials, index for index.
	creds []bigFixCredential
}

func newBigFixAPI(r *customMetricsReceiver) *bigFixAPI {
	a := &bigFixAPI{r: r, cfg: r.cfg.BigFix, now: time.Now}
	for _, u := range a.cfg.Users {
		a.creds = append(a.creds, newBigFixCredential(u.Username, string(u.Password)))
	}
	return a
}

// bigFixCredential is a username and password as SHA-256 digests: comparing
// digests of equal length takes the same time whatever the secrets' lengths.
type bigFixCredential struct {
	user, pass [sha256.Size]byte
}

func newBigFixCredential(user, pass string) bigFixCredential {
	return bigFixCredential{user: sha256.Sum256([]byte(user)), pass: sha256.Sum256([]byte(pass))}
}

// compare compares the usernames and the passwords, always both, in constant
// time; each result is 1 when that half matches, else 0.
func (c bigFixCredential) compare(given bigFixCredential) (userOK, passOK int) {
	return subtle.ConstantTimeCompare(c.user[:], given.user[:]), subtle.ConstantTimeCompare(c.pass[:], given.pass[:])
}

func (a *bigFixAPI) register(mux *http.ServeMux) {
	base := a.cfg.PathPrefix + bigfix.DocumentsPath
	mux.Handle(base, methods(writeBigFixError, map[string]http.HandlerFunc{
		http.MethodGet: a.auth(false, a.list),
	}))
	mux.Handle(base+"/{tag}", methods(writeBigFixError, map[string]http.HandlerFunc{
		http.MethodGet:  a.auth(false, a.get),
		http.MethodPost: a.auth(true, a.post),
	}))
}

// writeBigFixError answers in plain text, as the BigFix REST API does.
func writeBigFixError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(msg))
}

type bigFixHandler func(w http.ResponseWriter, r *http.Request, tenant string)

// auth checks HTTP Basic credentials against the document's roles: reading is
// for master operators only; writing is for operators and master operators.
func (a *bigFixAPI) auth(write bool, next bigFixHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if len(a.cfg.Users) == 0 {
			next(w, r, "")
			return
		}
		user, pass, ok := r.BasicAuth()
		var found *BigFixUser
		if ok {
			given := newBigFixCredential(user, pass)
			// Username and password are both compared, for every user, with no
			// early exit: the time taken does not tell which user or which half matched.
			for i, c := range a.creds {
				userOK, passOK := c.compare(given)
				if userOK&passOK == 1 && found == nil {
					found = &a.cfg.Users[i]
				}
			}
		}
		if found == nil {
			w.Header().Set("WWW-Authenticate", `Basic realm="BigFix"`)
			writeBigFixError(w, http.StatusUnauthorized, "Unauthorized")
			return
		}
		if !write && found.Role != RoleMasterOperator {
			writeBigFixError(w, http.StatusForbidden, "Forbidden: this method can be invoked by master operators only")
			return
		}
		next(w, r, found.Tenant)
	}
}

func (a *bigFixAPI) documents(ctx context.Context, tenant string) (*definitions.Collection[bigfix.Document], error) {
	return definitions.CollectionOf[bigfix.Document](ctx, a.r.registry, definitions.KindBigFixDocument, tenant)
}

func (a *bigFixAPI) list(w http.ResponseWriter, r *http.Request, tenant string) {
	c, err := a.documents(r.Context(), tenant)
	if err != nil {
		a.internalError(w, err)
		return
	}
	docs := append([]bigfix.Document{a.platform(r.Context(), tenant)}, c.List()...)
	writeJSON(w, http.StatusOK, docs)
}

func (a *bigFixAPI) get(w http.ResponseWriter, r *http.Request, tenant string) {
	tag := r.PathValue("tag")
	if tag == bigfix.PlatformTag {
		writeJSON(w, http.StatusOK, a.platform(r.Context(), tenant))
		return
	}
	c, err := a.documents(r.Context(), tenant)
	if err != nil {
		a.internalError(w, err)
		return
	}
	doc, ok := c.Get(tag)
	if !ok {
		writeBigFixError(w, http.StatusNotFound, "Not Found: no deployment metrics tagged "+tag)
		return
	}
	writeJSON(w, http.StatusOK, doc)
}

func (a *bigFixAPI) post(w http.ResponseWriter, r *http.Request, tenant string) {
	tag := r.PathValue("tag")
	if tag == bigfix.PlatformTag {
		writeBigFixError(w, http.StatusForbidden, "Forbidden: the platform tag is reserved to the server collected metrics")
		return
	}
	if le := a.r.cfg.Limits.name("tag", tag); le != nil {
		writeBigFixError(w, le.Status, "Bad Request: "+le.Error())
		return
	}
	body, ok := readBody(w, r, writeBigFixError)
	if !ok {
		return
	}
	metrics, err := bigfix.Metrics(body)
	if err != nil {
		writeBigFixError(w, http.StatusBadRequest, "Bad Request: "+err.Error())
		return
	}
	leaves, err := bigfix.Leaves(metrics, tag)
	if err != nil {
		writeBigFixError(w, http.StatusBadRequest, "Bad Request: "+err.Error())
		return
	}
	if le := a.checkLeaves(leaves); le != nil {
		writeBigFixError(w, le.Status, http.StatusText(le.Status)+": "+le.Error())
		return
	}
	now := a.now().UTC()
	c, err := a.documents(r.Context(), tenant)
	if err != nil {
		a.internalError(w, err)
		return
	}
	// The document first, then its values: a document that cannot be stored
	// refuses the request before anything is counted, and values the
	// pipeline refuses put the previous document back.
	var prev bigfix.Document
	var existed bool
	doc, err := c.Put(r.Context(), tag, func(cur bigfix.Document, exists bool) (bigfix.Document, error) {
		prev, existed = cur, exists
		return bigfix.Document{Tag: tag, Metrics: metrics, LastChanged: now.Format(bigfix.TimeLayout)}, nil
	})
	if err != nil {
		a.internalError(w, err)
		return
	}
	batch := otelmap.NewBatch(apiBigFix, tenant, a.r.settings.BuildInfo.Version)
	ts := pcommon.NewTimestampFromTime(now)
	for _, leaf := range leaves {
		batch.Add(leaf.Name, "", bigFixDefinition, otelmap.Value{Key: strconv.Itoa(leaf.Member), Value: leaf.Value, Time: ts})
	}
	if md, n := batch.Metrics(); n > 0 {
		if err := a.r.consume(r.Context(), apiBigFix, md, n); err != nil {
			// The undo belongs to the refusal, not to the client's wait. It
			// puts the previous document back only while this post's is
			// still the current one: a post accepted meanwhile keeps its own.
			undoCtx := context.WithoutCancel(r.Context())
			ours := func(cur bigfix.Document) error {
				if cur.Tag != doc.Tag || cur.LastChanged != doc.LastChanged || !bytes.Equal(cur.Metrics, doc.Metrics) {
					return errSuperseded
				}
				return nil
			}
			var undoErr error
			if existed {
				_, undoErr = c.Put(undoCtx, tag, func(cur bigfix.Document, exists bool) (bigfix.Document, error) {
					if !exists {
						return cur, errSuperseded
					}
					return prev, ours(cur)
				})
			} else {
				_, undoErr = c.DeleteIf(undoCtx, tag, ours)
			}
			if errors.Is(undoErr, errSuperseded) || errors.Is(undoErr, definitions.ErrNotFound) {
				undoErr = nil // another post changed or deleted it since: that one stands
			}
			if undoErr != nil {
				a.r.settings.Logger.Error("Restoring a BigFix document after its values were refused failed", zap.String("tag", tag), zap.Error(undoErr))
			}
			status, msg := refusal(err)
			if status == http.StatusServiceUnavailable {
				w.Header().Set("Retry-After", retryAfterSeconds)
			}
			writeBigFixError(w, status, msg)
			return
		}
	}
	writeJSON(w, http.StatusOK, doc)
}

// errSuperseded: the document a refused post would undo was changed since.
var errSuperseded = errors.New("the document was changed by a later request")

// checkLeaves applies the limits to the values a body produces: their number,
// and their metric names ("<tag>.<JSON path>", so object keys count too).
func (a *bigFixAPI) checkLeaves(leaves []bigfix.Leaf) *limitError {
	limits := a.r.cfg.Limits
	if le := limits.points(len(leaves)); le != nil {
		return le
	}
	for _, l := range leaves {
		if le := limits.name("metric name (tag and JSON path)", l.Name); le != nil {
			return le
		}
	}
	return nil
}

// bigFixDefinition: a BigFix value is keyed by its collection member, so
// that a metric's name does not change when a tag gains members.
var bigFixDefinition = otelmap.Definition{Keyed: true}

// platform answers the reserved tag with the collector's own figures, as far
// as they concern tenant: its definitions and its values (uptime is shared).
func (a *bigFixAPI) platform(ctx context.Context, tenant string) bigfix.Document {
	figures := map[string]string{
		"uptime_seconds": strconv.FormatInt(int64(a.now().Sub(a.r.started).Seconds()), 10),
	}
	if c, err := definitions.CollectionOf[tc.MetricConfig](ctx, a.r.registry, definitions.KindThreatConnectMetric, tenant); err == nil {
		figures["definitions_threatconnect"] = strconv.Itoa(c.Len())
	}
	if c, err := a.documents(ctx, tenant); err == nil {
		figures["definitions_bigfix"] = strconv.Itoa(c.Len())
	}
	// The tenant's own counters only: another tenant's traffic is not its business.
	accepted, refused := a.r.stats.counts(tenant)
	for _, api := range valueAPIs {
		figures["values_accepted_"+api] = strconv.FormatInt(accepted[api], 10)
		figures["values_refused_"+api] = strconv.FormatInt(refused[api], 10)
	}
	raw, _ := json.Marshal([]map[string]string{figures})
	return bigfix.Document{Tag: bigfix.PlatformTag, Metrics: raw, LastChanged: a.now().UTC().Format(bigfix.TimeLayout)}
}

func (a *bigFixAPI) internalError(w http.ResponseWriter, err error) {
	storeFailure(w, a.r.settings.Logger, apiBigFix, err, writeBigFixError, "Internal Server Error")
}
