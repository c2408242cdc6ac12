package anomalyprocessor

import (
	"context"
	"errors"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/extension/xextension/storage"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/processor/processortest"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/custommetrics/bundle/internal/otelmap"
	"github.com/custommetrics/bundle/internal/storagetest"
	"github.com/custommetrics/bundle/processor/anomalyprocessor/internal/metadata"
)

var t0 = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// point is one value of a test series.
type point struct {
	metric   string
	resource string // value of resource attribute "host"
	tenant   string // value of resource attribute custommetrics.tenant; "" = absent
	attrs    map[string]any
	ts       time.Time
	v        float64
}

// batch builds metrics with one gauge per point.
func batch(pts ...point) pmetric.Metrics {
	md := pmetric.NewMetrics()
	byRes := map[[2]string]pmetric.MetricSlice{}
	for _, p := range pts {
		ms, ok := byRes[[2]string{p.resource, p.tenant}]
		if !ok {
			rm := md.ResourceMetrics().AppendEmpty()
			rm.Resource().Attributes().PutStr("host", p.resource)
			if p.tenant != "" {
				rm.Resource().Attributes().PutStr(otelmap.AttrTenant, p.tenant)
			}
			ms = rm.ScopeMetrics().AppendEmpty().Metrics()
			byRes[[2]string{p.resource, p.tenant}] = ms
		}
		m := ms.AppendEmpty()
		m.SetName(p.metric)
		dp := m.SetEmptyGauge().DataPoints().AppendEmpty()
		if err := dp.Attributes().FromRaw(p.attrs); err != nil {
			panic(err)
		}
		dp.SetTimestamp(pcommon.NewTimestampFromTime(p.ts))
		dp.SetDoubleValue(p.v)
	}
	return md
}

type testProc struct {
	processor.Metrics
	p    *anomalyProcessor
	sink *consumertest.MetricsSink
	tel  *componenttest.Telemetry
}

func newTestProc(t *testing.T, cfg *Config, host component.Host) *testProc {
	t.Helper()
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	set := processortest.NewNopSettings(metadata.Type)
	set.TelemetrySettings = tel.NewTelemetrySettings()
	sink := new(consumertest.MetricsSink)
	p, err := newProcessor(set, cfg)
	require.NoError(t, err)
	pm, err := wrap(context.Background(), set, cfg, sink, p)
	require.NoError(t, err)
	if host == nil {
		host = componenttest.NewNopHost()
	}
	require.NoError(t, pm.Start(context.Background(), host))
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { require.NoError(t, pm.Shutdown(context.Background())) }) })
	return &testProc{Metrics: pm, p: p, sink: sink, tel: tel}
}

func (tp *testProc) consume(t *testing.T, pts ...point) {
	t.Helper()
	require.NoError(t, tp.ConsumeMetrics(context.Background(), batch(pts...)))
}

func (tp *testProc) counter(t *testing.T, name string) int64 {
	t.Helper()
	return tp.counterWith(t, name, "", "")
}

// counterWith sums the points of counter name whose attribute attr is value
// (all points when attr is "").
func (tp *testProc) counterWith(t *testing.T, name, attr, value string) int64 {
	t.Helper()
	m, err := tp.tel.GetMetric("otelcol_processor_anomaly_" + name)
	if err != nil {
		return 0
	}
	var n int64
	for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
		if v, _ := dp.Attributes.Value(attribute.Key(attr)); attr == "" || v.AsString() == value {
			n += dp.Value
		}
	}
	return n
}

// outPoint is a data point found in the sink.
type outPoint struct {
	resource string
	attrs    map[string]any
	ts       time.Time
	v        float64 // double or int value
}

// points returns the data points of metric name in everything the sink got.
func (tp *testProc) points(name string) []outPoint {
	var out []outPoint
	for _, md := range tp.sink.AllMetrics() {
		out = append(out, pointsOf(md, name)...)
	}
	return out
}

func pointsOf(md pmetric.Metrics, name string) []outPoint {
	var out []outPoint
	for i := 0; i < md.ResourceMetrics().Len(); i++ {
		rm := md.ResourceMetrics().At(i)
		host := ""
		if h, ok := rm.Resource().Attributes().Get("host"); ok {
			host = h.AsString()
		}
		for j := 0; j < rm.ScopeMetrics().Len(); j++ {
			ms := rm.ScopeMetrics().At(j).Metrics()
			for k := 0; k < ms.Len(); k++ {
				m := ms.At(k)
				if m.Name() != name {
					continue
				}
				var pts pmetric.NumberDataPointSlice
				switch m.Type() {
				case pmetric.MetricTypeGauge:
					pts = m.Gauge().DataPoints()
				case pmetric.MetricTypeSum:
					pts = m.Sum().DataPoints()
				default:
					continue
				}
				for l := 0; l < pts.Len(); l++ {
					dp := pts.At(l)
					v := dp.DoubleValue()
					if dp.ValueType() == pmetric.NumberDataPointValueTypeInt {
						v = float64(dp.IntValue())
					}
					out = append(out, outPoint{host, dp.Attributes().AsRaw(), dp.Timestamp().AsTime(), v})
				}
			}
		}
	}
	return out
}

func metricNames(md pmetric.Metrics) []string {
	var names []string
	for i := 0; i < md.ResourceMetrics().Len(); i++ {
		rm := md.ResourceMetrics().At(i)
		for j := 0; j < rm.ScopeMetrics().Len(); j++ {
			ms := rm.ScopeMetrics().At(j).Metrics()
			for k := 0; k < ms.Len(); k++ {
				names = append(names, ms.At(k).Name())
			}
		}
	}
	sort.Strings(names)
	return names
}

// memStorage is an in-memory storage extension (storagetest.Mem); walkable
// selects whether its clients implement storage.Walker.
type memStorage struct {
	component.StartFunc
	component.ShutdownFunc
	*storagetest.Mem
	walkable bool
}

func newMemStorage(walkable bool) *memStorage {
	return &memStorage{Mem: storagetest.NewMem(), walkable: walkable}
}

// lazyClient hides the store's Walk.
type lazyClient struct{ storage.Client }

func (s *memStorage) GetClient(context.Context, component.Kind, component.ID, string) (storage.Client, error) {
	if s.walkable {
		return s.Mem, nil
	}
	return lazyClient{s.Mem}, nil
}

// failWrites makes every storage operation fail (a full disk), or not.
func (s *memStorage) failWrites(fail bool) {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	s.Fail = nil
	if fail {
		s.Fail = errors.New("disk full")
	}
}

func (s *memStorage) keys() []string {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	var ks []string
	for k := range s.Data {
		ks = append(ks, k)
	}
	return ks
}

type storageHost struct {
	component.Host
	exts map[component.ID]component.Component
}

func (h storageHost) GetExtensions() map[component.ID]component.Component { return h.exts }

var memStorageID = component.MustNewID("mem_storage")

func hostWith(s *memStorage) component.Host {
	return storageHost{componenttest.NewNopHost(), map[component.ID]component.Component{memStorageID: s}}
}

func (s *memStorage) get(key string) []byte {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	return s.Data[key]
}

func nopSettings() processor.Settings { return processortest.NewNopSettings(metadata.Type) }
