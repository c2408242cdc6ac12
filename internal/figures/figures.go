// Package figures carries the window figures that the aggregate processor
// computes for a batch back to the receiver that sent it, through the
// batch's context. It is the only way a receiver learns the running
// aggregate of the window a value was just added to (ThreatConnect's
// ?returnValue=true): receivers keep no window state of their own.
//
// A receiver that must answer with a running aggregate puts a Slot in the
// context it passes to the pipeline (NewContext). The pipeline is
// synchronous up to the aggregate processor, which adds the batch's values
// to their windows, makes them durable and, before it returns, records each
// touched window's new state in the slot (Put). So when ConsumeMetrics
// returns nil, the slot holds the figures that include the values just
// acknowledged, taken from the same windows the processor emits and stores.
//
// That only holds when every component before the aggregate processor
// passes the batch on before it returns, with the same context. A batch
// processor or an exporter's sending queue does not: it returns at once and
// sends later, with another context, so the slot comes back empty. Such a
// pipeline is found at start-up, not at the first request: the receiver
// calls Probe, which sends an empty batch in a context carrying a probe
// slot. A component that fills slots answers a probe (Slot.Probe, then
// Slot.Answer) and returns without passing it on; Probe reports whether an
// answer came before ConsumeMetrics returned. When none did, the receiver
// refuses to start. An empty slot after a successful ConsumeMetrics is then
// a bug (or a pipeline changed at runtime), never a reason to make a figure
// up.
package figures // import "github.com/custommetrics/bundle/internal/figures"

import (
	"context"
	"sync"

	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/pmetric"

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
	probe bool // set by Probe: the batch is empty and must not be passed on

	mu       sync.Mutex
	figs     []Figure
	answered bool
	closed   bool // Probe has read answered: later answers were not synchronous
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

// Probe reports whether the slot came from Probe. A component that fills
// slots then calls Answer and returns nil without passing the batch on.
func (s *Slot) Probe() bool { return s.probe }

// Answer records that a component that fills slots received the probe.
// An answer after Probe returned does not count.
func (s *Slot) Answer() {
	s.mu.Lock()
	if !s.closed {
		s.answered = true
	}
	s.mu.Unlock()
}

// Probe sends an empty batch through next in a context carrying a probe
// slot, and reports whether a component that fills slots answered it before
// next.ConsumeMetrics returned. With a fan-out to several pipelines, one
// answer is enough: the other pipelines receive the empty batch. err is
// next's refusal, if any.
func Probe(ctx context.Context, next consumer.Metrics) (answered bool, err error) {
	s := &Slot{probe: true}
	err = next.ConsumeMetrics(context.WithValue(ctx, ctxKey{}, s), pmetric.NewMetrics())
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return s.answered, err
}
