package definitionsextension // import "github.com/custommetrics/bundle/extension/definitionsextension"

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/extension/xextension/storage"
	"go.uber.org/zap"

	"github.com/custommetrics/bundle/internal/definitions"
	"github.com/custommetrics/bundle/internal/pgdb"
	"github.com/custommetrics/bundle/internal/pgdefinitions"
	"github.com/custommetrics/bundle/internal/storageclient"
)

type definitionsExtension struct {
	cfg      *Config
	settings extension.Settings

	client   storage.Client
	shared   *pgdefinitions.Backend
	pool     *pgxpool.Pool
	registry *definitions.Registry
}

var _ definitions.Provider = (*definitionsExtension)(nil)

func newExtension(cfg *Config, set extension.Settings) *definitionsExtension {
	return &definitionsExtension{cfg: cfg, settings: set}
}

func (e *definitionsExtension) Start(ctx context.Context, host component.Host) error {
	opts := []definitions.Option{
		definitions.WithMaxPerTenant(e.cfg.MaxDefinitionsPerTenant),
		definitions.WithLogger(e.settings.Logger),
	}
	if e.cfg.Postgres != nil {
		return e.startShared(ctx, opts)
	}
	if e.cfg.Storage == nil {
		e.settings.Logger.Warn("No storage configured: definitions are kept in memory and lost on restart. Set 'storage' to a storage extension such as file_storage.")
		e.registry = definitions.NewRegistry(&definitions.MemoryBackend{}, opts...)
		return nil
	}
	client, err := storageclient.Open(ctx, host, *e.cfg.Storage, component.KindExtension, e.settings.ID)
	if err != nil {
		return err
	}
	registry := definitions.NewRegistry(client, opts...)
	// Collections of the previous layout (one record per collection) move to
	// one record per definition, once.
	migrated, err := registry.Migrate(ctx)
	if err != nil {
		_ = client.Close(ctx)
		return fmt.Errorf("migrating stored definitions: %w", err)
	}
	e.client = client
	e.registry = registry
	e.settings.Logger.Info("Definitions registry started", zap.Stringer("storage", e.cfg.Storage),
		zap.Int("max_definitions_per_tenant", e.cfg.MaxDefinitionsPerTenant), zap.Int("migrated", migrated))
	return nil
}

// startShared keeps the registry in the configured PostgreSQL database.
func (e *definitionsExtension) startShared(ctx context.Context, opts []definitions.Option) error {
	pool, pcfg, err := pgdb.Open(ctx, string(e.cfg.Postgres.DSN), "definitions")
	if err != nil {
		return err
	}
	b, err := pgdefinitions.New(ctx, pool, e.settings.Logger)
	if err != nil {
		pool.Close()
		return err
	}
	e.pool, e.shared = pool, b
	e.registry = definitions.NewRegistry(b, opts...)
	e.settings.Logger.Info("Definitions registry started on a shared PostgreSQL database",
		zap.String("host", pcfg.ConnConfig.Host), zap.String("database", pcfg.ConnConfig.Database),
		zap.Int("max_definitions_per_tenant", e.cfg.MaxDefinitionsPerTenant))
	return nil
}

func (e *definitionsExtension) Shutdown(ctx context.Context) error {
	if e.registry != nil {
		e.registry.Close()
	}
	if e.shared != nil {
		e.shared.Close()
		e.pool.Close()
	}
	if e.client != nil {
		return e.client.Close(ctx)
	}
	return nil
}

// Registry implements definitions.Provider.
func (e *definitionsExtension) Registry() *definitions.Registry {
	return e.registry
}
