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
	// No sending queue and no retries by default: a push returns once its
	// rows are committed (concurrent pushes share transactions, see push),
	// so an acknowledged value is in the database, and a failure goes back
	// to the caller, which keeps the data and retries: the aggregate
	// processor at its next tick, a client of the receiver after its 503.
	// A queue would acknowledge before the write, and exporterhelper's
	// persistent queue skips an item whose storage read fails (a full
	// disk): data acknowledged upstream would be lost.
	//
	// When a user configures sending_queue, these are its defaults:
	// restatements of a window must reach the database in the order they
	// were emitted, so one consumer drains it (see Config.Validate), writing
	// batches of up to 10,000 data points flushed after at most 100ms.
	queue := exporterhelper.NewDefaultQueueConfig()
	queue.NumConsumers = 1
	queue.Batch = configoptional.Some(exporterhelper.BatchConfig{
		FlushTimeout: 100 * time.Millisecond,
		Sizer:        exporterhelper.RequestSizerTypeItems,
		MinSize:      1000,
		MaxSize:      10000,
	})
	retry := configretry.NewDefaultBackOffConfig()
	retry.Enabled = false
	return &Config{
		TimeoutConfig: exporterhelper.NewDefaultTimeoutConfig(),
		QueueConfig:   configoptional.Default(queue),
		RetryConfig:   retry,
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
