package groupcommit

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// store is an owner: rounds write ints into it, or fail and leave no trace.
type store struct {
	mu      sync.Mutex
	written map[int]bool
	rounds  int
	fail    error
}

func newStore() *store { return &store{written: map[int]bool{}} }

func (s *store) write(items []int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rounds++
	if s.fail != nil {
		return s.fail
	}
	for _, v := range items {
		s.written[v] = true
	}
	return nil
}

func (s *store) isWritten(v int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.written[v]
}

func (s *store) setFail(err error) {
	s.mu.Lock()
	s.fail = err
	s.mu.Unlock()
}

// TestEveryWaiterIsToldItsOwnWrite: whatever the interleaving, and with
// rounds failing at random, Wait returns nil exactly when the caller's item
// was written (the round Add returns is the one that takes the item).
func TestEveryWaiterIsToldItsOwnWrite(t *testing.T) {
	for _, delay := range []time.Duration{0, 200 * time.Microsecond} {
		s := newStore()
		var n int
		c := New(func(items []int) error {
			n++
			if n%3 == 0 {
				s.setFail(errors.New("disk full"))
			} else {
				s.setFail(nil)
			}
			return s.write(items)
		}, delay)
		const callers, calls = 32, 100
		var wg sync.WaitGroup
		var ok, failed sync.Map
		for g := range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range calls {
					v := g*calls + i
					if err := c.Wait(context.Background(), c.Add(v)); err == nil {
						ok.Store(v, true)
					} else {
						failed.Store(v, true)
					}
				}
			}()
		}
		wg.Wait()
		c.Close()
		var nOK, nFailed int
		ok.Range(func(k, _ any) bool {
			nOK++
			assert.True(t, s.isWritten(k.(int)), "told written but not written")
			return true
		})
		failed.Range(func(k, _ any) bool {
			nFailed++
			assert.False(t, s.isWritten(k.(int)), "told failed but written")
			return true
		})
		t.Logf("delay %v: %d calls, %d rounds, %d failed", delay, callers*calls, s.rounds, nFailed)
		assert.Equal(t, callers*calls, nOK+nFailed)
		assert.Positive(t, nFailed)
	}
}

// TestCallersShareARound: callers that add while a write is in progress are
// all written by the next one.
func TestCallersShareARound(t *testing.T) {
	s := newStore()
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	c := New(func(items []int) error {
		err := s.write(items)
		once.Do(func() { close(entered); <-release }) // the first write takes a while
		return err
	}, 0)
	defer c.Close()
	errs := make(chan error, 11)
	r0 := c.Add(0)
	go func() { errs <- c.Wait(context.Background(), r0) }()
	<-entered
	for i := 1; i <= 10; i++ {
		r := c.Add(i)
		go func() { errs <- c.Wait(context.Background(), r) }()
	}
	require.Eventually(t, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.cur.waiters == 10
	}, 5*time.Second, time.Millisecond)
	close(release)
	for range 11 {
		require.NoError(t, <-errs)
	}
	assert.Equal(t, 2, s.rounds, "the ten callers that came during the first write share the second")
	assert.Len(t, s.written, 11)
}

// TestFailedRoundLeavesNoTrace: a failed write fails the waiters of that
// round and is not retried: its items are gone, later rounds write only
// their own.
func TestFailedRoundLeavesNoTrace(t *testing.T) {
	boom := errors.New("disk full")
	s := newStore()
	s.setFail(boom)
	c := New(s.write, 0)
	defer c.Close()
	require.ErrorIs(t, c.Wait(context.Background(), c.Add(1)), boom)
	s.setFail(nil)
	require.NoError(t, c.Wait(context.Background(), c.Add(2)))
	assert.False(t, s.isWritten(1), "the failed item must not be written later")
	assert.True(t, s.isWritten(2))
}

// TestCloseWritesWhatIsQueued: Close writes queued items (a Kick-only
// caller's too); a Wait after Close fails rather than blocking.
func TestCloseWritesWhatIsQueued(t *testing.T) {
	s := newStore()
	c := New(s.write, time.Hour) // a long delay must not hold up Close
	c.Add(1)
	c.Add(2)
	c.Kick()
	c.Close()
	assert.True(t, s.isWritten(1))
	assert.True(t, s.isWritten(2))
	assert.ErrorIs(t, c.Wait(context.Background(), c.Add(3)), ErrClosed)
	c.Close() // idempotent

	// Never started: Close still writes.
	s2 := newStore()
	c2 := New(s2.write, 0)
	c2.Add(7)
	c2.Close()
	assert.True(t, s2.isWritten(7))
}

// TestWaitHonoursContext: a caller whose context ends stops waiting (its
// item is still written by the round).
func TestWaitHonoursContext(t *testing.T) {
	release := make(chan struct{})
	s := newStore()
	c := New(func(items []int) error { <-release; return s.write(items) }, 0)
	r := c.Add(1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, c.Wait(ctx, r), context.DeadlineExceeded)
	close(release)
	c.Close()
	assert.True(t, s.isWritten(1))
}
