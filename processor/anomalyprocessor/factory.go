package anomalyprocessor // import "github.com/custommetrics/bundle/processor/anomalyprocessor"

import (
	"context"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/processor/processorhelper"

	"github.com/custommetrics/bundle/processor/anomalyprocessor/internal/metadata"
)

// NewFactory creates a factory for the anomaly processor.
func NewFactory() processor.Factory {
	return processor.NewFactory(
		metadata.Type,
		createDefaultConfig,
		processor.WithMetrics(createMetrics, metadata.MetricsStability),
	)
}

func createMetrics(ctx context.Context, set processor.Settings, cfg component.Config, next consumer.Metrics) (processor.Metrics, error) {
	p, err := newProcessor(set, cfg.(*Config))
	if err != nil {
		return nil, err
	}
	return wrap(ctx, set, cfg, next, p)
}

// wrap runs p as a metrics processor.
func wrap(ctx context.Context, set processor.Settings, cfg component.Config, next consumer.Metrics, p *anomalyProcessor) (processor.Metrics, error) {
	return processorhelper.NewMetrics(ctx, set, cfg, next, p.processMetrics,
		processorhelper.WithStart(p.start),
		processorhelper.WithShutdown(p.shutdown),
		processorhelper.WithCapabilities(consumer.Capabilities{MutatesData: true}))
}
