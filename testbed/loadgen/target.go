package loadgen

import (
	"context"
	"net/http"
)

// Request is one HTTP request a target sends, with the values it carries.
type Request struct {
	Method      string
	Path        string // with the query, appended to the base URL
	ContentType string
	Header      http.Header // extra headers (may be nil)
	Body        []byte
	// Points are the values the collector must count once it acknowledges
	// the request; nil for requests that carry none (malformed, baseline).
	Points []Point
	// ExpectFail marks a request that must not be acknowledged (malformed,
	// oversize): a 2xx answer to it is recorded as a violation.
	ExpectFail bool
}

// Target is one API the generator can speak. Implementations build their
// requests up front (a pool indexed by sequence number) so that the
// generator's own cost per request stays small and equal for every API.
//
// To add an API, implement Target: Setup
// creates whatever definitions the API needs through the API itself, and
// Request returns the n-th request with the values it carries.
type Target interface {
	// Name names the target in reports ("threatconnect", "otlp-json", ...).
	Name() string
	// Setup prepares the server (e.g. creates metric definitions). It is
	// called once before the load starts and again after a restart; it must
	// accept that its definitions already exist.
	Setup(ctx context.Context, c *http.Client, baseURL string) error
	// Request returns request number seq. It must be safe for concurrent
	// use and must not be modified by the caller.
	Request(seq uint64) *Request
	// PointsPerRequest is the number of values in each good request.
	PointsPerRequest() int
}

// Pool is a Target whose requests are a fixed, precomputed cycle.
type Pool struct {
	TargetName string
	Reqs       []*Request
	PerRequest int
	SetupFunc  func(ctx context.Context, c *http.Client, baseURL string) error
}

// Name implements Target.
func (p *Pool) Name() string { return p.TargetName }

// Setup implements Target.
func (p *Pool) Setup(ctx context.Context, c *http.Client, baseURL string) error {
	if p.SetupFunc == nil {
		return nil
	}
	return p.SetupFunc(ctx, c, baseURL)
}

// Request implements Target.
func (p *Pool) Request(seq uint64) *Request { return p.Reqs[seq%uint64(len(p.Reqs))] }

// PointsPerRequest implements Target.
func (p *Pool) PointsPerRequest() int { return p.PerRequest }

// Mix cycles through several targets, request by request (weights by
// repetition: Mix{a, a, b} sends two a for one b).
type Mix struct {
	TargetName string
	Targets    []Target
}

// Name implements Target.
func (m *Mix) Name() string { return m.TargetName }

// Setup implements Target.
func (m *Mix) Setup(ctx context.Context, c *http.Client, baseURL string) error {
	seen := map[Target]bool{}
	for _, t := range m.Targets {
		if seen[t] {
			continue
		}
		seen[t] = true
		if err := t.Setup(ctx, c, baseURL); err != nil {
			return err
		}
	}
	return nil
}

// Request implements Target.
func (m *Mix) Request(seq uint64) *Request {
	n := uint64(len(m.Targets))
	return m.Targets[seq%n].Request(seq / n)
}

// PointsPerRequest implements Target (the first target's).
func (m *Mix) PointsPerRequest() int { return m.Targets[0].PointsPerRequest() }
