package anomalyprocessor // import "github.com/custommetrics/bundle/processor/anomalyprocessor"

import (
	"strings"
	"sync"
)

// noTenant is the tenant id of a series whose tenant is not known yet: a
// state stored by a version that did not record it, until its next point.
const noTenant = 0

// tenantTable counts the series of each tenant (max_series_per_tenant). A
// series holds its tenant's id (a uint32 in the padding of series, so the
// memory per series does not change); an id is freed with the tenant's last
// series, so the table holds only tenants that have series. It is locked only
// when a series is created, attributed or released, never per point.
type tenantTable struct {
	mu    sync.Mutex
	ids   map[string]uint32
	slots []tenantSlot // by id-1
	free  []uint32
}

type tenantSlot struct {
	name   string
	series int
	full   bool // a new series was refused since the tenant was last under its quota
}

// acquire counts one more series of tenant and returns its id. With limit > 0
// and the tenant at limit, it refuses (ok false); first is true for the first
// refusal since the tenant was last under its limit (to log once).
func (t *tenantTable) acquire(tenant string, limit int) (id uint32, ok, first bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	id, exists := t.ids[tenant]
	if exists {
		sl := &t.slots[id-1]
		if limit > 0 && sl.series >= limit {
			first = !sl.full
			sl.full = true
			return 0, false, first
		}
		sl.series++
		return id, true, false
	}
	if t.ids == nil {
		t.ids = map[string]uint32{}
	}
	name := strings.Clone(tenant) // the caller's string may live in pdata
	if n := len(t.free); n > 0 {
		id = t.free[n-1]
		t.free = t.free[:n-1]
		t.slots[id-1] = tenantSlot{name: name, series: 1}
	} else {
		t.slots = append(t.slots, tenantSlot{name: name, series: 1})
		id = uint32(len(t.slots))
	}
	t.ids[name] = id
	return id, true, false
}

// release uncounts one series of tenant id.
func (t *tenantTable) release(id uint32) {
	if id == noTenant {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	sl := &t.slots[id-1]
	sl.series--
	sl.full = false
	if sl.series <= 0 {
		delete(t.ids, sl.name)
		*sl = tenantSlot{}
		t.free = append(t.free, id)
	}
}

// name returns the tenant of id ("" for noTenant).
func (t *tenantTable) name(id uint32) string {
	if id == noTenant {
		return ""
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.slots[id-1].name
}

// count returns the series of tenant.
func (t *tenantTable) count(tenant string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	if id, ok := t.ids[tenant]; ok {
		return t.slots[id-1].series
	}
	return 0
}
