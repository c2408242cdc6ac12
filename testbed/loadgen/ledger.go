// Package loadgen drives HTTP load against a collector (or a baseline server)
// and records, for every request, whether it was acknowledged and how long it
// took, keeping the acknowledged values for loss accounting.
package loadgen

import (
	"sort"
	"time"
)

// PointsWindow is the Window of a value that is stored as a raw point (the
// sql exporter's points table) rather than in an aggregated window: its
// figure is the sum and count of every stored point of the series.
const PointsWindow int64 = -1

// Point is one value carried by a request: what the pipeline must have
// counted once the request is acknowledged.
type Point struct {
	Metric string
	// Key is the series' identifying attribute (ThreatConnect key, OTLP
	// "key" attribute); "" for non-keyed series.
	Key string
	// Window is the start of the calendar window the value falls in, in Unix
	// nanoseconds (UTC), or PointsWindow.
	Window int64
	Value  float64
}

// SeriesWindow identifies one aggregated figure: a row of the windows table.
type SeriesWindow struct {
	Metric string
	Key    string
	Window int64
}

func (p Point) seriesWindow() SeriesWindow {
	return SeriesWindow{Metric: p.Metric, Key: p.Key, Window: p.Window}
}

// Cell is a window's figure: the sum and the count of its values.
type Cell struct {
	Sum   float64
	Count int64
}

// Ledger keeps the values of acknowledged requests and, separately, those of
// requests whose outcome is unknown (the connection broke after the request
// may have been written: the collector may or may not have counted them).
// A Ledger is not safe for concurrent use; each worker keeps its own and
// they are merged at the end.
type Ledger struct {
	Acked   map[SeriesWindow]Cell
	Unknown map[SeriesWindow]Cell
}

// NewLedger returns an empty ledger.
func NewLedger() *Ledger {
	return &Ledger{Acked: map[SeriesWindow]Cell{}, Unknown: map[SeriesWindow]Cell{}}
}

// Ack records the points of an acknowledged request.
func (l *Ledger) Ack(pts []Point) { add(l.Acked, pts) }

// Unsure records the points of a request whose outcome is unknown.
func (l *Ledger) Unsure(pts []Point) { add(l.Unknown, pts) }

func add(m map[SeriesWindow]Cell, pts []Point) {
	for _, p := range pts {
		k := p.seriesWindow()
		c := m[k]
		c.Sum += p.Value
		c.Count++
		m[k] = c
	}
}

// Merge adds o into l.
func (l *Ledger) Merge(o *Ledger) {
	if o == nil {
		return
	}
	for k, c := range o.Acked {
		a := l.Acked[k]
		l.Acked[k] = Cell{a.Sum + c.Sum, a.Count + c.Count}
	}
	for k, c := range o.Unknown {
		a := l.Unknown[k]
		l.Unknown[k] = Cell{a.Sum + c.Sum, a.Count + c.Count}
	}
}

// AckedPoints is the number of acknowledged values.
func (l *Ledger) AckedPoints() int64 {
	var n int64
	for _, c := range l.Acked {
		n += c.Count
	}
	return n
}

// UnknownPoints is the number of values of unknown outcome.
func (l *Ledger) UnknownPoints() int64 {
	var n int64
	for _, c := range l.Unknown {
		n += c.Count
	}
	return n
}

// Latencies holds request latencies in microseconds.
type Latencies []uint32

func (l *Latencies) add(d time.Duration) {
	us := d.Microseconds()
	if us > int64(^uint32(0)) {
		us = int64(^uint32(0))
	}
	*l = append(*l, uint32(us))
}

// Quantile returns the q-quantile (0..1) of the latencies (nearest rank);
// they are sorted in place on first use.
func (l Latencies) Quantile(q float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	if !sort.SliceIsSorted(l, func(i, j int) bool { return l[i] < l[j] }) {
		sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
	}
	i := int(q*float64(len(l))+0.5) - 1
	i = max(0, min(i, len(l)-1))
	return time.Duration(l[i]) * time.Microsecond
}
