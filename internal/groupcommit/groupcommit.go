// Package groupcommit makes the durable writes of concurrent callers share
// storage transactions.
//
// A caller Adds an item and gets the Round whose write will take it, then
// Waits on that round. One committer goroutine repeatedly closes the current
// round, taking its items, and calls the owner's write with them in one
// transaction; every caller that waited on the round is then released with
// write's result. While write runs, the next round fills, so under
// concurrency many callers share one write and a lone caller pays one write
// per call.
//
// Items and rounds are swapped under one lock, so the round Add returns is
// exactly the round whose write takes the item: a caller is told the outcome
// of the write that carried its item, never that of another. A failed round
// therefore needs no retry by the committer: its owner discards what the
// write took (nothing of it was counted) and its callers report the failure.
//
// When the previous round was shared by several callers, the committer first
// waits Delay for more of them (PostgreSQL's commit_delay/commit_siblings):
// a little latency for fewer transactions. A lone caller never waits.
package groupcommit // import "github.com/custommetrics/bundle/internal/groupcommit"

import (
	"context"
	"errors"
	"sync"
	"time"
)

// ErrClosed is returned by Wait once the committer has stopped without
// writing the round.
var ErrClosed = errors.New("groupcommit: closed")

// Write writes the items of one round in one transaction. It is only ever
// called by the committer goroutine, one round at a time, in round order.
type Write[T any] func(items []T) error

// A Round is one write: the items added while it was current.
type Round struct {
	done    chan struct{}
	err     error
	waiters int // guarded by the committer's mu
}

// Committer runs the rounds; safe for concurrent use.
type Committer[T any] struct {
	write Write[T]
	delay time.Duration

	mu     sync.Mutex
	cur    *Round
	items  []T
	spare  []T  // the previous round's slice, reused (committer only)
	shared bool // the last round had several waiters

	kick      chan struct{}
	stop      chan struct{}
	done      chan struct{}
	startOnce sync.Once
	stopOnce  sync.Once
}

// New returns a committer calling write, waiting delay before a round when
// the previous one was shared (0: never wait). Its goroutine starts with the
// first Wait or Kick; Close stops it.
func New[T any](write Write[T], delay time.Duration) *Committer[T] {
	return &Committer[T]{
		write: write, delay: delay, cur: newRound(),
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
	}
}

func newRound() *Round { return &Round{done: make(chan struct{})} }

// Add queues item and returns the round whose write takes it. It does not
// start a round: call Wait (or Kick, when nobody waits).
func (c *Committer[T]) Add(item T) *Round {
	c.mu.Lock()
	c.items = append(c.items, item)
	r := c.cur
	c.mu.Unlock()
	return r
}

// Wait returns once round r is written, with the error of its write. If ctx
// ends first it returns ctx's error, although the write will still happen
// (the caller cannot know its outcome). After Close it returns ErrClosed
// unless r was written by the last rounds before the stop.
func (c *Committer[T]) Wait(ctx context.Context, r *Round) error {
	c.mu.Lock()
	r.waiters++
	c.mu.Unlock()
	c.Kick()
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		return ctx.Err()
	case <-c.done:
		select {
		case <-r.done:
			return r.err
		default:
			return ErrClosed
		}
	}
}

// Kick asks for a round without waiting for it (to write something added by
// a caller that does not need to know when).
func (c *Committer[T]) Kick() {
	c.startOnce.Do(func() { go c.run() })
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

func (c *Committer[T]) run() {
	defer close(c.done)
	for {
		select {
		case <-c.kick:
			if c.delay > 0 && c.shared {
				select {
				case <-time.After(c.delay):
				case <-c.stop:
				}
			}
			c.round()
		case <-c.stop:
			// Write what is left; stop at the first round that has nothing
			// to write or fails (a failing store would loop forever).
			for {
				if n, err := c.round(); n == 0 || err != nil {
					return
				}
			}
		}
	}
}

// round closes the current round, writes its items and releases its waiters.
func (c *Committer[T]) round() (int, error) {
	c.mu.Lock()
	r, items := c.cur, c.items
	if len(items) == 0 {
		c.mu.Unlock()
		return 0, nil
	}
	c.cur, c.items = newRound(), c.spare[:0]
	c.shared = r.waiters > 1
	c.mu.Unlock()
	r.err = c.write(items)
	close(r.done)
	clear(items)
	c.spare = items
	return len(items), r.err
}

// Close writes what is still queued and stops the committer.
func (c *Committer[T]) Close() {
	c.stopOnce.Do(func() {
		c.startOnce.Do(func() { go c.run() })
		close(c.stop)
	})
	<-c.done
}
