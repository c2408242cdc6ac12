package custommetricsexporter // import "github.com/custommetrics/bundle/exporter/custommetricsexporter"

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.uber.org/zap"

	"github.com/custommetrics/bundle/internal/wire/bigfix"
)

type bigfixForwarder struct {
	e    *customMetricsExporter
	cfg  *BigFixConfig
	base string

	mu sync.Mutex
	// docs holds each tag's document as last posted: a POST replaces the
	// whole document, so values of earlier batches are carried along.
	docs map[string]map[string]any
	// dates holds the date of each member's value, so an older value does
	// not overwrite a newer one.
	dates map[string]pcommon.Timestamp
	// loaded marks the tags whose stored state was read (or found absent).
	loaded map[string]bool
}

func newBigFixForwarder(e *customMetricsExporter, cfg *BigFixConfig) *bigfixForwarder {
	return &bigfixForwarder{
		e: e, cfg: cfg, base: strings.TrimRight(cfg.Endpoint, "/") + bigfix.DocumentsPath + "/",
		docs: map[string]map[string]any{}, dates: map[string]pcommon.Timestamp{}, loaded: map[string]bool{},
	}
}

// forward merges the batch's newest value of every member into its tag's
// document and POSTs each changed document once.
func (b *bigfixForwarder) forward(ctx context.Context, points []point, o *outcome) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var order []string
	refs := map[string][]pointRef{}
	next := map[string]map[string]any{}
	dates := map[string]pcommon.Timestamp{}
	for _, p := range points {
		var m *BigFixTag
		for i := range b.cfg.Tags {
			if b.cfg.Tags[i].matches(p.metric) {
				m = &b.cfg.Tags[i]
				break
			}
		}
		if m == nil {
			o.finish(p.ref)
			continue
		}
		doc, ok := next[m.Tag]
		if !ok {
			if err := b.load(ctx, m.Tag); err != nil {
				return err // retryable: nothing of this batch was posted for this tag yet
			}
			doc = copyDoc(b.docs[m.Tag])
			next[m.Tag] = doc
			order = append(order, m.Tag)
		}
		refs[m.Tag] = append(refs[m.Tag], p.ref)
		field := m.Field
		if field == "" {
			field = p.metric
		}
		date := p.ts
		if p.figure {
			date = p.start
		}
		member := m.Tag + "\x00" + field
		if m.KeyAttribute != "" {
			key := ""
			if v, ok := p.attrs.Get(m.KeyAttribute); ok {
				key = v.AsString()
			}
			member += "\x00" + key
			if d, ok := dates[member]; ok && date < d {
				continue
			}
			if d, ok := b.dates[member]; ok && date < d {
				continue
			}
			sub, _ := doc[field].(map[string]any)
			if sub == nil {
				sub = map[string]any{}
			}
			sub[key] = p.value
			doc[field] = sub
		} else {
			if d, ok := dates[member]; ok && date < d {
				continue
			}
			if d, ok := b.dates[member]; ok && date < d {
				continue
			}
			doc[field] = p.value
		}
		dates[member] = date
	}
	for _, tag := range order {
		req, err := jsonRequest(http.MethodPost, b.base+url.PathEscape(tag), next[tag])
		if err != nil {
			o.fail(err, refs[tag]...)
			continue
		}
		req.SetBasicAuth(b.cfg.Username, string(b.cfg.Password))
		if _, err := b.e.do(ctx, apiBigFix, req); err != nil {
			if consumererror.IsPermanent(err) {
				o.fail(err, refs[tag]...)
				continue
			}
			return err
		}
		b.docs[tag] = next[tag]
		for member, d := range dates {
			if strings.HasPrefix(member, tag+"\x00") {
				b.dates[member] = d
			}
		}
		if err := b.save(ctx, tag); err != nil {
			b.e.logger.Warn("Could not keep the BigFix document; after a restart it starts empty again", zap.String("tag", tag), zap.Error(err))
		}
		o.finish(refs[tag]...)
	}
	return nil
}

// bigfixState is a tag's document as last posted and the dates of its
// members' values, as kept in the storage extension.
type bigfixState struct {
	Doc   map[string]any   `json:"doc"`
	Dates map[string]int64 `json:"dates"` // member (tag\x00field[\x00key]) -> date (unix ns)
}

func bigfixStateKey(tag string) string { return "bigfix/" + tag }

// load brings a tag's stored state into memory the first time the tag is seen.
func (b *bigfixForwarder) load(ctx context.Context, tag string) error {
	if _, ok := b.docs[tag]; ok || b.loaded[tag] {
		return nil
	}
	var st bigfixState
	ok, err := b.e.loadState(ctx, bigfixStateKey(tag), &st)
	if err != nil {
		return err
	}
	b.loaded[tag] = true
	if ok && st.Doc != nil {
		b.docs[tag] = st.Doc
		for member, d := range st.Dates {
			b.dates[member] = pcommon.Timestamp(d)
		}
	}
	return nil
}

func (b *bigfixForwarder) save(ctx context.Context, tag string) error {
	st := bigfixState{Doc: b.docs[tag], Dates: map[string]int64{}}
	for member, d := range b.dates {
		if strings.HasPrefix(member, tag+"\x00") {
			st.Dates[member] = int64(d)
		}
	}
	return b.e.saveState(ctx, bigfixStateKey(tag), st)
}

func copyDoc(d map[string]any) map[string]any {
	out := make(map[string]any, len(d))
	for k, v := range d {
		if sub, ok := v.(map[string]any); ok {
			c := make(map[string]any, len(sub))
			for sk, sv := range sub {
				c[sk] = sv
			}
			v = c
		}
		out[k] = v
	}
	return out
}
