package definitions

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/storage/filestorage"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/extension/extensiontest"
	"go.opentelemetry.io/collector/extension/xextension/storage"
)

// fileStorage opens the client that a real file_storage extension (bbolt in
// dir) gives the definitions extension. close closes it (also at cleanup);
// a later fileStorage on the same dir sees what was written, as after a restart.
func fileStorage(tb testing.TB, dir string) (client storage.Client, closeFn func()) {
	tb.Helper()
	ctx := context.Background()
	f := filestorage.NewFactory()
	cfg := f.CreateDefaultConfig().(*filestorage.Config)
	cfg.Directory = dir
	ext, err := f.Create(ctx, extensiontest.NewNopSettings(f.Type()), cfg)
	require.NoError(tb, err)
	require.NoError(tb, ext.Start(ctx, componenttest.NewNopHost()))
	client, err = ext.(storage.Extension).GetClient(ctx, component.KindExtension, component.MustNewID("definitions"), "")
	require.NoError(tb, err)
	var once sync.Once
	closeFn = func() {
		once.Do(func() {
			require.NoError(tb, client.Close(ctx))
			require.NoError(tb, ext.Shutdown(ctx))
		})
	}
	tb.Cleanup(closeFn)
	return client, closeFn
}

// failingClient is a real storage client that fails on demand: writes (any
// Batch holding a Set or Delete) while failWrites, everything while failAll.
// Its error names a file, as an operating system's error does. It counts the
// bytes of every Set it passes on.
type failingClient struct {
	storage.Client
	failWrites, failAll atomic.Bool
	setBytes            atomic.Int64
}

const diskFull = "write /var/lib/otelcol/file_storage/extension_definitions: no space left on device"

func (f *failingClient) Get(ctx context.Context, key string) ([]byte, error) {
	op := storage.GetOperation(key)
	err := f.Batch(ctx, op)
	return op.Value, err
}

func (f *failingClient) Set(ctx context.Context, key string, value []byte) error {
	return f.Batch(ctx, storage.SetOperation(key, value))
}

func (f *failingClient) Delete(ctx context.Context, key string) error {
	return f.Batch(ctx, storage.DeleteOperation(key))
}

func (f *failingClient) Batch(ctx context.Context, ops ...*storage.Operation) error {
	if f.failAll.Load() {
		return errors.New(diskFull)
	}
	for _, op := range ops {
		if op.Type != storage.Get && f.failWrites.Load() {
			return errors.New(diskFull)
		}
	}
	for _, op := range ops {
		if op.Type == storage.Set {
			f.setBytes.Add(int64(len(op.Value)))
		}
	}
	return f.Client.Batch(ctx, ops...)
}
