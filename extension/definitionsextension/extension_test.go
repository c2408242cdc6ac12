package definitionsextension

import (
	"context"
	"testing"

	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/storage/filestorage"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configopaque"
	"go.opentelemetry.io/collector/extension/extensiontest"
	"go.opentelemetry.io/collector/extension/xextension/storage"

	"github.com/custommetrics/bundle/extension/definitionsextension/internal/metadata"
	"github.com/custommetrics/bundle/internal/definitions"
	"github.com/custommetrics/bundle/internal/pgserver"
)

type host struct {
	component.Host
	exts map[component.ID]component.Component
}

func (h host) GetExtensions() map[component.ID]component.Component { return h.exts }

var fsID = component.MustNewID("file_storage")

// start runs file_storage in dir and the definitions extension with cfg on it;
// stop shuts both down.
func start(t *testing.T, dir string, cfg *Config) (ext *definitionsExtension, stop func()) {
	t.Helper()
	ctx := context.Background()
	fsCfg := filestorage.NewFactory().CreateDefaultConfig().(*filestorage.Config)
	fsCfg.Directory = dir
	fs, err := filestorage.NewFactory().Create(ctx, extensiontest.NewNopSettings(component.MustNewType("file_storage")), fsCfg)
	require.NoError(t, err)
	set := extensiontest.NewNopSettings(metadata.Type)
	set.ID = component.NewID(metadata.Type) // the storage client's name follows the ID: keep it across restarts
	e, err := NewFactory().Create(ctx, set, cfg)
	require.NoError(t, err)
	h := host{Host: componenttest.NewNopHost(), exts: map[component.ID]component.Component{fsID: fs}}
	require.NoError(t, fs.Start(ctx, h))
	require.NoError(t, e.Start(ctx, h))
	return e.(*definitionsExtension), func() {
		require.NoError(t, e.Shutdown(ctx))
		require.NoError(t, fs.Shutdown(ctx))
	}
}

type metric struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
}

// Start migrates what the previous layout stored, once.
func TestStartMigratesPreviousLayout(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfg := createDefaultConfig().(*Config)
	cfg.Storage = &fsID

	// The previous layout, written through the storage client that the
	// extension will get (before it runs: bbolt opens a file once).
	fsCfg := filestorage.NewFactory().CreateDefaultConfig().(*filestorage.Config)
	fsCfg.Directory = dir
	fs, err := filestorage.NewFactory().Create(ctx, extensiontest.NewNopSettings(component.MustNewType("file_storage")), fsCfg)
	require.NoError(t, err)
	require.NoError(t, fs.Start(ctx, componenttest.NewNopHost()))
	client, err := fs.(storage.Extension).GetClient(ctx, component.KindExtension, component.NewID(metadata.Type), "")
	require.NoError(t, err)
	require.NoError(t, client.Set(ctx, `definitions/threatconnect.metric/""`,
		[]byte(`{"nextId":3,"items":[{"id":1,"name":"a"},{"id":3,"name":"c"}],"keys":["a","c"]}`)))
	require.NoError(t, client.Close(ctx))
	require.NoError(t, fs.Shutdown(ctx))

	for range 2 { // the second start finds everything migrated already
		e, stop := start(t, dir, cfg)
		c, err := definitions.CollectionOf[metric](ctx, e.Registry(), definitions.KindThreatConnectMetric, "")
		require.NoError(t, err)
		assert.Equal(t, []metric{{1, "a"}, {3, "c"}}, c.List())
		n, err := e.Registry().Usage(ctx, "")
		require.NoError(t, err)
		assert.Equal(t, 2, n)
		stop()
	}
}

// max_definitions_per_tenant reaches the registry: tenant A at its quota
// cannot create, tenant B still can.
func TestQuotaFromConfig(t *testing.T) {
	ctx := context.Background()
	cfg := createDefaultConfig().(*Config)
	cfg.Storage = &fsID
	cfg.MaxDefinitionsPerTenant = 2
	e, stop := start(t, t.TempDir(), cfg)
	defer stop()
	create := func(tenant string, k definitions.Kind, name string) error {
		c, err := definitions.CollectionOf[metric](ctx, e.Registry(), k, tenant)
		require.NoError(t, err)
		_, err = c.Create(ctx, name, func(id int64) (metric, error) { return metric{id, name}, nil })
		return err
	}
	require.NoError(t, create("A", definitions.KindThreatConnectMetric, "a1"))
	require.NoError(t, create("A", definitions.KindLaunchDarklyMetric, "p/a2"))
	assert.ErrorIs(t, create("A", definitions.KindEmbraceMetric, "app/a3"), definitions.ErrQuota)
	require.NoError(t, create("B", definitions.KindEmbraceMetric, "app/b1"))
}

// With postgres, two collectors' extensions share one registry: a create on
// one is read on the other at once, and the same name cannot be created twice.
func TestSharedPostgresRegistry(t *testing.T) {
	ctx := context.Background()
	srv, err := pgserver.Start(pgserver.Options{})
	require.NoError(t, err)
	t.Cleanup(srv.Remove)
	dsn := srv.DSN("postgres")
	var regs []*definitions.Registry
	for range 2 {
		cfg := createDefaultConfig().(*Config)
		cfg.Postgres = &PostgresConfig{DSN: configopaque.String(dsn)}
		require.NoError(t, cfg.Validate())
		e, err := NewFactory().Create(ctx, extensiontest.NewNopSettings(metadata.Type), cfg)
		require.NoError(t, err)
		require.NoError(t, e.Start(ctx, componenttest.NewNopHost()))
		t.Cleanup(func() { require.NoError(t, e.Shutdown(ctx)) })
		regs = append(regs, e.(definitions.Provider).Registry())
	}
	c0, err := definitions.CollectionOf[metric](ctx, regs[0], definitions.KindThreatConnectMetric, "acme")
	require.NoError(t, err)
	_, err = c0.Create(ctx, "m", func(id int64) (metric, error) { return metric{ID: id, Name: "m"}, nil })
	require.NoError(t, err)

	c1, err := definitions.CollectionOf[metric](ctx, regs[1], definitions.KindThreatConnectMetric, "acme")
	require.NoError(t, err)
	got, ok := c1.Get("m")
	require.True(t, ok)
	assert.Equal(t, metric{ID: 1, Name: "m"}, got)
	_, err = c1.Create(ctx, "m", func(id int64) (metric, error) { return metric{ID: id, Name: "m"}, nil })
	assert.ErrorIs(t, err, definitions.ErrExists)
}
