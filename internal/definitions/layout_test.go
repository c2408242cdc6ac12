package definitions

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func createItem(ctx context.Context, c *Collection[item], name string) (item, error) {
	return c.Create(ctx, name, func(id int64) (item, error) { return item{ID: id, Name: name}, nil })
}

// A create writes one definition, not its whole collection: the bytes it
// writes do not grow with the number of definitions already stored.
func TestCreateWritesDoNotGrowWithCollection(t *testing.T) {
	ctx := context.Background()
	real, _ := fileStorage(t, t.TempDir())
	client := &failingClient{Client: real}
	c, err := CollectionOf[item](ctx, NewRegistry(client), KindThreatConnectMetric, "t")
	require.NoError(t, err)
	written := func(name string) int64 {
		before := client.setBytes.Load()
		_, err := createItem(ctx, c, name)
		require.NoError(t, err)
		return client.setBytes.Load() - before
	}
	for i := range 10 {
		written(fmt.Sprintf("m%06d", i))
	}
	small := written("probe-small")
	for i := 10; i < 1000; i++ {
		written(fmt.Sprintf("m%06d", i))
	}
	large := written("probe-large")
	t.Logf("bytes written by a create: %d at 11 definitions, %d at 1002", small, large)
	assert.LessOrEqual(t, large, small+16, "only the digits of the ID, slot and count may grow")
}

// The previous layout (one record per collection) is migrated at start,
// once, and every definition is found with its ID; IDs are not reused.
func TestMigratesPreviousLayout(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()

	client, closeStorage := fileStorage(t, dir)
	// What the previous code stored: whole collections and the tenant index.
	// The default tenant's BigFix documents and t2's Embrace metrics predate
	// the tenant index, so it does not list them.
	for key, doc := range map[string]string{
		legacyKey(KindThreatConnectMetric, "t1"): `{"nextId":5,"items":[{"id":1,"name":"a"},{"id":4,"name":"d"}],"keys":["a","d"]}`,
		legacyKey(KindBigFixDocument, ""):        `{"nextId":2,"items":[{"id":1,"name":"doc1"},{"id":2,"name":"doc2"}],"keys":["doc1","doc2"]}`,
		legacyKey(KindEmbraceMetric, "t2"):       `{"nextId":0,"items":[{"id":0,"name":"e"}],"keys":["app/e"]}`,
		tenantsKey(KindThreatConnectMetric):      `["t1"]`,
	} {
		require.NoError(t, client.Set(ctx, key, []byte(doc)))
	}
	closeStorage()

	// First start: the extension calls Migrate.
	client, closeStorage = fileStorage(t, dir)
	n, err := NewRegistry(client).Migrate(ctx)
	require.NoError(t, err)
	assert.Equal(t, 4, n, "t1's two metrics and the default tenant's two documents")
	for _, k := range []string{legacyKey(KindThreatConnectMetric, "t1"), legacyKey(KindBigFixDocument, "")} {
		raw, err := client.Get(ctx, k)
		require.NoError(t, err)
		assert.Nil(t, raw, "%s is deleted once migrated", k)
	}
	closeStorage()

	// Second start: nothing left to migrate, nothing counted twice.
	client, _ = fileStorage(t, dir)
	r := NewRegistry(client)
	n, err = r.Migrate(ctx)
	require.NoError(t, err)
	assert.Zero(t, n)

	tc, err := CollectionOf[item](ctx, r, KindThreatConnectMetric, "t1")
	require.NoError(t, err)
	assert.Equal(t, []item{{1, "a"}, {4, "d"}}, tc.List())
	e, err := createItem(ctx, tc, "e")
	require.NoError(t, err)
	assert.Equal(t, int64(6), e.ID, "IDs go on from the migrated collection")
	_, err = createItem(ctx, tc, "a")
	require.ErrorIs(t, err, ErrExists)

	bf, err := CollectionOf[item](ctx, r, KindBigFixDocument, "")
	require.NoError(t, err)
	assert.Equal(t, []item{{1, "doc1"}, {2, "doc2"}}, bf.List())

	// A collection that the tenant index misses migrates when first loaded,
	// and joins the index.
	em, err := CollectionOf[item](ctx, r, KindEmbraceMetric, "t2")
	require.NoError(t, err)
	got, ok := em.Get("app/e")
	require.True(t, ok)
	assert.Equal(t, item{0, "e"}, got)
	tenants, err := r.Tenants(ctx, KindEmbraceMetric)
	require.NoError(t, err)
	assert.Equal(t, []string{"t2"}, tenants)

	for tenant, want := range map[string]int{"t1": 3, "": 2, "t2": 1} {
		u, err := r.Usage(ctx, tenant)
		require.NoError(t, err)
		assert.Equal(t, want, u, "usage of tenant %q", tenant)
	}
}

// Storage failures are ErrUnavailable, leave no trace, do not show the
// storage's own message, and service resumes once storage does.
func TestStorageFailureIsUnavailableAndLeavesNoTrace(t *testing.T) {
	ctx := context.Background()
	real, _ := fileStorage(t, t.TempDir())
	client := &failingClient{Client: real}
	r := NewRegistry(client)
	c, err := CollectionOf[item](ctx, r, KindThreatConnectMetric, "t")
	require.NoError(t, err)
	_, err = createItem(ctx, c, "a")
	require.NoError(t, err)
	version := r.Version()

	client.failWrites.Store(true)
	_, err = createItem(ctx, c, "b")
	require.ErrorIs(t, err, ErrUnavailable)
	assert.NotContains(t, err.Error(), "/var/lib", "no internal path in the message")
	var se *StorageError
	require.ErrorAs(t, err, &se)
	assert.EqualError(t, se.Err, diskFull, "the cause stays available for logs")
	assert.Equal(t, []item{{1, "a"}}, c.List(), "a failed create is not visible")
	_, ok := c.Get("b")
	assert.False(t, ok)

	_, err = c.Put(ctx, "a", func(item, bool) (item, error) { return item{1, "changed"}, nil })
	require.ErrorIs(t, err, ErrUnavailable)
	_, err = c.Put(ctx, "new", func(item, bool) (item, error) { return item{9, "new"}, nil })
	require.ErrorIs(t, err, ErrUnavailable)
	_, err = c.Delete(ctx, "a")
	require.ErrorIs(t, err, ErrUnavailable)
	assert.Equal(t, []item{{1, "a"}}, c.List())
	assert.Equal(t, version, r.Version())

	// Reads fail too while storage is down: a collection not loaded yet.
	client.failAll.Store(true)
	_, err = CollectionOf[item](ctx, r, KindBigFixDocument, "t")
	require.ErrorIs(t, err, ErrUnavailable)
	assert.NotContains(t, err.Error(), "/var/lib")

	// Storage is back: service resumes by itself.
	client.failAll.Store(false)
	client.failWrites.Store(false)
	b, err := createItem(ctx, c, "b")
	require.NoError(t, err)
	assert.Equal(t, int64(2), b.ID, "a failed create does not burn an ID")
	_, err = CollectionOf[item](ctx, r, KindBigFixDocument, "t")
	require.NoError(t, err)

	// Storage holds exactly what succeeded.
	reloaded, err := CollectionOf[item](ctx, NewRegistry(client), KindThreatConnectMetric, "t")
	require.NoError(t, err)
	assert.Equal(t, []item{{1, "a"}, {2, "b"}}, reloaded.List())
	u, err := NewRegistry(client).Usage(ctx, "t")
	require.NoError(t, err)
	assert.Equal(t, 2, u)
}

// The quota counts a tenant's definitions of every kind; other tenants are
// not affected; it holds across a restart.
func TestQuotaPerTenant(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	client, closeStorage := fileStorage(t, dir)
	r := NewRegistry(client, WithMaxPerTenant(3))
	tcA, err := CollectionOf[item](ctx, r, KindThreatConnectMetric, "A")
	require.NoError(t, err)
	emA, err := CollectionOf[item](ctx, r, KindEmbraceMetric, "A")
	require.NoError(t, err)
	bfA, err := CollectionOf[item](ctx, r, KindBigFixDocument, "A")
	require.NoError(t, err)
	for _, name := range []string{"a1", "a2"} {
		_, err = createItem(ctx, tcA, name)
		require.NoError(t, err)
	}
	_, err = createItem(ctx, emA, "e1")
	require.NoError(t, err)

	// A is at its quota: no create of any kind, by Create or by Put.
	_, err = createItem(ctx, tcA, "a3")
	require.ErrorIs(t, err, ErrQuota)
	_, err = bfA.Put(ctx, "doc", func(item, bool) (item, error) { return item{1, "doc"}, nil })
	require.ErrorIs(t, err, ErrQuota)
	assert.Zero(t, bfA.Len())
	// Replacing is no create; a key already taken is still ErrExists.
	_, err = tcA.Put(ctx, "a1", func(cur item, _ bool) (item, error) { cur.Name = "a1'"; return cur, nil })
	require.NoError(t, err)
	_, err = createItem(ctx, tcA, "a1")
	require.ErrorIs(t, err, ErrExists)

	// B still can.
	tcB, err := CollectionOf[item](ctx, r, KindThreatConnectMetric, "B")
	require.NoError(t, err)
	for _, name := range []string{"b1", "b2", "b3"} {
		_, err = createItem(ctx, tcB, name)
		require.NoError(t, err)
	}
	_, err = createItem(ctx, tcB, "b4")
	require.ErrorIs(t, err, ErrQuota)

	// A delete frees a place.
	_, err = emA.Delete(ctx, "e1")
	require.NoError(t, err)
	_, err = createItem(ctx, tcA, "a3")
	require.NoError(t, err)
	closeStorage()

	// The count survives a restart.
	client, _ = fileStorage(t, dir)
	r = NewRegistry(client, WithMaxPerTenant(3))
	bfA, err = CollectionOf[item](ctx, r, KindBigFixDocument, "A")
	require.NoError(t, err)
	_, err = bfA.Put(ctx, "doc", func(item, bool) (item, error) { return item{1, "doc"}, nil })
	require.ErrorIs(t, err, ErrQuota)
	tcC, err := CollectionOf[item](ctx, r, KindThreatConnectMetric, "C")
	require.NoError(t, err)
	_, err = createItem(ctx, tcC, "c1")
	require.NoError(t, err)

	// 0 is no limit.
	r = NewRegistry(client, WithMaxPerTenant(0))
	tcA, err = CollectionOf[item](ctx, r, KindThreatConnectMetric, "A")
	require.NoError(t, err)
	_, err = createItem(ctx, tcA, "a4")
	require.NoError(t, err)
}

// Concurrent creates on real storage: one winner per name, IDs unique and
// increasing in creation order, the same after a restart; concurrent
// read-modify-write Puts (versioned patches) lose no update.
func TestConcurrentChangesOnRealStorage(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	client, closeStorage := fileStorage(t, dir)
	r := NewRegistry(client, WithMaxPerTenant(1000))
	c, err := CollectionOf[item](ctx, r, KindLaunchDarklyMetric, "t")
	require.NoError(t, err)

	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				_, err := createItem(ctx, c, fmt.Sprintf("g%d-%d", g, i))
				assert.NoError(t, err)
				_, err = createItem(ctx, c, "same")
				if err == nil {
					mu.Lock()
					wins++
					mu.Unlock()
				} else {
					assert.ErrorIs(t, err, ErrExists)
				}
				_, err = c.Put(ctx, "counter", func(cur item, _ bool) (item, error) { cur.ID++; return cur, nil })
				assert.NoError(t, err)
			}
		}()
	}
	wg.Wait()
	assert.Equal(t, 1, wins)
	counter, _ := c.Get("counter")
	assert.Equal(t, int64(160), counter.ID, "no lost update")

	ids := func(c *Collection[item]) []int64 {
		var out []int64
		for _, it := range c.List() {
			if it.Name != "" { // not the counter
				out = append(out, it.ID)
			}
		}
		return out
	}
	got := ids(c)
	require.Len(t, got, 161)
	assert.True(t, sort.SliceIsSorted(got, func(i, j int) bool { return got[i] < got[j] }), "IDs increase in creation order")
	for i := 1; i < len(got); i++ {
		require.NotEqual(t, got[i-1], got[i])
	}
	closeStorage()

	client, _ = fileStorage(t, dir)
	r = NewRegistry(client)
	reloaded, err := CollectionOf[item](ctx, r, KindLaunchDarklyMetric, "t")
	require.NoError(t, err)
	assert.Equal(t, got, ids(reloaded))
	counter, _ = reloaded.Get("counter")
	assert.Equal(t, int64(160), counter.ID)
	u, err := r.Usage(ctx, "t")
	require.NoError(t, err)
	assert.Equal(t, 162, u)
}

// Deleted slots are skipped on load and their definitions stay deleted.
func TestDeletesSurviveReload(t *testing.T) {
	ctx := context.Background()
	client, _ := fileStorage(t, t.TempDir())
	c, err := CollectionOf[item](ctx, NewRegistry(client), KindBigFixDocument, "")
	require.NoError(t, err)
	var want []item
	for i := range 300 {
		it, err := createItem(ctx, c, fmt.Sprint(i))
		require.NoError(t, err)
		if i%3 == 0 {
			want = append(want, it)
		}
	}
	for i := range 300 {
		if i%3 != 0 {
			_, err := c.Delete(ctx, fmt.Sprint(i))
			require.NoError(t, err)
		}
	}
	assert.Equal(t, want, c.List())
	reloaded, err := CollectionOf[item](ctx, NewRegistry(client), KindBigFixDocument, "")
	require.NoError(t, err)
	assert.Equal(t, want, reloaded.List())
	assert.Equal(t, len(want), reloaded.Len())
	_, err = reloaded.Delete(ctx, "1")
	assert.True(t, errors.Is(err, ErrNotFound))
}
