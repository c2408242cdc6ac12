package aggregateprocessor // import "github.com/custommetrics/bundle/processor/aggregateprocessor"

import (
	"context"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/processor"

	"github.com/custommetrics/bundle/processor/aggregateprocessor/internal/metadata"
)

// NewFactory creates a factory for the aggregate processor.
func NewFactory() processor.Factory {
	return processor.NewFactory(
		metadata.Type,
		createDefaultConfig,
		processor.WithMetrics(createMetrics, metadata.MetricsStability),
	)
}

func createDefaultConfig() component.Config {
	return &Config{
		AllowedLateness:           defaultAllowedLateness,
		CheckInterval:             defaultCheckInterval,
		MaxSeriesWindows:          defaultMaxSeriesWindows,
		MaxSeriesWindowsPerTenant: defaultMaxPerTenant,
		CommitDelay:               defaultCommitDelay,
		Embrace:                   EmbraceConfig{AppIDAttribute: defaultAppIDAttribute},
	}
}

func createMetrics(_ context.Context, set processor.Settings, cfg component.Config, next consumer.Metrics) (processor.Metrics, error) {
	return newProcessor(set, cfg.(*Config), next)
}
