package windows // import "github.com/custommetrics/bundle/internal/windows"

import (
	"errors"
	"sync/atomic"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/custommetrics/bundle/internal/aggregation"
	"github.com/custommetrics/bundle/internal/otelmap"
)

// A Desc is the identity of an output metric shared by its series: resource,
// scope, name, unit and aggregation function. Interned by its Set; never
// freed (there are few: one per metric per resource). Read-only.
type Desc struct {
	Resource    pcommon.Resource
	Scope       pcommon.InstrumentationScope
	Name        string
	Unit        string
	Description string
	Meta        pcommon.Map // input metadata
	Fn          aggregation.Func

	id   uint64
	key  string // canonical identity, part of every storage key
	rs   string // the resource-and-scope prefix of key
	blob []byte // encoded identity for storage records
	// tenant counts the series-windows in memory of the resource's tenant.
	tenant *tenantWindows
}

// ID orders descs by first use within one process.
func (d *Desc) ID() uint64 { return d.id }

// ResourceScope is the canonical identity of d's resource and scope: descs
// with equal ones share them.
func (d *Desc) ResourceScope() string { return d.rs }

// tenantWindows is one tenant's share of the series-windows in memory.
type tenantWindows struct {
	name string
	n    atomic.Int64
}

// tenantOf returns the counter of the tenant named by res. Caller holds descMu.
func (s *Set) tenantOf(res pcommon.Resource) *tenantWindows {
	var name string
	if v, ok := res.Attributes().Get(otelmap.AttrTenant); ok {
		name = v.AsString()
	}
	tw := s.tenants[name]
	if tw == nil {
		tw = &tenantWindows{name: name}
		s.tenants[name] = tw
	}
	return tw
}

// Scope sets the resource and scope of the descs that Identity returns next.
func (b *Batch) Scope(rm pmetric.ResourceMetrics, sm pmetric.ScopeMetrics) {
	b.rs = appendResourceScope(b.rs[:0], b, rm, sm)
	b.rm, b.sm = rm, sm
}

// Identity interns the identity of the output of metric m (under the
// resource and scope of the last Scope call) aggregated with fn.
func (b *Batch) Identity(m pmetric.Metric, fn aggregation.Func) *Desc {
	return b.s.descFor(b, b.rs, b.rm, b.sm, m, fn)
}

// Identity interns the identity of metric m of rm and sm aggregated with fn.
func (s *Set) Identity(rm pmetric.ResourceMetrics, sm pmetric.ScopeMetrics, m pmetric.Metric, fn aggregation.Func) *Desc {
	b := s.Batch(0)
	defer b.Release()
	b.Scope(rm, sm)
	return b.Identity(m, fn)
}

func (s *Set) descFor(b *Batch, prefix []byte, rm pmetric.ResourceMetrics, sm pmetric.ScopeMetrics, m pmetric.Metric, fn aggregation.Func) *Desc {
	k := append(b.dkey[:0], prefix...)
	k = appendString(k, m.Name())
	k = appendString(k, m.Unit())
	k = append(k, byte(fn))
	b.dkey = k
	s.descMu.RLock()
	d := s.descs[string(k)]
	s.descMu.RUnlock()
	if d != nil {
		return d
	}
	s.descMu.Lock()
	defer s.descMu.Unlock()
	if d = s.descs[string(k)]; d != nil {
		return d
	}
	s.descID++
	d = &Desc{
		id: s.descID, key: string(k), Fn: fn,
		Resource: pcommon.NewResource(), Scope: pcommon.NewInstrumentationScope(),
		Name: m.Name(), Unit: m.Unit(), Description: m.Description(), Meta: pcommon.NewMap(),
	}
	rm.Resource().CopyTo(d.Resource)
	sm.Scope().CopyTo(d.Scope)
	m.Metadata().CopyTo(d.Meta)
	d.rs = d.key[:len(prefix)]
	d.blob = encodeDescBlob(d)
	d.tenant = s.tenantOf(d.Resource)
	s.descs[d.key] = d
	return d
}

// appendResourceScope appends the canonical identity of a resource and scope.
// The scope version is left out: it changes with every upgrade of the sender
// (our receiver stamps the collector's version), and a late value arriving
// after an upgrade must restate the window it belongs to, not start a new
// one whose partial figure would overwrite the stored complete one.
func appendResourceScope(k []byte, b *Batch, rm pmetric.ResourceMetrics, sm pmetric.ScopeMetrics) []byte {
	k, b.kvs = appendMap(k, rm.Resource().Attributes(), nil, b.kvs)
	k = appendString(k, sm.Scope().Name())
	k, b.kvs = appendMap(k, sm.Scope().Attributes(), nil, b.kvs)
	return k
}

func encodeDescBlob(d *Desc) []byte {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	d.Resource.CopyTo(rm.Resource())
	sm := rm.ScopeMetrics().AppendEmpty()
	d.Scope.CopyTo(sm.Scope())
	m := sm.Metrics().AppendEmpty()
	m.SetName(d.Name)
	m.SetUnit(d.Unit)
	m.SetDescription(d.Description)
	d.Meta.CopyTo(m.Metadata())
	m.SetEmptyGauge()
	b, err := (&pmetric.ProtoMarshaler{}).MarshalMetrics(md)
	if err != nil {
		return nil
	}
	return b
}

// descOf returns the desc of a stored record, from the identity it holds,
// and checks it against the record's desc key (as its version wrote it).
func (s *Set) descOf(b *Batch, r *record) (*Desc, error) {
	md, err := (&pmetric.ProtoUnmarshaler{}).UnmarshalMetrics(r.blob)
	if err != nil || md.ResourceMetrics().Len() != 1 || md.ResourceMetrics().At(0).ScopeMetrics().Len() != 1 ||
		md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().Len() != 1 || len(r.dkey) == 0 {
		return nil, errors.New("corrupt identity")
	}
	rm := md.ResourceMetrics().At(0)
	sm := rm.ScopeMetrics().At(0)
	m := sm.Metrics().At(0)
	fn := aggregation.Func(r.dkey[len(r.dkey)-1])
	if !fn.Valid() {
		return nil, errors.New("corrupt aggregation function")
	}
	want := r.dkey
	if r.version == recordVersionV1 {
		// Version 1 keys had the scope version after the scope name.
		k, _ := appendMap(nil, rm.Resource().Attributes(), nil, b.kvs)
		k = appendString(k, sm.Scope().Name())
		k = appendString(k, sm.Scope().Version())
		k, _ = appendMap(k, sm.Scope().Attributes(), nil, b.kvs)
		k = appendString(k, m.Name())
		k = appendString(k, m.Unit())
		if string(append(k, byte(fn))) != r.dkey {
			return nil, errors.New("identity does not match its key")
		}
		want = ""
	}
	b.Scope(rm, sm)
	dsc := b.Identity(m, fn)
	if want != "" && dsc.key != want {
		return nil, errors.New("identity does not match its key")
	}
	return dsc, nil
}
