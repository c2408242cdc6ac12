package custommetricsexporter // import "github.com/custommetrics/bundle/exporter/custommetricsexporter"

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/pdata/pcommon"
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
}

func newBigFixForwarder(e *customMetricsExporter, cfg *BigFixConfig) *bigfixForwarder {
	return &bigfixForwarder{
		e: e, cfg: cfg, base: strings.TrimRight(cfg.Endpoint, "/") + "/api/deploymentmetrics/",
		docs: map[string]map[string]any{}, dates: map[string]pcommon.Timestamp{},
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
		o.finish(refs[tag]...)
	}
	return nil
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
