// Package storagetest holds a storage client for tests: in memory, with
// Walk, injectable failures and latency. It outlives the components that use
// it, as a file on disk outlives a killed process.
package storagetest // import "github.com/custommetrics/bundle/internal/storagetest"

import (
	"context"
	"errors"
	"maps"
	"sync"
	"time"

	"go.opentelemetry.io/collector/extension/xextension/storage"
)

// Mem is an in-memory storage.Client with Walk. Lock Mu to read or change
// its fields while it is in use.
type Mem struct {
	Mu      sync.Mutex
	Data    map[string][]byte
	Batches int   // Batch calls that succeeded
	Fail    error // when set, every Batch fails with it
	// Latency is how long each Batch takes, as a disk's sync would.
	Latency time.Duration
}

var _ storage.Walker = (*Mem)(nil)

// NewMem returns an empty store.
func NewMem() *Mem { return &Mem{Data: map[string][]byte{}} }

func (s *Mem) Get(ctx context.Context, key string) ([]byte, error) {
	op := storage.GetOperation(key)
	err := s.Batch(ctx, op)
	return op.Value, err
}

func (s *Mem) Set(ctx context.Context, key string, value []byte) error {
	return s.Batch(ctx, storage.SetOperation(key, value))
}

func (s *Mem) Delete(ctx context.Context, key string) error {
	return s.Batch(ctx, storage.DeleteOperation(key))
}

// Batch applies ops all or nothing.
func (s *Mem) Batch(_ context.Context, ops ...*storage.Operation) error {
	time.Sleep(s.Latency)
	s.Mu.Lock()
	defer s.Mu.Unlock()
	if s.Fail != nil {
		return s.Fail
	}
	for _, op := range ops {
		if op.Type != storage.Get && op.Type != storage.Set && op.Type != storage.Delete {
			return errors.New("storagetest: unknown operation")
		}
	}
	s.Batches++
	for _, op := range ops {
		switch op.Type {
		case storage.Get:
			if v, ok := s.Data[op.Key]; ok {
				op.Value = append([]byte(nil), v...)
			} else {
				op.Value = nil
			}
		case storage.Set:
			s.Data[op.Key] = append([]byte(nil), op.Value...)
		case storage.Delete:
			delete(s.Data, op.Key)
		}
	}
	return nil
}

// Walk calls fn with a snapshot of every entry, then applies the operations
// fn returned in one Batch.
func (s *Mem) Walk(ctx context.Context, fn storage.WalkFunc) error {
	s.Mu.Lock()
	snapshot := maps.Clone(s.Data)
	s.Mu.Unlock()
	var ops []*storage.Operation
	for k, v := range snapshot {
		o, err := fn(k, v)
		if errors.Is(err, storage.SkipAll) {
			break
		}
		if err != nil {
			return err
		}
		ops = append(ops, o...)
	}
	if len(ops) == 0 {
		return nil
	}
	return s.Batch(ctx, ops...)
}

func (s *Mem) Close(context.Context) error { return nil }
