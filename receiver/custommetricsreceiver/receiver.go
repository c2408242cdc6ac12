package custommetricsreceiver // import "github.com/custommetrics/bundle/receiver/custommetricsreceiver"

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componentstatus"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/receiver"
	"go.uber.org/zap"
)

// customMetricsReceiver serves the vendor APIs on one HTTP server.
type customMetricsReceiver struct {
	cfg      *Config
	settings receiver.Settings
	next     consumer.Metrics

	server   *http.Server
	shutdown sync.WaitGroup
}

func newReceiver(cfg *Config, set receiver.Settings, next consumer.Metrics) *customMetricsReceiver {
	return &customMetricsReceiver{cfg: cfg, settings: set, next: next}
}

func (r *customMetricsReceiver) Start(ctx context.Context, host component.Host) error {
	mux := http.NewServeMux()
	var err error
	if r.server, err = r.cfg.ToServer(ctx, host.GetExtensions(), r.settings.TelemetrySettings, mux); err != nil {
		return err
	}
	var ln net.Listener
	if ln, err = r.cfg.ToListener(ctx); err != nil {
		return err
	}
	r.settings.Logger.Info("Starting HTTP server", zap.String("endpoint", ln.Addr().String()))
	r.shutdown.Add(1)
	go func() {
		defer r.shutdown.Done()
		if errHTTP := r.server.Serve(ln); errHTTP != nil && !errors.Is(errHTTP, http.ErrServerClosed) {
			componentstatus.ReportStatus(host, componentstatus.NewFatalErrorEvent(errHTTP))
		}
	}()
	return nil
}

func (r *customMetricsReceiver) Shutdown(ctx context.Context) error {
	var err error
	if r.server != nil {
		err = r.server.Shutdown(ctx)
	}
	r.shutdown.Wait()
	return err
}
