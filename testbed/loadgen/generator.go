package loadgen

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Config says how to drive a target.
type Config struct {
	// BaseURL is the server's URL ("http://127.0.0.1:8181").
	BaseURL string
	// Conns is the number of keep-alive connections (and workers); default 32.
	Conns int
	// Rate is the offered load in requests per second; 0 = as fast as possible.
	Rate float64
	// Duration bounds the run; MaxRequests (when > 0) too.
	Duration    time.Duration
	MaxRequests uint64
	// Timeout bounds one request (default 10s).
	Timeout time.Duration
	// FirstSeq offsets the sequence numbers (to continue a pool after a restart).
	FirstSeq uint64
}

// Result is what one run recorded.
type Result struct {
	Target  string
	Rate    float64 // offered (0 = max)
	Conns   int
	Elapsed time.Duration
	// Sent counts requests attempted; Acked those answered 2xx; Status every
	// answer by status code.
	Sent, Acked int64
	Status      map[int]int64
	// NotSent counts requests that never reached the server (connection
	// refused: the collector was down); Unknown those that failed after the
	// connection was up (the server may or may not have counted them).
	NotSent, Unknown int64
	// Violations counts 2xx answers to requests that must fail.
	Violations int64
	// AckedPoints counts the values in acknowledged requests.
	AckedPoints int64
	// Latency of every answered request (any status).
	Latency Latencies
	Ledger  *Ledger
	// FirstErr is an example transport error; Examples the start of the
	// first answer body of each non-2xx status.
	FirstErr string
	Examples map[int]string
	// NextSeq is the sequence number after the last one used.
	NextSeq uint64
}

// ReqPerSec is the acknowledged requests per second.
func (r *Result) ReqPerSec() float64 { return perSec(r.Acked, r.Elapsed) }

// AnsweredPerSec is the answered requests (any status) per second.
func (r *Result) AnsweredPerSec() float64 {
	var n int64
	for _, c := range r.Status {
		n += c
	}
	return perSec(n, r.Elapsed)
}

// PointsPerSec is the acknowledged values per second.
func (r *Result) PointsPerSec() float64 { return perSec(r.AckedPoints, r.Elapsed) }

func perSec(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// NewClient returns an HTTP client with up to conns keep-alive connections.
func NewClient(conns int, timeout time.Duration) *http.Client {
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        conns,
			MaxIdleConnsPerHost: conns,
			MaxConnsPerHost:     conns,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
	}
}

type worker struct {
	ledger                                           *Ledger
	lat                                              Latencies
	sent, acked, notSent, unknown, violations, ackPt int64
	status                                           map[int]int64
	firstErr                                         string
	examples                                         map[int]string
}

// Run drives t per cfg until the duration passes, MaxRequests were sent or
// ctx is done.
func Run(ctx context.Context, t Target, cfg Config) *Result {
	if cfg.Conns <= 0 {
		cfg.Conns = 32
	}
	client := NewClient(cfg.Conns, cfg.Timeout)
	defer client.CloseIdleConnections()
	// loop bounds the issuing of requests; requests in flight when it ends
	// complete under ctx, so that their outcome is known.
	loop := ctx
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		loop, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}
	var next atomic.Uint64
	start := time.Now()
	var interval time.Duration
	if cfg.Rate > 0 {
		interval = time.Duration(float64(time.Second) / cfg.Rate)
	}
	workers := make([]*worker, cfg.Conns)
	var wg sync.WaitGroup
	for i := range workers {
		w := &worker{ledger: NewLedger(), status: map[int]int64{}, examples: map[int]string{}}
		workers[i] = w
		wg.Go(func() {
			for loop.Err() == nil {
				n := next.Add(1) - 1
				if cfg.MaxRequests > 0 && n >= cfg.MaxRequests {
					return
				}
				if interval > 0 {
					due := start.Add(time.Duration(n) * interval)
					if d := time.Until(due); d > 0 {
						tm := time.NewTimer(d)
						select {
						case <-loop.Done():
							tm.Stop()
							return
						case <-tm.C:
						}
					}
				}
				w.do(ctx, client, cfg.BaseURL, t.Request(cfg.FirstSeq+n))
			}
		})
	}
	wg.Wait()
	res := &Result{
		Target: t.Name(), Rate: cfg.Rate, Conns: cfg.Conns, Elapsed: time.Since(start),
		Status: map[int]int64{}, Ledger: NewLedger(), Examples: map[int]string{},
	}
	used := next.Load()
	if cfg.MaxRequests > 0 {
		used = min(used, cfg.MaxRequests)
	}
	res.NextSeq = cfg.FirstSeq + used
	for _, w := range workers {
		res.Sent += w.sent
		res.Acked += w.acked
		res.NotSent += w.notSent
		res.Unknown += w.unknown
		res.Violations += w.violations
		res.AckedPoints += w.ackPt
		res.Latency = append(res.Latency, w.lat...)
		res.Ledger.Merge(w.ledger)
		for s, c := range w.status {
			res.Status[s] += c
		}
		if res.FirstErr == "" {
			res.FirstErr = w.firstErr
		}
		for s, b := range w.examples {
			if _, ok := res.Examples[s]; !ok {
				res.Examples[s] = b
			}
		}
	}
	return res
}

func (w *worker) do(ctx context.Context, c *http.Client, base string, r *Request) {
	req, err := http.NewRequestWithContext(ctx, r.Method, base+r.Path, bytes.NewReader(r.Body))
	if err != nil {
		panic(err) // a target built a bad request
	}
	if r.ContentType != "" {
		req.Header.Set("Content-Type", r.ContentType)
	}
	for k, v := range r.Header {
		req.Header[k] = v
	}
	w.sent++
	t0 := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			// The run ended while the request was in flight: the server
			// may have counted it.
			w.unknown++
			w.ledger.Unsure(r.Points)
			return
		}
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			w.notSent++
		} else {
			w.unknown++
			w.ledger.Unsure(r.Points)
		}
		if w.firstErr == "" {
			w.firstErr = err.Error()
		}
		return
	}
	if resp.StatusCode/100 != 2 {
		if _, seen := w.examples[resp.StatusCode]; !seen {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 160))
			w.examples[resp.StatusCode] = string(b)
		}
	}
	_, copyErr := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	w.lat.add(time.Since(t0))
	w.status[resp.StatusCode]++
	if resp.StatusCode/100 == 2 {
		_ = copyErr // the status line is the acknowledgement
		w.acked++
		w.ackPt += int64(len(r.Points))
		w.ledger.Ack(r.Points)
		if r.ExpectFail {
			w.violations++
		}
	}
}
