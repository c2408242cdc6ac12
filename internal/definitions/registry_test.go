package definitions

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/extension/xextension/storage"
)

type item struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
}

// flakyBackend fails writes while fail is true.
type flakyBackend struct {
	MemoryBackend
	mu   sync.Mutex
	fail bool
}

func (f *flakyBackend) Set(ctx context.Context, key string, value []byte) error {
	return f.Batch(ctx, storage.SetOperation(key, value))
}

func (f *flakyBackend) Batch(ctx context.Context, ops ...*storage.Operation) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, op := range ops {
		if f.fail && op.Type != storage.Get {
			return errors.New("disk full")
		}
	}
	return f.MemoryBackend.Batch(ctx, ops...)
}

func TestCollectionPersistsAndReloads(t *testing.T) {
	ctx := context.Background()
	backend := &MemoryBackend{}
	c, err := CollectionOf[item](ctx, NewRegistry(backend), KindThreatConnectMetric, "t1")
	require.NoError(t, err)
	for _, name := range []string{"a", "b", "c"} {
		_, err := c.Create(ctx, name, func(id int64) (item, error) { return item{ID: id, Name: name}, nil })
		require.NoError(t, err)
	}
	_, err = c.Delete(ctx, "b")
	require.NoError(t, err)

	// A new registry over the same backend sees the same state, and never reuses an ID.
	reloaded, err := CollectionOf[item](ctx, NewRegistry(backend), KindThreatConnectMetric, "t1")
	require.NoError(t, err)
	assert.Equal(t, []item{{1, "a"}, {3, "c"}}, reloaded.List())
	d, err := reloaded.Create(ctx, "d", func(id int64) (item, error) { return item{ID: id, Name: "d"}, nil })
	require.NoError(t, err)
	assert.Equal(t, int64(4), d.ID)

	// Tenants and kinds are separate collections.
	other, err := CollectionOf[item](ctx, NewRegistry(backend), KindThreatConnectMetric, "t2")
	require.NoError(t, err)
	assert.Zero(t, other.Len())
}

func TestFailedWriteChangesNothing(t *testing.T) {
	ctx := context.Background()
	backend := &flakyBackend{}
	c, err := CollectionOf[item](ctx, NewRegistry(backend), KindBigFixDocument, "")
	require.NoError(t, err)
	_, err = c.Create(ctx, "a", func(id int64) (item, error) { return item{ID: id, Name: "a"}, nil })
	require.NoError(t, err)

	backend.fail = true
	_, err = c.Create(ctx, "b", func(id int64) (item, error) { return item{ID: id, Name: "b"}, nil })
	require.ErrorIs(t, err, ErrUnavailable)
	require.NotContains(t, err.Error(), "disk full", "the storage's message stays in the logs")
	_, err = c.Put(ctx, "a", func(item, bool) (item, error) { return item{ID: 9, Name: "changed"}, nil })
	require.Error(t, err)
	_, err = c.Delete(ctx, "a")
	require.Error(t, err)
	assert.Equal(t, []item{{1, "a"}}, c.List(), "memory keeps the last persisted state")

	backend.fail = false
	reloaded, err := CollectionOf[item](ctx, NewRegistry(backend), KindBigFixDocument, "")
	require.NoError(t, err)
	assert.Equal(t, []item{{1, "a"}}, reloaded.List(), "storage keeps the last persisted state")
	b, err := c.Create(ctx, "b", func(id int64) (item, error) { return item{ID: id, Name: "b"}, nil })
	require.NoError(t, err)
	assert.Equal(t, int64(2), b.ID, "a failed create does not burn an ID")
}

func TestCreateRaceHasOneWinner(t *testing.T) {
	ctx := context.Background()
	c, err := CollectionOf[item](ctx, NewRegistry(&MemoryBackend{}), KindThreatConnectMetric, "")
	require.NoError(t, err)
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.Create(ctx, "same", func(id int64) (item, error) { return item{ID: id, Name: "same"}, nil })
			if err == nil {
				mu.Lock()
				wins++
				mu.Unlock()
			} else {
				assert.ErrorIs(t, err, ErrExists)
			}
		}()
	}
	wg.Wait()
	assert.Equal(t, 1, wins)
}

func TestCorruptDocumentIsAnError(t *testing.T) {
	ctx := context.Background()
	backend := &MemoryBackend{}
	require.NoError(t, backend.Set(ctx, legacyKey(KindThreatConnectMetric, ""), []byte(`{"items":[{}],"keys":[]}`)))
	_, err := CollectionOf[item](ctx, NewRegistry(backend), KindThreatConnectMetric, "")
	assert.ErrorContains(t, err, "corrupt")
}

func TestListAllAcrossTenantsAndVersion(t *testing.T) {
	ctx := context.Background()
	backend := &MemoryBackend{}
	r := NewRegistry(backend)
	assert.Zero(t, r.Version())
	all, err := ListAll[item](ctx, r, KindEmbraceMetric)
	require.NoError(t, err)
	assert.Empty(t, all)
	for _, tenant := range []string{"", "t2"} {
		c, err := CollectionOf[item](ctx, r, KindEmbraceMetric, tenant)
		require.NoError(t, err)
		_, err = c.Create(ctx, "a", func(id int64) (item, error) { return item{ID: id, Name: "a" + tenant}, nil })
		require.NoError(t, err)
	}
	assert.Equal(t, uint64(2), r.Version())
	other, err := CollectionOf[item](ctx, r, KindThreatConnectMetric, "t3")
	require.NoError(t, err)
	_, err = other.Create(ctx, "x", func(id int64) (item, error) { return item{ID: id}, nil })
	require.NoError(t, err)
	assert.Equal(t, uint64(3), r.Version())

	// A new registry over the same backend finds every tenant of the kind.
	r2 := NewRegistry(backend)
	all, err = ListAll[item](ctx, r2, KindEmbraceMetric)
	require.NoError(t, err)
	assert.Equal(t, map[string][]item{"": {{1, "a"}}, "t2": {{1, "at2"}}}, all)
	tenants, err := r2.Tenants(ctx, KindThreatConnectMetric)
	require.NoError(t, err)
	assert.Equal(t, []string{"t3"}, tenants)

	c, err := CollectionOf[item](ctx, r2, KindEmbraceMetric, "t2")
	require.NoError(t, err)
	_, err = c.Delete(ctx, "a")
	require.NoError(t, err)
	assert.Equal(t, uint64(1), r2.Version())
	all, err = ListAll[item](ctx, r2, KindEmbraceMetric)
	require.NoError(t, err)
	assert.Equal(t, map[string][]item{"": {{1, "a"}}}, all)

	// A failed write changes neither the collection nor the version.
	fb := &flakyBackend{fail: true}
	r3 := NewRegistry(fb)
	c3, err := CollectionOf[item](ctx, r3, KindEmbraceMetric, "")
	require.NoError(t, err)
	_, err = c3.Create(ctx, "a", func(id int64) (item, error) { return item{ID: id}, nil })
	require.Error(t, err)
	assert.Zero(t, r3.Version())
	tenants, err = r3.Tenants(ctx, KindEmbraceMetric)
	require.NoError(t, err)
	assert.Empty(t, tenants)
}

// slowBackend counts write batches, each taking a while as a disk's would.
type slowBackend struct {
	MemoryBackend
	mu      sync.Mutex
	batches int
}

func (s *slowBackend) Batch(ctx context.Context, ops ...*storage.Operation) error {
	for _, op := range ops {
		if op.Type != storage.Get {
			time.Sleep(2 * time.Millisecond)
			s.mu.Lock()
			s.batches++
			s.mu.Unlock()
			break
		}
	}
	return s.MemoryBackend.Batch(ctx, ops...)
}

// slowCollection returns a slow backend and a collection of a registry on it.
func slowCollection(t *testing.T) (*slowBackend, *Collection[item]) {
	backend := &slowBackend{}
	r := NewRegistry(backend)
	t.Cleanup(r.Close)
	c, err := CollectionOf[item](context.Background(), r, KindBigFixDocument, "")
	require.NoError(t, err)
	return backend, c
}

// TestConcurrentReplacementsShareWrites: replacements of different
// definitions (BigFix documents of different tags) are group-committed, and
// each is stored; a reload finds every last replacement.
func TestConcurrentReplacementsShareWrites(t *testing.T) {
	ctx := context.Background()
	backend, c := slowCollection(t)
	const keys, rounds = 16, 5
	for k := range keys {
		_, err := createItem(ctx, c, fmt.Sprintf("k%d", k))
		require.NoError(t, err)
	}
	backend.mu.Lock()
	backend.batches = 0
	backend.mu.Unlock()
	var wg sync.WaitGroup
	for k := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				_, err := c.Put(ctx, fmt.Sprintf("k%d", k), func(cur item, exists bool) (item, error) {
					assert.True(t, exists)
					cur.ID = int64(100*k + i)
					return cur, nil
				})
				assert.NoError(t, err)
			}
		}()
	}
	wg.Wait()
	backend.mu.Lock()
	batches := backend.batches
	backend.mu.Unlock()
	t.Logf("%d replacements in %d storage batches", keys*rounds, batches)
	assert.Less(t, batches, keys*rounds, "replacements share storage batches")

	reloaded, err := CollectionOf[item](ctx, NewRegistry(backend), KindBigFixDocument, "")
	require.NoError(t, err)
	for k := range keys {
		got, ok := reloaded.Get(fmt.Sprintf("k%d", k))
		require.True(t, ok)
		assert.Equal(t, int64(100*k+rounds-1), got.ID, "the last replacement is stored")
		mem, _ := c.Get(fmt.Sprintf("k%d", k))
		assert.Equal(t, got, mem, "memory and storage agree")
	}
}

// TestDeleteWaitsForReplacement: a delete that comes while a replacement of
// the same definition is being stored applies after it, so the definition
// stays deleted in memory and in storage.
func TestDeleteWaitsForReplacement(t *testing.T) {
	ctx := context.Background()
	backend, c := slowCollection(t)
	_, err := createItem(ctx, c, "a")
	require.NoError(t, err)
	for range 20 {
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			_, err := c.Put(ctx, "a", func(cur item, _ bool) (item, error) { cur.ID++; return cur, nil })
			assert.NoError(t, err)
		}()
		go func() {
			defer wg.Done()
			_, err := c.Delete(ctx, "a")
			assert.NoError(t, err)
		}()
		wg.Wait()
		// Whichever came first, the other applied after it: either the
		// put recreated "a" after the delete, or the delete removed it.
		mem, inMem := c.Get("a")
		reloaded, err := CollectionOf[item](ctx, NewRegistry(backend), KindBigFixDocument, "")
		require.NoError(t, err)
		stored, inStore := reloaded.Get("a")
		require.Equal(t, inMem, inStore, "memory and storage agree on whether it exists")
		if inMem {
			assert.Equal(t, mem, stored)
			_, err := c.Delete(ctx, "a")
			require.NoError(t, err)
		}
		_, err = createItem(ctx, c, "a")
		require.NoError(t, err)
	}
}

// DeleteIf deletes only what its check accepts, and returns the check's
// error unchanged otherwise; memory and storage agree.
func TestDeleteIf(t *testing.T) {
	ctx := context.Background()
	backend, c := slowCollection(t)
	_, err := createItem(ctx, c, "a")
	require.NoError(t, err)
	errNotMine := errors.New("not mine")
	_, err = c.DeleteIf(ctx, "a", func(item) error { return errNotMine })
	require.ErrorIs(t, err, errNotMine)
	_, ok := c.Get("a")
	assert.True(t, ok, "refused: still there")

	_, err = c.DeleteIf(ctx, "a", func(item) error { return nil })
	require.NoError(t, err)
	_, ok = c.Get("a")
	assert.False(t, ok)
	reloaded, err := CollectionOf[item](ctx, NewRegistry(backend), KindBigFixDocument, "")
	require.NoError(t, err)
	_, ok = reloaded.Get("a")
	assert.False(t, ok, "deleted in storage too")
	_, err = c.DeleteIf(ctx, "a", func(item) error { return nil })
	assert.ErrorIs(t, err, ErrNotFound)
}
