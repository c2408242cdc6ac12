package aggregateprocessor // import "github.com/custommetrics/bundle/processor/aggregateprocessor"

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.uber.org/zap"

	"github.com/custommetrics/bundle/internal/aggregation"
	"github.com/custommetrics/bundle/internal/calendar"
	"github.com/custommetrics/bundle/internal/definitions"
	"github.com/custommetrics/bundle/internal/filtertree"
	"github.com/custommetrics/bundle/internal/otelmap"
	"github.com/custommetrics/bundle/internal/windows"
	"github.com/custommetrics/bundle/internal/wire/embrace"
)

// Embrace derived metrics. A definition {app_id, name, metric, filters,
// group_by, time_granularity} stored in the definitions registry (kind
// definitions.KindEmbraceMetric, any tenant) adds, for every Gauge or Sum
// point of the base metric `metric` whose app (embrace::app_id_attribute on
// the resource, else on the point) is app_id and whose data point attributes
// match `filters`, the point's value to the sum of the series made of the
// `group_by` attributes, in one window per granularity. The output metric is
// named `name`, under a resource of its own (see derivedResource), so the
// figures of every instance of the app add up in one series.
//
// Derived metrics are additional outputs: the base point still passes
// through or is aggregated by its own metadata or rules.

// derivedScope is the instrumentation scope name of derived metrics.
const derivedScope = "github.com/custommetrics/bundle/processor/aggregateprocessor"

// embraceDef is one compiled definition.
type embraceDef struct {
	tenant, app string
	filter      filtertree.Filter
	ivs         []calendar.Interval
	keep        func(string) bool
	d           *windows.Desc
}

// embraceSet is an immutable snapshot of the compiled definitions.
type embraceSet struct {
	version  uint64 // the registry version it was read at
	byMetric map[string][]*embraceDef
}

type embraceState struct {
	registry *definitions.Registry
	mu       sync.Mutex // one reload at a time
	cur      *embraceSet
	curMu    sync.RWMutex
	errLog   rateLimiter
}

// startDefinitions finds the definitions extension and reads its Embrace definitions.
func (p *aggProcessor) startDefinitions(ctx context.Context, host component.Host) error {
	if p.cfg.Definitions == nil {
		return nil
	}
	ext, ok := host.GetExtensions()[*p.cfg.Definitions]
	if !ok {
		return fmt.Errorf("definitions extension %q not found (is it listed in service::extensions?)", p.cfg.Definitions)
	}
	prov, ok := ext.(definitions.Provider)
	if !ok || prov.Registry() == nil {
		return fmt.Errorf("extension %q is not a started definitions extension", p.cfg.Definitions)
	}
	p.setRegistry(prov.Registry())
	if _, err := p.reloadDefinitions(ctx); err != nil {
		return err
	}
	return nil
}

func (p *aggProcessor) setRegistry(r *definitions.Registry) { p.emb.registry = r }

// derivedDefs returns the current definitions, rereading them when the
// registry changed since they were read. A definition created or deleted
// before a ConsumeMetrics call starts applies to that call.
func (p *aggProcessor) derivedDefs(ctx context.Context) *embraceSet {
	e := &p.emb
	if e.registry == nil {
		return nil
	}
	e.curMu.RLock()
	cur := e.cur
	e.curMu.RUnlock()
	if cur != nil && cur.version == e.registry.Version() {
		return cur
	}
	s, err := p.reloadDefinitions(ctx)
	if err != nil {
		if e.errLog.allow() {
			p.logger.Error("Reading Embrace definitions failed; keeping the previous ones", zap.Error(err))
		}
		return cur
	}
	return s
}

func (p *aggProcessor) reloadDefinitions(ctx context.Context) (*embraceSet, error) {
	e := &p.emb
	e.mu.Lock()
	defer e.mu.Unlock()
	v := e.registry.Version() // read first: a change during the listing triggers another reload
	e.curMu.RLock()
	cur := e.cur
	e.curMu.RUnlock()
	if cur != nil && cur.version == v {
		return cur, nil
	}
	all, err := definitions.ListAll[embrace.CustomMetric](ctx, e.registry, definitions.KindEmbraceMetric)
	if err != nil {
		return nil, err
	}
	s := &embraceSet{version: v, byMetric: map[string][]*embraceDef{}}
	tenants := make([]string, 0, len(all))
	for t := range all {
		tenants = append(tenants, t)
	}
	slices.Sort(tenants)
	n := 0
	for _, tenant := range tenants {
		for _, cm := range all[tenant] {
			d, err := p.compileDef(tenant, cm)
			if err != nil {
				p.logger.Warn("Ignoring an Embrace definition", zap.String("tenant", tenant), zap.String("app_id", cm.AppID),
					zap.String("name", cm.Name), zap.Error(err))
				continue
			}
			s.byMetric[cm.Metric] = append(s.byMetric[cm.Metric], d)
			n++
		}
	}
	e.curMu.Lock()
	e.cur = s
	e.curMu.Unlock()
	p.logger.Info("Embrace definitions loaded", zap.Int("definitions", n), zap.Uint64("registry_version", v))
	return s, nil
}

func (p *aggProcessor) compileDef(tenant string, cm embrace.CustomMetric) (*embraceDef, error) {
	if cm.Name == "" || cm.Metric == "" || cm.AppID == "" {
		return nil, fmt.Errorf("name, metric and app_id are required")
	}
	ivs, err := cm.Windows()
	if err != nil {
		return nil, err
	}
	d := &embraceDef{tenant: tenant, app: cm.AppID, filter: cm.Filters, ivs: ivs}
	keys := slices.Clone(cm.GroupBy)
	d.keep = func(k string) bool { return k != otelmap.AttrWeight && slices.Contains(keys, k) }
	d.d = p.derivedDesc(tenant, cm.AppID, cm.Name)
	return d, nil
}

// derivedResource fills the resource of a derived metric: custommetrics.api
// = "embrace", the app attribute = app_id, and custommetrics.tenant for a
// tenant other than the default one.
func (p *aggProcessor) derivedResource(res pcommon.Resource, tenant, app string) {
	res.Attributes().PutStr(otelmap.AttrAPI, "embrace")
	res.Attributes().PutStr(p.cfg.Embrace.AppIDAttribute, app)
	if tenant != "" {
		res.Attributes().PutStr(otelmap.AttrTenant, tenant)
	}
}

// derivedDesc interns the output identity of a definition. Windows are keyed
// by (tenant, app, name): a definition deleted and created again with the
// same name continues the same series.
func (p *aggProcessor) derivedDesc(tenant, app, name string) *windows.Desc {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	p.derivedResource(rm.Resource(), tenant, app)
	sm := rm.ScopeMetrics().AppendEmpty()
	sm.Scope().SetName(derivedScope)
	m := sm.Metrics().AppendEmpty()
	m.SetName(name)
	return p.windows.Identity(rm, sm, m, aggregation.Sum)
}

// resourceApp returns what a resource says about the app and the tenant.
func (p *aggProcessor) resourceApp(res pcommon.Resource) (app string, hasApp bool, tenant string, hasTenant bool) {
	if v, ok := res.Attributes().Get(p.cfg.Embrace.AppIDAttribute); ok {
		app, hasApp = v.AsString(), true
	}
	if v, ok := res.Attributes().Get(otelmap.AttrTenant); ok {
		tenant, hasTenant = v.AsString(), true
	}
	return app, hasApp, tenant, hasTenant
}

// applies reports whether definition d takes point dp (of a resource that
// says app/tenant as resourceApp returned them).
func (p *aggProcessor) applies(d *embraceDef, dp pmetric.NumberDataPoint, app string, hasApp bool, tenant string, hasTenant bool) bool {
	if hasTenant && tenant != d.tenant {
		return false
	}
	if !hasApp {
		v, ok := dp.Attributes().Get(p.cfg.Embrace.AppIDAttribute)
		if !ok {
			return false
		}
		app = v.AsString()
	}
	return app == d.app && d.filter.MatchMap(dp.Attributes())
}
