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

// log is an owner: callers queue ints, flush "writes" them.
type log struct {
	mu      sync.Mutex
	queued  []int
	written map[int]bool
	flushes int
	fail    error
}

func (l *log) add(v int) {
	l.mu.Lock()
	l.queued = append(l.queued, v)
	l.mu.Unlock()
}

func (l *log) flush() (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	batch := l.queued
	l.queued = nil
	if len(batch) == 0 {
		return 0, nil
	}
	l.flushes++
	if l.fail != nil {
		l.queued = append(batch, l.queued...) // stays queued
		return len(batch), l.fail
	}
	for _, v := range batch {
		l.written[v] = true
	}
	return len(batch), nil
}

func (l *log) isWritten(v int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.written[v]
}

// TestEveryWaiterFindsItsWriteDone: whatever the interleaving, a caller's
// item is written when its Wait returns nil.
func TestEveryWaiterFindsItsWriteDone(t *testing.T) {
	for _, delay := range []time.Duration{0, 200 * time.Microsecond} {
		l := &log{written: map[int]bool{}}
		c := New(l.flush, delay)
		const callers, calls = 32, 100
		var wg sync.WaitGroup
		for g := range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range calls {
					v := g*calls + i
					l.add(v)
					if assert.NoError(t, c.Wait(context.Background())) {
						assert.True(t, l.isWritten(v), "released before its item was written")
					}
				}
			}()
		}
		wg.Wait()
		c.Close()
		t.Logf("delay %v: %d calls, %d flushes", delay, callers*calls, l.flushes)
		assert.Len(t, l.written, callers*calls)
	}
}

// TestCallersShareARound: callers that queue while a write is in progress
// are all written by the next one.
func TestCallersShareARound(t *testing.T) {
	l := &log{written: map[int]bool{}}
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	c := New(func() (int, error) {
		n, err := l.flush()
		once.Do(func() { close(entered); <-release }) // the first write takes a while
		return n, err
	}, 0)
	defer c.Close()
	errs := make(chan error, 11)
	l.add(0)
	go func() { errs <- c.Wait(context.Background()) }()
	<-entered
	for i := 1; i <= 10; i++ {
		l.add(i)
		go func() { errs <- c.Wait(context.Background()) }()
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
	assert.Equal(t, 2, l.flushes, "the ten callers that came during the first write share the second")
	assert.Len(t, l.written, 11)
}

// TestErrorReachesTheRoundsWaiters: a failed write fails the waiters of that
// round; the items stay queued and a later round writes them.
func TestErrorReachesTheRoundsWaiters(t *testing.T) {
	boom := errors.New("disk full")
	l := &log{written: map[int]bool{}, fail: boom}
	c := New(l.flush, 0)
	defer c.Close()
	l.add(1)
	require.ErrorIs(t, c.Wait(context.Background()), boom)
	l.mu.Lock()
	l.fail = nil
	l.mu.Unlock()
	l.add(2)
	require.NoError(t, c.Wait(context.Background()))
	assert.True(t, l.isWritten(1), "the failed item is written by the next round")
	assert.True(t, l.isWritten(2))
}

// TestCloseWritesWhatIsQueued: Close flushes queued items (a Kick-only
// caller's too); a Wait after Close fails rather than blocking.
func TestCloseWritesWhatIsQueued(t *testing.T) {
	l := &log{written: map[int]bool{}}
	c := New(l.flush, time.Hour) // a long delay must not hold up Close
	l.add(1)
	l.add(2)
	c.Close()
	assert.True(t, l.isWritten(1))
	assert.True(t, l.isWritten(2))
	l.add(3)
	assert.ErrorIs(t, c.Wait(context.Background()), ErrClosed)
	c.Close() // idempotent

	// Never started: Close still flushes.
	l2 := &log{written: map[int]bool{}}
	c2 := New(l2.flush, 0)
	l2.add(7)
	c2.Close()
	assert.True(t, l2.isWritten(7))
}

// TestWaitHonoursContext: a caller whose context ends stops waiting (its
// item is still written by the round).
func TestWaitHonoursContext(t *testing.T) {
	release := make(chan struct{})
	l := &log{written: map[int]bool{}}
	c := New(func() (int, error) { <-release; return l.flush() }, 0)
	l.add(1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, c.Wait(ctx), context.DeadlineExceeded)
	close(release)
	c.Close()
	assert.True(t, l.isWritten(1))
}
