package definitionsextension // import "github.com/custommetrics/bundle/extension/definitionsextension"

import (
	"context"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension"

	"github.com/custommetrics/bundle/extension/definitionsextension/internal/metadata"
)

// NewFactory creates a factory for the definitions extension.
func NewFactory() extension.Factory {
	return extension.NewFactory(metadata.Type, createDefaultConfig, create, metadata.ExtensionStability)
}

// defaultMaxDefinitionsPerTenant is the default of max_definitions_per_tenant.
const defaultMaxDefinitionsPerTenant = 10_000

func createDefaultConfig() component.Config {
	return &Config{MaxDefinitionsPerTenant: defaultMaxDefinitionsPerTenant}
}

func create(_ context.Context, set extension.Settings, cfg component.Config) (extension.Extension, error) {
	return newExtension(cfg.(*Config), set), nil
}
