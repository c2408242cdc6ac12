package definitionsextension // import "github.com/custommetrics/bundle/extension/definitionsextension"

import (
	"context"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/extension/xextension/storage"
	"go.uber.org/zap"

	"github.com/custommetrics/bundle/internal/definitions"
	"github.com/custommetrics/bundle/internal/storageclient"
)

type definitionsExtension struct {
	cfg      *Config
	settings extension.Settings

	client   storage.Client
	registry *definitions.Registry
}

var _ definitions.Provider = (*definitionsExtension)(nil)

func newExtension(cfg *Config, set extension.Settings) *definitionsExtension {
	return &definitionsExtension{cfg: cfg, settings: set}
}

func (e *definitionsExtension) Start(ctx context.Context, host component.Host) error {
	if e.cfg.Storage == nil {
		e.settings.Logger.Warn("No storage configured: definitions are kept in memory and lost on restart. Set 'storage' to a storage extension such as file_storage.")
		e.registry = definitions.NewRegistry(&definitions.MemoryBackend{})
		return nil
	}
	client, err := storageclient.Open(ctx, host, *e.cfg.Storage, component.KindExtension, e.settings.ID)
	if err != nil {
		return err
	}
	e.client = client
	e.registry = definitions.NewRegistry(client)
	e.settings.Logger.Info("Definitions registry started", zap.Stringer("storage", e.cfg.Storage))
	return nil
}

func (e *definitionsExtension) Shutdown(ctx context.Context) error {
	if e.client != nil {
		return e.client.Close(ctx)
	}
	return nil
}

// Registry implements definitions.Provider.
func (e *definitionsExtension) Registry() *definitions.Registry {
	return e.registry
}
