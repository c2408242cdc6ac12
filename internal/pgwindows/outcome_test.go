package pgwindows

import (
	"context"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/custommetrics/bundle/internal/aggregation"
	"github.com/custommetrics/bundle/internal/calendar"
	"github.com/custommetrics/bundle/internal/pgserver/pgtest"
)

// cut is what a lossyProxy does to the next connection that carries a
// request once armed.
type cut int32

const (
	cutNone     cut = iota
	cutAnswers      // the request reaches the server; its answer is lost, then the connection breaks
	cutRequests     // the request is lost; the connection breaks
	cutForever      // every connection breaks at once (the database is unreachable)
)

// lossyProxy forwards TCP connections to a PostgreSQL server and, when armed,
// breaks one the way a network does: after the request or before it.
type lossyProxy struct {
	ln     net.Listener
	target string
	mode   atomic.Int32
	wg     sync.WaitGroup
}

func newLossyProxy(t *testing.T, target string) *lossyProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &lossyProxy{ln: ln, target: target}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() { _ = ln.Close(); p.wg.Wait() })
	return p
}

func (p *lossyProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if cut(p.mode.Load()) == cutForever {
			_ = c.Close()
			continue
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.wg.Add(1)
		go p.pipe(c, s)
	}
}

// pipe copies both ways. An armed mode applies to the first request (client
// bytes) that arrives after arming.
func (p *lossyProxy) pipe(client, server net.Conn) {
	defer p.wg.Done()
	var dropAnswers atomic.Bool
	closeBoth := func() { _ = client.Close(); _ = server.Close() }
	go func() { // server → client
		buf := make([]byte, 32<<10)
		for {
			n, err := server.Read(buf)
			if n > 0 && !dropAnswers.Load() {
				if _, werr := client.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		closeBoth()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := client.Read(buf)
		if n > 0 {
			switch cut(p.mode.Load()) {
			case cutAnswers:
				if p.mode.CompareAndSwap(int32(cutAnswers), int32(cutNone)) {
					dropAnswers.Store(true)
					_, _ = server.Write(buf[:n])
					time.Sleep(300 * time.Millisecond) // the server commits meanwhile
					closeBoth()
					return
				}
			case cutRequests, cutForever:
				p.mode.CompareAndSwap(int32(cutRequests), int32(cutNone))
				closeBoth()
				return
			}
			if _, werr := server.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	closeBoth()
}

// A merge whose answer is lost after it committed is not refused: Merge
// finds its record and answers the stored figures. One whose request never
// arrived is refused and counts nothing. One whose outcome cannot be found
// out says so (ErrOutcomeUnknown), the only error after which the values
// may have counted.
func TestMergeOutcomeAfterABrokenConnection(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	u, err := url.Parse(dsn)
	require.NoError(t, err)
	proxy := newLossyProxy(t, u.Host)
	u.Host = proxy.ln.Addr().String()
	// One connection: the merge before each cut prepares the statements on
	// the connection that the cut merge then uses (the cut then breaks the
	// merge's one round trip, not the preparing one).
	q := u.Query()
	q.Set("pool_max_conns", "1")
	u.RawQuery = q.Encode()
	pcfg, err := pgxpool.ParseConfig(u.String())
	require.NoError(t, err)
	// No health check of an idle connection: it would take the armed cut
	// in place of the merge.
	pcfg.ShouldPing = func(context.Context, pgxpool.ShouldPingParams) bool { return false }
	pool, err := pgxpool.NewWithConfig(context.Background(), pcfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	s, err := New(context.Background(), pool)
	require.NoError(t, err)
	direct := newStore(t, dsn)
	ctx := context.Background()
	sum := func(series string) float64 {
		m, ok, err := direct.get(ctx, []byte(series), calendar.Day, 0, aggregation.Sum)
		require.NoError(t, err)
		if !ok {
			return 0
		}
		return m.State.Value(aggregation.Sum)
	}
	_, err = s.Merge(ctx, []Delta{delta("lost-answer", aggregation.Sum, 0, [3]float64{5, 0, 0})})
	require.NoError(t, err)

	proxy.mode.Store(int32(cutAnswers))
	got, err := s.Merge(ctx, []Delta{delta("lost-answer", aggregation.Sum, 0, [3]float64{2, 0, 0})})
	require.NoError(t, err, "it committed: not refused")
	assert.Equal(t, 7.0, got[0].State.Value(aggregation.Sum), "the figure holds the value")
	assert.Equal(t, int64(2), got[0].Revision)
	assert.Equal(t, 7.0, sum("lost-answer"))

	proxy.mode.Store(int32(cutRequests))
	_, err = s.Merge(ctx, []Delta{delta("lost-request", aggregation.Sum, 0, [3]float64{3, 0, 0})})
	require.Error(t, err)
	assert.NotErrorIs(t, err, ErrOutcomeUnknown)
	assert.Zero(t, sum("lost-request"), "refused: nothing counted")

	defer func(d time.Duration) { resolveFor = d }(resolveFor)
	resolveFor = 300 * time.Millisecond
	_, err = s.Merge(ctx, []Delta{delta("unknown", aggregation.Sum, 0, [3]float64{1, 0, 0})})
	require.NoError(t, err)
	proxy.mode.Store(int32(cutAnswers))
	go func() { // the database becomes unreachable right after the request
		for cut(proxy.mode.Load()) == cutAnswers {
			time.Sleep(time.Millisecond)
		}
		proxy.mode.Store(int32(cutForever))
	}()
	_, err = s.Merge(ctx, []Delta{delta("unknown", aggregation.Sum, 0, [3]float64{4, 0, 0})})
	require.ErrorIs(t, err, ErrOutcomeUnknown)
	proxy.mode.Store(int32(cutNone))
	assert.Equal(t, 5.0, sum("unknown"), "it did commit: unknown was the truth")

	// No connection at all: nothing was sent, so the outcome is known.
	proxy.mode.Store(int32(cutForever))
	cold, err := pgxpool.NewWithConfig(context.Background(), pcfg) // no connection yet
	require.NoError(t, err)
	defer cold.Close()
	_, err = (&Store{pool: cold}).Merge(ctx, []Delta{delta("unreachable", aggregation.Sum, 0, [3]float64{1, 0, 0})})
	require.Error(t, err)
	assert.NotErrorIs(t, err, ErrOutcomeUnknown, "a connection that never opened sent nothing")
	proxy.mode.Store(int32(cutNone))

	// Records of old merges are forgotten.
	require.NoError(t, s.Forget(ctx, time.Now().Add(time.Hour)))
	var n int
	require.NoError(t, direct.pool.QueryRow(ctx, `SELECT count(*) FROM window_merges`).Scan(&n))
	assert.Zero(t, n)
}
