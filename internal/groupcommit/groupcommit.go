// Package groupcommit makes the durable writes of concurrent callers share
// storage transactions.
//
// A caller queues what it changed (in its owner's own structure), then calls
// Wait. One committer goroutine repeatedly opens a new round and calls the
// owner's flush, which takes everything queued so far and writes it in one
// transaction; every caller that waited on the round is then released with
// flush's result. While flush writes, the next round fills, so under
// concurrency many callers share one write and a lone caller pays one write
// per call.
//
// When the previous round was shared by several callers, the committer first
// waits Delay for more of them (PostgreSQL's commit_delay/commit_siblings):
// a little latency for fewer transactions. A lone caller never waits.
//
// Correctness rests on one order and one rule. The order: the committer opens
// the next round before it calls flush, so a caller that queued before
// calling Wait is taken by the flush of its round or an earlier one. The
// rule: a flush that fails leaves what it took queued, so a caller whose
// item an earlier, failed flush took is released only by a flush that
// wrote it (or failed to).
package groupcommit // import "github.com/custommetrics/bundle/internal/groupcommit"

import (
	"context"
	"errors"
	"sync"
	"time"
)

// ErrClosed is returned by Wait once the committer has stopped.
var ErrClosed = errors.New("groupcommit: closed")

// Flush writes everything queued so far in one transaction and reports how
// many items it took. It is only ever called by the committer goroutine.
//
// On failure it must leave queued what it failed to write: a caller may
// have queued an item that this flush took while it registered on the next
// round (queueing and Wait are not one step), and only a later flush that
// writes the item may release it.
type Flush func() (int, error)

// Committer runs the rounds; safe for concurrent use.
type Committer struct {
	flush Flush
	delay time.Duration

	mu     sync.Mutex
	cur    *round
	shared bool // the last round had several waiters

	kick      chan struct{}
	stop      chan struct{}
	done      chan struct{}
	startOnce sync.Once
	stopOnce  sync.Once
}

type round struct {
	done    chan struct{}
	err     error
	waiters int
}

// New returns a committer calling flush, waiting delay before a round when
// the previous one was shared (0: never wait). Its goroutine starts with
// the first Wait; Close stops it.
func New(flush Flush, delay time.Duration) *Committer {
	return &Committer{
		flush: flush, delay: delay, cur: &round{done: make(chan struct{})},
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
	}
}

// Wait returns once everything the caller queued before calling it is
// written, with the error of the write that took it. If ctx ends first it
// returns ctx's error, although the write will still happen.
func (c *Committer) Wait(ctx context.Context) error {
	c.mu.Lock()
	r := c.cur
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
		case <-r.done: // written by the last rounds before the stop
			return r.err
		default:
			return ErrClosed
		}
	}
}

// Kick asks for a round without waiting for it (to write something queued
// by a caller that does not need to know when).
func (c *Committer) Kick() {
	c.startOnce.Do(func() { go c.run() })
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

func (c *Committer) run() {
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
			// Write what is left; stop at the first round that writes
			// nothing or fails (a failing store would loop forever).
			for {
				if n, err := c.round(); n == 0 || err != nil {
					return
				}
			}
		}
	}
}

// round opens the next round, flushes, and releases the previous round's waiters.
func (c *Committer) round() (int, error) {
	c.mu.Lock()
	r := c.cur
	c.cur = &round{done: make(chan struct{})}
	c.shared = r.waiters > 1
	c.mu.Unlock()
	n, err := c.flush()
	r.err = err
	close(r.done)
	return n, err
}

// Close writes what is still queued and stops the committer. Waits after
// Close return ErrClosed unless their round was written.
func (c *Committer) Close() {
	c.stopOnce.Do(func() {
		c.startOnce.Do(func() { go c.run() })
		close(c.stop)
	})
	<-c.done
}
