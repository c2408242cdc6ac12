package definitions // import "github.com/custommetrics/bundle/internal/definitions"

import (
	"context"
	"errors"
	"sync"

	"go.opentelemetry.io/collector/extension/xextension/storage"
)

// Errors returned by collection operations; handlers map them to each API's
// status codes. Check them with errors.Is.
var (
	ErrNotFound = errors.New("definition not found")
	ErrExists   = errors.New("definition already exists")
	// ErrQuota: the tenant holds as many definitions (all kinds together)
	// as the registry allows (WithMaxPerTenant); nothing was written.
	ErrQuota = errors.New("definitions quota of the tenant reached")
	// ErrUnavailable: the storage behind the registry failed. Nothing was
	// changed (in memory or in storage); the same request may succeed later.
	// Errors that match it are *StorageError values.
	ErrUnavailable = errors.New("definitions storage unavailable")
)

// StorageError is the error of an operation of the registry whose storage
// failed; errors.Is(err, ErrUnavailable) holds for it. Its message names
// only the operation, never the storage's own message (which may hold file
// paths or addresses); Unwrap gives the storage's error for logs.
type StorageError struct {
	Op  string // what the registry was doing, e.g. "creating a threatconnect.metric definition"
	Err error  // the storage client's error
}

func (e *StorageError) Error() string { return "definitions: storage unavailable while " + e.Op }

// Is makes errors.Is(err, ErrUnavailable) true.
func (e *StorageError) Is(target error) bool { return target == ErrUnavailable }

// Unwrap returns the storage client's error.
func (e *StorageError) Unwrap() error { return e.Err }

// Backend persists opaque documents by key. A Collector storage.Client
// satisfies it; Batch must apply its operations atomically (file_storage runs
// them in one bbolt transaction), which is what makes each change of the
// registry atomic.
type Backend interface {
	Get(ctx context.Context, key string) ([]byte, error)
	Set(ctx context.Context, key string, value []byte) error
	Delete(ctx context.Context, key string) error
	Batch(ctx context.Context, ops ...*storage.Operation) error
}

var _ Backend = storage.Client(nil)

// MemoryBackend is a Backend that keeps documents in memory: state does not
// survive a restart. It is used when no storage extension is configured.
type MemoryBackend struct {
	mu   sync.Mutex
	docs map[string][]byte
}

// Get implements Backend.
func (m *MemoryBackend) Get(ctx context.Context, key string) ([]byte, error) {
	return BatchFunc(m.Batch).Get(ctx, key)
}

// Set implements Backend.
func (m *MemoryBackend) Set(ctx context.Context, key string, value []byte) error {
	return BatchFunc(m.Batch).Set(ctx, key, value)
}

// Delete implements Backend.
func (m *MemoryBackend) Delete(ctx context.Context, key string) error {
	return BatchFunc(m.Batch).Delete(ctx, key)
}

// BatchFunc is a Backend made of its Batch alone: Get, Set and Delete are
// batches of one operation.
type BatchFunc func(ctx context.Context, ops ...*storage.Operation) error

// Get implements Backend.
func (f BatchFunc) Get(ctx context.Context, key string) ([]byte, error) {
	op := storage.GetOperation(key)
	err := f(ctx, op)
	return op.Value, err
}

// Set implements Backend.
func (f BatchFunc) Set(ctx context.Context, key string, value []byte) error {
	return f(ctx, storage.SetOperation(key, value))
}

// Delete implements Backend.
func (f BatchFunc) Delete(ctx context.Context, key string) error {
	return f(ctx, storage.DeleteOperation(key))
}

// Batch implements Backend.
func (f BatchFunc) Batch(ctx context.Context, ops ...*storage.Operation) error { return f(ctx, ops...) }

// Batch implements Backend: the operations apply in order, atomically.
func (m *MemoryBackend) Batch(_ context.Context, ops ...*storage.Operation) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.docs == nil {
		m.docs = map[string][]byte{}
	}
	for _, op := range ops {
		switch op.Type {
		case storage.Get:
			if v, ok := m.docs[op.Key]; ok {
				op.Value = append([]byte(nil), v...)
			} else {
				op.Value = nil
			}
		case storage.Set:
			m.docs[op.Key] = append([]byte(nil), op.Value...)
		case storage.Delete:
			delete(m.docs, op.Key)
		}
	}
	return nil
}
