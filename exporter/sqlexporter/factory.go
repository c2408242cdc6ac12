package sqlexporter // import "github.com/custommetrics/bundle/exporter/sqlexporter"

import (
	"context"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/config/configretry"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/exporterhelper"

	"github.com/custommetrics/bundle/exporter/sqlexporter/internal/metadata"
)

// defaultSQLiteDSN is relative to the working directory, as all state of the bundle.
const defaultSQLiteDSN = "data/custommetrics.db"

// NewFactory creates a factory for the sql exporter.
func NewFactory() exporter.Factory {
	return exporter.NewFactory(
		metadata.Type,
		createDefaultConfig,
		exporter.WithMetrics(createMetrics, metadata.MetricsStability),
	)
}

func createDefaultConfig() component.Config {
	queue := exporterhelper.NewDefaultQueueConfig()
	// Restatements of a window must reach the database in the order they
	// were emitted: one consumer drains the queue (see Config.Validate).
	queue.NumConsumers = 1
	// That consumer writes one transaction per batch: small requests (a
	// BigFix value, a window emission) coalesce, in order, into batches of
	// up to 10,000 data points, flushed after at most 100ms. Without it
	// each request was its own transaction and raw points saturated the
	// queue (503) at a few hundred requests per second.
	queue.Batch = configoptional.Some(exporterhelper.BatchConfig{
		FlushTimeout: 100 * time.Millisecond,
		Sizer:        exporterhelper.RequestSizerTypeItems,
		MinSize:      1000,
		MaxSize:      10000,
	})
	return &Config{
		TimeoutConfig: exporterhelper.NewDefaultTimeoutConfig(),
		QueueConfig:   configoptional.Some(queue),
		RetryConfig:   configretry.NewDefaultBackOffConfig(),
		Driver:        DriverSQLite,
		DSN:           defaultSQLiteDSN,
	}
}

func createMetrics(ctx context.Context, set exporter.Settings, cfg component.Config) (exporter.Metrics, error) {
	c := cfg.(*Config)
	e, err := newSQLExporter(c, set)
	if err != nil {
		return nil, err
	}
	return exporterhelper.NewMetrics(ctx, set, cfg, e.push,
		exporterhelper.WithStart(e.start),
		exporterhelper.WithShutdown(e.shutdown),
		exporterhelper.WithCapabilities(consumer.Capabilities{MutatesData: false}),
		exporterhelper.WithTimeout(c.TimeoutConfig),
		exporterhelper.WithRetry(c.RetryConfig),
		exporterhelper.WithQueue(c.QueueConfig),
	)
}
