package pgdefinitions

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/custommetrics/bundle/internal/definitions"
	"github.com/custommetrics/bundle/internal/pgserver/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// metric stands for a definition with a version that patches increase (as
// LaunchDarkly's _version).
type metric struct {
	ID      int64  `json:"id"`
	Name    string `json:"name"`
	Version int    `json:"version"`
}

const kind = definitions.KindThreatConnectMetric

// collectors returns n registries on a new database, each with its own pool
// and backend, as n collectors would have.
func collectors(t *testing.T, n int, opts ...definitions.Option) []*definitions.Registry {
	t.Helper()
	dsn := pgtest.NewDatabase(t)
	regs := make([]*definitions.Registry, n)
	for i := range regs {
		pool, err := pgxpool.New(context.Background(), dsn)
		require.NoError(t, err)
		b, err := New(context.Background(), pool, zaptest.NewLogger(t))
		require.NoError(t, err)
		r := definitions.NewRegistry(b, opts...)
		t.Cleanup(func() { r.Close(); b.Close(); pool.Close() })
		regs[i] = r
	}
	return regs
}

func collection(t testing.TB, r *definitions.Registry, tenant string) *definitions.Collection[metric] {
	t.Helper()
	c, err := definitions.CollectionOf[metric](context.Background(), r, kind, tenant)
	require.NoError(t, err)
	return c
}

func create(r *definitions.Registry, tenant, name string) (metric, error) {
	c, err := definitions.CollectionOf[metric](context.Background(), r, kind, tenant)
	if err != nil {
		return metric{}, err
	}
	return c.Create(context.Background(), name, func(id int64) (metric, error) { return metric{ID: id, Name: name, Version: 1}, nil })
}

// A change on one collector is in the next read of every other, with no
// wait; IDs stay unique across collectors.
func TestChangesAreVisibleEverywhereAtOnce(t *testing.T) {
	regs := collectors(t, 3)
	ids := map[int64]bool{}
	for i := range 9 {
		m, err := create(regs[i%3], "acme", fmt.Sprintf("m%d", i))
		require.NoError(t, err)
		assert.False(t, ids[m.ID], "ID %d given twice", m.ID)
		ids[m.ID] = true
		for _, r := range regs {
			got, ok := collection(t, r, "acme").Get(m.Name)
			require.True(t, ok, "created on collector %d, read on another", i%3)
			assert.Equal(t, m, got)
		}
	}
	_, err := collection(t, regs[1], "acme").Delete(context.Background(), "m4")
	require.NoError(t, err)
	for _, r := range regs {
		_, ok := collection(t, r, "acme").Get("m4")
		assert.False(t, ok, "a delete is seen everywhere")
		assert.Len(t, collection(t, r, "acme").List(), 8)
	}
	_, err = collection(t, regs[2], "acme").Delete(context.Background(), "m4")
	assert.ErrorIs(t, err, definitions.ErrNotFound, "deleted once, on any collector")
}

// Concurrent creates of one name on several collectors: exactly one wins.
func TestConcurrentCreatesHaveOneWinner(t *testing.T) {
	regs := collectors(t, 3)
	for round := range 5 {
		name := fmt.Sprintf("contested%d", round)
		var wins, exists atomic.Int32
		var wg sync.WaitGroup
		for i := range 12 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := create(regs[i%3], "acme", name)
				switch {
				case err == nil:
					wins.Add(1)
				case errors.Is(err, definitions.ErrExists):
					exists.Add(1)
				default:
					t.Errorf("unexpected error: %v", err)
				}
			}()
		}
		wg.Wait()
		assert.Equal(t, int32(1), wins.Load(), name)
		assert.Equal(t, int32(11), exists.Load(), name)
	}
	usage, err := regs[0].Usage(context.Background(), "acme")
	require.NoError(t, err)
	assert.Equal(t, 5, usage)
}

// Read-modify-write changes (a LaunchDarkly patch) on several collectors
// never lose one: the version counts every successful change.
func TestConcurrentPatchesAreAtomic(t *testing.T) {
	regs := collectors(t, 3)
	_, err := create(regs[0], "acme", "flag")
	require.NoError(t, err)
	var wg sync.WaitGroup
	for i := range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := definitions.CollectionOf[metric](context.Background(), regs[i%3], kind, "acme")
			if !assert.NoError(t, err) {
				return
			}
			_, err = c.Put(context.Background(), "flag", func(cur metric, exists bool) (metric, error) {
				if !exists {
					return cur, definitions.ErrNotFound
				}
				cur.Version++
				return cur, nil
			})
			assert.NoError(t, err)
		}()
	}
	wg.Wait()
	for _, r := range regs {
		got, ok := collection(t, r, "acme").Get("flag")
		require.True(t, ok)
		assert.Equal(t, 31, got.Version)
	}
}

// A tenant's quota holds across collectors.
func TestQuotaHoldsAcrossCollectors(t *testing.T) {
	regs := collectors(t, 3, definitions.WithMaxPerTenant(5))
	var wins, quota atomic.Int32
	var wg sync.WaitGroup
	for i := range 15 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := create(regs[i%3], "small", fmt.Sprintf("m%d", i))
			switch {
			case err == nil:
				wins.Add(1)
			case errors.Is(err, definitions.ErrQuota):
				quota.Add(1)
			default:
				t.Errorf("unexpected error: %v", err)
			}
		}()
	}
	wg.Wait()
	assert.Equal(t, int32(5), wins.Load())
	assert.Equal(t, int32(10), quota.Load())
	assert.Len(t, collection(t, regs[2], "small").List(), 5)
}

// A refused change leaves nothing, in the database or in memory.
func TestRefusedChangeLeavesNothing(t *testing.T) {
	regs := collectors(t, 2)
	c := collection(t, regs[0], "acme")
	_, err := c.Create(context.Background(), "bad", func(int64) (metric, error) { return metric{}, errors.New("invalid body") })
	require.EqualError(t, err, "invalid body")
	for _, r := range regs {
		_, ok := collection(t, r, "acme").Get("bad")
		assert.False(t, ok)
	}
	m, err := create(regs[1], "acme", "good")
	require.NoError(t, err)
	assert.Equal(t, int64(1), m.ID, "the refused create used no ID")
}

// Other collectors' changes move Version (LISTEN/NOTIFY), which components
// that derive state from definitions poll.
func TestVersionFollowsOtherCollectors(t *testing.T) {
	regs := collectors(t, 2)
	before := regs[1].Version()
	_, err := create(regs[0], "acme", "m")
	require.NoError(t, err)
	require.Eventually(t, func() bool { return regs[1].Version() > before }, 5*time.Second, 10*time.Millisecond)
	all, err := definitions.ListAll[metric](context.Background(), regs[1], kind)
	require.NoError(t, err)
	assert.Len(t, all["acme"], 1)
}

// PostgreSQL down: changes and reads fail with ErrUnavailable and change
// nothing; service resumes when it is back.
func TestDatabaseDownIsUnavailable(t *testing.T) {
	regs := collectors(t, 2)
	_, err := create(regs[0], "acme", "before")
	require.NoError(t, err)
	srv := pgtest.Server(t)
	require.NoError(t, srv.Stop("immediate"))
	restarted := false
	t.Cleanup(func() {
		if !restarted {
			_ = srv.Start()
		}
	})

	_, err = create(regs[1], "acme", "during")
	require.ErrorIs(t, err, definitions.ErrUnavailable)
	assert.NotContains(t, err.Error(), "127.0.0.1", "no addresses in what clients see")

	require.NoError(t, srv.Start())
	restarted = true
	require.Eventually(t, func() bool {
		_, err := create(regs[1], "acme", "after")
		return err == nil
	}, 20*time.Second, 100*time.Millisecond)
	for _, r := range regs {
		c := collection(t, r, "acme")
		_, during := c.Get("during")
		assert.False(t, during)
		assert.Len(t, c.List(), 2)
	}
}
