package custommetricsreceiver // import "github.com/custommetrics/bundle/receiver/custommetricsreceiver"

import "sync/atomic"

// apiStats counts values per API for BigFix's server-side "platform" figures.
// The Collector's own telemetry (obsreport) is the place to monitor them; this
// copy exists because the platform document must be answerable on its own.
type apiStats struct {
	accepted map[string]*atomic.Int64
	refused  map[string]*atomic.Int64
}

func newAPIStats() *apiStats {
	s := &apiStats{accepted: map[string]*atomic.Int64{}, refused: map[string]*atomic.Int64{}}
	for _, api := range valueAPIs {
		s.accepted[api] = new(atomic.Int64)
		s.refused[api] = new(atomic.Int64)
	}
	return s
}

func (s *apiStats) record(api string, n int, err error) {
	if err != nil {
		s.refused[api].Add(int64(n))
	} else {
		s.accepted[api].Add(int64(n))
	}
}
