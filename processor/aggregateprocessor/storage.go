package aggregateprocessor // import "github.com/custommetrics/bundle/processor/aggregateprocessor"

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componentstatus"
	"go.opentelemetry.io/collector/extension/xextension/storage"
	"go.uber.org/zap"

	"github.com/custommetrics/bundle/internal/storageclient"
)

func openStorage(ctx context.Context, host component.Host, id, self component.ID) (storage.Client, error) {
	client, err := storageclient.Open(ctx, host, id, component.KindProcessor, self)
	if err != nil {
		return nil, err
	}
	if _, ok := client.(storage.Walker); !ok {
		_ = client.Close(ctx)
		return nil, fmt.Errorf("storage extension %q cannot list its entries (storage.Walker), which the aggregate processor needs to find open windows after a restart; file_storage can", id)
	}
	return client, nil
}

// committed is told of every commit round of the windows (windows.Config).
func (p *aggProcessor) committed(n int, err error) {
	ctx := context.Background()
	if err != nil {
		p.commitFailed(err)
		return
	}
	p.tel.ProcessorAggregateCommits.Add(ctx, 1)
	p.tel.ProcessorAggregateCommittedWindows.Add(ctx, int64(n))
	p.health.ok(p)
}

// commitFailed counts a failed commit round and reports it through health.
func (p *aggProcessor) commitFailed(err error) {
	p.tel.ProcessorAggregateCommitsFailed.Add(context.Background(), 1)
	p.health.failed(p, err)
}

// health reports storage failures through componentstatus (so that
// health_check shows them) when commits start failing, and recovery once
// commits have succeeded for healthQuiet with no failure: a store that is
// nearly full fails some commits and passes others, and must not flap.
type health struct {
	host component.Host

	mu       sync.Mutex
	failing  bool
	lastFail time.Time
	lastOK   time.Time
	timer    *time.Timer
	stopped  bool
}

const healthQuiet = time.Second

func (h *health) failed(p *aggProcessor, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lastFail = time.Now()
	if !h.failing && !h.stopped {
		h.failing = true
		p.logger.Error("Writing window states to storage failed; refusing values (retryable) until commits succeed", zap.Error(err))
		componentstatus.ReportStatus(h.host, componentstatus.NewRecoverableErrorEvent(err))
	}
}

func (h *health) ok(p *aggProcessor) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lastOK = time.Now()
	if h.failing && !h.stopped && h.timer == nil {
		h.check(p)
	}
}

// check reports recovery when the last failure is healthQuiet old and a
// commit succeeded since, and otherwise looks again when it may be; a
// failure with no success after it waits for the next ok. Caller holds mu.
func (h *health) check(p *aggProcessor) {
	if !h.lastOK.After(h.lastFail) {
		return
	}
	quiet := time.Since(h.lastFail)
	if quiet >= healthQuiet {
		h.recovered(p)
		return
	}
	h.timer = time.AfterFunc(healthQuiet-quiet, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.timer = nil
		if h.failing && !h.stopped {
			h.check(p)
		}
	})
}

// recovered reports StatusOK. Caller holds mu.
func (h *health) recovered(p *aggProcessor) {
	h.failing = false
	p.logger.Info("Writing window states to storage works again")
	componentstatus.ReportStatus(h.host, componentstatus.NewEvent(componentstatus.StatusOK))
}

func (h *health) stop() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stopped = true
	if h.timer != nil {
		h.timer.Stop()
	}
}
