package custommetricsexporter // import "github.com/custommetrics/bundle/exporter/custommetricsexporter"

import (
	"context"
	"net/http"
	"strings"
	"sync"

	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/custommetrics/bundle/internal/wire/sleuth"
)

type sleuthForwarder struct {
	e    *customMetricsExporter
	cfg  *SleuthConfig
	base string

	mu sync.Mutex
	// last is the date of the last value registered per impact source:
	// older values are not registered after it.
	last map[int64]pcommon.Timestamp
}

func newSleuthForwarder(e *customMetricsExporter, cfg *SleuthConfig) *sleuthForwarder {
	return &sleuthForwarder{e: e, cfg: cfg, base: strings.TrimRight(cfg.Endpoint, "/"), last: map[int64]pcommon.Timestamp{}}
}

// forward registers, per impact source, the newest value of the batch (by
// date; for a window figure the date is the window start). Sleuth takes one
// registration per impact source every 120 s, so older values of the same
// batch are superseded, not sent. A 429 becomes a throttled retry after
// Retry-After.
func (s *sleuthForwarder) forward(ctx context.Context, points []point, o *outcome) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	type pick struct {
		p    point
		date pcommon.Timestamp
		refs []pointRef
	}
	var order []int64
	picks := map[int64]*pick{}
	for _, p := range points {
		var imp *SleuthImpact
		for i := range s.cfg.Impacts {
			if s.cfg.Impacts[i].matches(p.metric) {
				imp = &s.cfg.Impacts[i]
				break
			}
		}
		if imp == nil {
			o.finish(p.ref)
			continue
		}
		date := p.ts
		if p.figure {
			date = p.start
		}
		pk := picks[imp.ImpactID]
		if pk == nil {
			pk = &pick{p: p, date: date}
			picks[imp.ImpactID] = pk
			order = append(order, imp.ImpactID)
		} else if date >= pk.date {
			pk.p, pk.date = p, date
		}
		pk.refs = append(pk.refs, p.ref)
	}
	for _, id := range order {
		pk := picks[id]
		if last, ok := s.last[id]; ok && pk.date < last {
			o.finish(pk.refs...) // older than what Sleuth already has
			continue
		}
		req, err := jsonRequest(http.MethodPost, s.base+sleuth.ImpactPath(id),
			sleuth.Registration{Value: pk.p.value, Date: pk.date.AsTime().UTC().Format(sleuth.DateLayout)})
		if err != nil {
			o.fail(err, pk.refs...)
			continue
		}
		req.Header.Set("Authorization", sleuth.Authorization(string(s.cfg.APIKey)))
		if _, err := s.e.do(ctx, apiSleuth, req); err != nil {
			if consumererror.IsPermanent(err) {
				o.fail(err, pk.refs...)
				continue
			}
			return err
		}
		s.last[id] = pk.date
		o.finish(pk.refs...)
	}
	return nil
}
