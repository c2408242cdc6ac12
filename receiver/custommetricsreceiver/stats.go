package custommetricsreceiver // import "github.com/custommetrics/bundle/receiver/custommetricsreceiver"

import (
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/custommetrics/bundle/internal/otelmap"
)

// apiStats counts values per tenant and API for BigFix's server-side
// "platform" figures, which show each tenant its own counts only. The
// Collector's own telemetry (obsreport) is the place to monitor them; this
// copy exists because the platform document must be answerable on its own.
// Tenants come from the configured credentials, so the map stays small.
type apiStats struct {
	mu      sync.RWMutex
	tenants map[string]*tenantStats
}

// tenantStats are one tenant's counters, per API.
type tenantStats struct {
	accepted map[string]*atomic.Int64
	refused  map[string]*atomic.Int64
}

func newAPIStats() *apiStats {
	return &apiStats{tenants: map[string]*tenantStats{}}
}

func newTenantStats() *tenantStats {
	s := &tenantStats{accepted: map[string]*atomic.Int64{}, refused: map[string]*atomic.Int64{}}
	for _, api := range valueAPIs {
		s.accepted[api] = new(atomic.Int64)
		s.refused[api] = new(atomic.Int64)
	}
	return s
}

// tenant returns the tenant's counters, creating them on first use.
func (s *apiStats) tenant(tenant string) *tenantStats {
	s.mu.RLock()
	t, ok := s.tenants[tenant]
	s.mu.RUnlock()
	if ok {
		return t
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok = s.tenants[tenant]; !ok {
		t = newTenantStats()
		s.tenants[tenant] = t
	}
	return t
}

func (s *apiStats) record(api, tenant string, n int, err error) {
	t := s.tenant(tenant)
	if err != nil {
		t.refused[api].Add(int64(n))
	} else {
		t.accepted[api].Add(int64(n))
	}
}

// counts returns the tenant's accepted and refused values per API (zeros for
// a tenant that sent none).
func (s *apiStats) counts(tenant string) (accepted, refused map[string]int64) {
	accepted, refused = map[string]int64{}, map[string]int64{}
	s.mu.RLock()
	t := s.tenants[tenant]
	s.mu.RUnlock()
	for _, api := range valueAPIs {
		if t != nil {
			accepted[api], refused[api] = t.accepted[api].Load(), t.refused[api].Load()
		} else {
			accepted[api], refused[api] = 0, 0
		}
	}
	return accepted, refused
}

// batchTenant is the tenant a batch built by otelmap.NewBatch belongs to:
// its resource's custommetrics.tenant ("" for the default tenant).
func batchTenant(md pmetric.Metrics) string {
	if md.ResourceMetrics().Len() == 0 {
		return ""
	}
	if v, ok := md.ResourceMetrics().At(0).Resource().Attributes().Get(otelmap.AttrTenant); ok {
		return v.Str()
	}
	return ""
}
