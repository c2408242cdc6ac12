// Package figures carries the window figures that the aggregate processor
// computes for a batch back to the receiver that sent it, through the
// batch's context.
//
// A receiver that must answer with a running aggregate (ThreatConnect's
// ?returnValue=true) puts a Slot in the context it passes to the pipeline.
// The pipeline is synchronous up to the aggregate processor, which adds the
// batch's values to their windows, makes them durable and, before it
// returns, records each touched window's new state in the slot. So when
// ConsumeMetrics returns nil, the slot holds the figures that include the
// values just acknowledged, taken from the same windows the processor emits
// and stores: one store of running aggregates, one write per value. A slot
// left empty (no aggregate processor on a synchronous path) tells the
// receiver to keep the aggregate itself.
package figures // import "github.com/custommetrics/bundle/internal/figures"

import (
	"context"
	"sync"

	"github.com/custommetrics/bundle/internal/aggregation"
	"github.com/custommetrics/bundle/internal/calendar"
)

// Figure is the state of one window after a batch was added to it.
type Figure struct {
	Metric   string
	Interval calendar.Interval
	// Start is the window's start (Unix ns).
	Start int64
	State aggregation.State
}

// Slot collects the figures of one batch; safe for concurrent use (a batch
// may fan out to several pipelines).
type Slot struct {
	mu   sync.Mutex
	figs []Figure
}

type ctxKey struct{}

// NewContext returns a context carrying a new, empty slot.
func NewContext(ctx context.Context) (context.Context, *Slot) {
	s := &Slot{}
	return context.WithValue(ctx, ctxKey{}, s), s
}

// FromContext returns the context's slot, or nil when nobody asked.
func FromContext(ctx context.Context) *Slot {
	s, _ := ctx.Value(ctxKey{}).(*Slot)
	return s
}

// Put records a window's state after the batch's values were added to it.
// A window touched again later in the same batch is recorded again; Find
// returns the latest.
func (s *Slot) Put(f Figure) {
	s.mu.Lock()
	s.figs = append(s.figs, f)
	s.mu.Unlock()
}

// Find returns the latest figure recorded for metric at interval iv.
func (s *Slot) Find(metric string, iv calendar.Interval) (Figure, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.figs) - 1; i >= 0; i-- {
		if f := s.figs[i]; f.Metric == metric && f.Interval == iv {
			return f, true
		}
	}
	return Figure{}, false
}
