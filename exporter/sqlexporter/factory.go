package sqlexporter // import "github.com/custommetrics/bundle/exporter/sqlexporter"

import (
	"context"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/config/configretry"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/exporterhelper"
	"go.opentelemetry.io/collector/pdata/pmetric"

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
	return &Config{
		TimeoutConfig: exporterhelper.NewDefaultTimeoutConfig(),
		QueueConfig:   configoptional.Some(exporterhelper.NewDefaultQueueConfig()),
		RetryConfig:   configretry.NewDefaultBackOffConfig(),
		Driver:        DriverSQLite,
		DSN:           defaultSQLiteDSN,
	}
}

func createMetrics(ctx context.Context, set exporter.Settings, cfg component.Config) (exporter.Metrics, error) {
	c := cfg.(*Config)
	// Development stage: nothing is stored yet (see README).
	push := func(context.Context, pmetric.Metrics) error { return nil }
	return exporterhelper.NewMetrics(ctx, set, cfg, push,
		exporterhelper.WithTimeout(c.TimeoutConfig),
		exporterhelper.WithRetry(c.RetryConfig),
		exporterhelper.WithQueue(c.QueueConfig),
	)
}
