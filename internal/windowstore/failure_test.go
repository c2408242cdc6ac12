package windowstore

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/custommetrics/bundle/internal/calendar"
)

type failingBackend struct{ sets atomic.Int64 }

func (b *failingBackend) Get(context.Context, string) ([]byte, error) { return nil, nil }
func (b *failingBackend) Set(context.Context, string, []byte) error {
	b.sets.Add(1)
	return errors.New("disk full")
}

// Every write fails, so no Add may report success: a window that a failed
// round took stays queued for the round its caller waits on.
func TestFailedWriteIsNeverReportedAsSuccess(t *testing.T) {
	b := &failingBackend{}
	s := New(b, calendar.UTC())
	defer s.Close()
	var ok atomic.Int64
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				_, _, err := s.Add(context.Background(), Series{Metric: "m", Key: string(rune('a' + g))}, calendar.Hour, int64(i), 1, 1)
				if err == nil {
					ok.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if ok.Load() > 0 {
		t.Fatalf("%d Adds reported success although every write failed (%d writes)", ok.Load(), b.sets.Load())
	}
}
