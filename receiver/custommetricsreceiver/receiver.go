package custommetricsreceiver // import "github.com/custommetrics/bundle/receiver/custommetricsreceiver"

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componentstatus"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/receiverhelper"
	"go.uber.org/zap"

	"github.com/custommetrics/bundle/internal/definitions"
	"github.com/custommetrics/bundle/internal/figures"
)

// API names, used in telemetry and as the custommetrics.api resource attribute.
const (
	apiThreatConnect = "threatconnect"
	apiSleuth        = "sleuth"
	apiBigFix        = "bigfix"
	apiLaunchDarkly  = "launchdarkly"
	apiEmbrace       = "embrace"
)

// valueAPIs are the APIs that carry values (Embrace carries definitions only):
// each has its own receiver telemetry and platform counters.
var valueAPIs = []string{apiThreatConnect, apiSleuth, apiBigFix, apiLaunchDarkly}

// customMetricsReceiver serves the vendor APIs on one HTTP server.
type customMetricsReceiver struct {
	cfg      *Config
	settings receiver.Settings
	next     consumer.Metrics
	obs      map[string]*receiverhelper.ObsReport
	started  time.Time

	registry *definitions.Registry
	tc       *threatConnectAPI
	sleuth   *sleuthAPI
	bigfix   *bigFixAPI
	ld       *launchDarklyAPI
	embrace  *embraceAPI
	stats    *apiStats

	server   *http.Server
	shutdown sync.WaitGroup
}

func newReceiver(cfg *Config, set receiver.Settings, next consumer.Metrics) (*customMetricsReceiver, error) {
	r := &customMetricsReceiver{cfg: cfg, settings: set, next: next, obs: map[string]*receiverhelper.ObsReport{}, stats: newAPIStats()}
	for _, api := range valueAPIs {
		// The transport attribute tells the APIs apart in the receiver's own
		// accepted/refused counters (otelcol_receiver_accepted_metric_points...).
		obs, err := receiverhelper.NewObsReport(receiverhelper.ObsReportSettings{
			ReceiverID:             set.ID,
			Transport:              "http/" + api,
			ReceiverCreateSettings: set,
		})
		if err != nil {
			return nil, err
		}
		r.obs[api] = obs
	}
	return r, nil
}

func (r *customMetricsReceiver) Start(ctx context.Context, host component.Host) error {
	r.started = time.Now()
	if err := r.cfg.checkExposure(); err != nil {
		return err
	}
	if err := r.startRegistry(host); err != nil {
		return err
	}
	if err := r.probeFigures(ctx); err != nil {
		return err
	}
	mux := http.NewServeMux()
	if r.cfg.ThreatConnect.Enabled {
		r.warnIfOpen(apiThreatConnect, len(r.cfg.ThreatConnect.Tokens)+len(r.cfg.ThreatConnect.HMACKeys))
		r.tc = newThreatConnectAPI(r)
		r.tc.register(mux)
	}
	if r.cfg.Sleuth.Enabled {
		r.warnIfOpen(apiSleuth, len(r.cfg.Sleuth.APIKeys))
		r.sleuth = newSleuthAPI(r)
		r.sleuth.register(mux)
	}
	if r.cfg.BigFix.Enabled {
		r.warnIfOpen(apiBigFix, len(r.cfg.BigFix.Users))
		r.bigfix = newBigFixAPI(r)
		r.bigfix.register(mux)
	}
	if r.cfg.LaunchDarkly.Enabled {
		r.warnIfOpen(apiLaunchDarkly, len(r.cfg.LaunchDarkly.AccessTokens))
		r.ld = newLaunchDarklyAPI(r)
		r.ld.register(mux)
	}
	var handler http.Handler = mux
	if r.cfg.Embrace.Enabled {
		r.warnIfOpen(apiEmbrace, len(r.cfg.Embrace.Tokens))
		r.embrace = newEmbraceAPI(r)
		handler = r.embrace.wrap(mux)
	}

	var err error
	if r.server, err = r.cfg.ServerConfig.ToServer(ctx, host.GetExtensions(), r.settings.TelemetrySettings, handler); err != nil {
		return err
	}
	var ln net.Listener
	if ln, err = r.cfg.ServerConfig.ToListener(ctx); err != nil {
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

// errNoFigures is why Start fails when no aggregate processor answers the
// returnValue probe; it says how to fix the configuration.
var errNoFigures = errors.New("threatconnect::return_value is true, but no aggregate processor answered the start-up probe synchronously, " +
	"so ?returnValue=true could not be answered: put an aggregate processor in every pipeline of this receiver that should answer returnValue, " +
	"with nothing asynchronous before it (no batch processor), " +
	"or set threatconnect::return_value to false to refuse ?returnValue=true with 400")

// probeFigures checks, before the first request, that the pipeline reports
// the figures behind ThreatConnect's returnValue (internal/figures): the
// Collector starts exporters and processors before receivers, so they
// answer now as they will for every request.
func (r *customMetricsReceiver) probeFigures(ctx context.Context) error {
	if !r.cfg.ThreatConnect.Enabled || !r.cfg.ThreatConnect.ReturnValue {
		return nil
	}
	answered, err := figures.Probe(ctx, r.next)
	switch {
	case err != nil:
		return fmt.Errorf("threatconnect::return_value: the pipeline refused the start-up probe (an empty batch): %w", err)
	case !answered:
		return errNoFigures
	}
	return nil
}

func (r *customMetricsReceiver) startRegistry(host component.Host) error {
	if r.cfg.Definitions == nil {
		r.settings.Logger.Warn("No 'definitions' extension configured: definitions are kept in memory and lost on restart.")
		r.registry = definitions.NewRegistry(&definitions.MemoryBackend{})
		return nil
	}
	ext, ok := host.GetExtensions()[*r.cfg.Definitions]
	if !ok {
		return fmt.Errorf("definitions extension %q not found (is it listed in service::extensions?)", r.cfg.Definitions)
	}
	p, ok := ext.(definitions.Provider)
	if !ok {
		return fmt.Errorf("extension %q is not a definitions extension", r.cfg.Definitions)
	}
	r.registry = p.Registry()
	return nil
}

func (r *customMetricsReceiver) warnIfOpen(api string, credentials int) {
	if credentials == 0 {
		r.settings.Logger.Warn("API has no credentials configured: it is open to every client that reaches the endpoint", zap.String("api", api))
	}
}

func (r *customMetricsReceiver) Shutdown(ctx context.Context) error {
	var err error
	if r.server != nil {
		err = r.server.Shutdown(ctx)
	}
	r.shutdown.Wait()
	if r.cfg.Definitions == nil && r.registry != nil { // the receiver's own registry
		r.registry.Close()
	}
	return err
}

// consume hands md (holding n values, one tenant's, built by
// otelmap.NewBatch) to the pipeline and records the outcome in the receiver's
// telemetry and the tenant's platform counters. A nil error means the
// pipeline accepted it.
func (r *customMetricsReceiver) consume(ctx context.Context, api string, md pmetric.Metrics, n int) error {
	obs := r.obs[api]
	ctx = obs.StartMetricsOp(ctx)
	err := r.next.ConsumeMetrics(ctx, md)
	obs.EndMetricsOp(ctx, "custommetrics", n, err)
	r.stats.record(api, batchTenant(md), n, err)
	return err
}
