package custommetricsreceiver // import "github.com/custommetrics/bundle/receiver/custommetricsreceiver"

import (
	"context"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/confighttp"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/receiver"

	"github.com/custommetrics/bundle/internal/calendar"
	"github.com/custommetrics/bundle/internal/wire/embrace"
	tc "github.com/custommetrics/bundle/internal/wire/threatconnect"
	"github.com/custommetrics/bundle/receiver/custommetricsreceiver/internal/metadata"
)

const (
	defaultEndpoint = "127.0.0.1:8181"
	// Vendor payloads are small; a megabyte is far above any documented example
	// and keeps a hostile client from pinning memory.
	defaultMaxRequestBodySize = 1 << 20
	// Sleuth documents one registration per impact source every 120 seconds.
	defaultSleuthMinInterval = 120 * time.Second
	// The SDKs' events base URI points here; they post to .../bulk and .../diagnostic.
	defaultLaunchDarklyEventsPath = "/launchdarkly/events"

	// Names become metric names; keys become attribute values (series keys).
	defaultMaxNameLength = 256
	defaultMaxKeyLength  = 1024
	// A LaunchDarkly SDK flushes at most 10,000 events at once.
	defaultMaxPointsPerRequest = 10000
)

// defaultEmbraceBaseMetrics is the Embrace document's table of supported metrics.
func defaultEmbraceBaseMetrics() []EmbraceBaseMetric {
	out := make([]EmbraceBaseMetric, 0, len(embrace.DocumentedBaseMetrics))
	for _, m := range embrace.DocumentedBaseMetrics {
		out = append(out, EmbraceBaseMetric{Name: m.Name, Attributes: append([]string(nil), m.Attributes...)})
	}
	return out
}

// NewFactory creates a factory for the custommetrics receiver.
func NewFactory() receiver.Factory {
	return receiver.NewFactory(
		metadata.Type,
		createDefaultConfig,
		receiver.WithMetrics(createMetrics, metadata.MetricsStability),
	)
}

func createDefaultConfig() component.Config {
	srv := confighttp.NewDefaultServerConfig()
	srv.NetAddr.Endpoint = defaultEndpoint
	srv.MaxRequestBodySize = defaultMaxRequestBodySize
	// Slow or stalled clients must not hold connections forever.
	srv.ReadHeaderTimeout = 10 * time.Second
	srv.ReadTimeout = 30 * time.Second
	return &Config{
		ServerConfig: srv,
		Limits: LimitsConfig{
			MaxNameLength:       defaultMaxNameLength,
			MaxKeyLength:        defaultMaxKeyLength,
			MaxPointsPerRequest: defaultMaxPointsPerRequest,
		},
		// ThreatConnect's API base is /api; its document gives paths relative to it.
		ThreatConnect: ThreatConnectConfig{APIConfig: APIConfig{Enabled: true, PathPrefix: "/api"}, HMACMaxSkew: tc.MaxClockSkew, ReturnValue: true},
		Sleuth:        SleuthConfig{APIConfig: APIConfig{Enabled: true}, MinInterval: defaultSleuthMinInterval},
		BigFix:        BigFixConfig{APIConfig: APIConfig{Enabled: true}},
		LaunchDarkly: LaunchDarklyConfig{
			APIConfig: APIConfig{Enabled: true},
			Events:    LaunchDarklyEventsConfig{Enabled: true, Path: defaultLaunchDarklyEventsPath, Interval: calendar.Hour},
		},
		Embrace: EmbraceConfig{APIConfig: APIConfig{Enabled: true}, BaseMetrics: defaultEmbraceBaseMetrics()},
	}
}

func createMetrics(_ context.Context, set receiver.Settings, cfg component.Config, next consumer.Metrics) (receiver.Metrics, error) {
	return newReceiver(cfg.(*Config), set, next)
}
