package loadgen

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
)

// server acknowledges every other request (by arrival) and refuses the rest.
func TestRunRecordsOnlyAcknowledgedValues(t *testing.T) {
	var n, conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if n.Add(1)%2 == 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()

	tg := ThreatConnect(Spread{Size: 64, Metrics: 2, Keys: 4})
	res := Run(context.Background(), tg, Config{BaseURL: srv.URL, Conns: 4, MaxRequests: 400})
	if res.Sent != 400 || res.Acked+res.Status[503] != 400 || res.Acked != 200 {
		t.Fatalf("sent %d acked %d status %v", res.Sent, res.Acked, res.Status)
	}
	if got := res.Ledger.AckedPoints(); got != 200 || res.AckedPoints != 200 {
		t.Fatalf("ledger has %d acked points, result %d", got, res.AckedPoints)
	}
	if len(res.Latency) != 400 || res.Latency.Quantile(0.99) <= 0 {
		t.Fatalf("latencies: %d", len(res.Latency))
	}
	if c := conns.Load(); c > 4 {
		t.Fatalf("%d connections for 4 workers: keep-alive is not working", c)
	}
	if res.NextSeq != 400 {
		t.Fatalf("NextSeq %d", res.NextSeq)
	}
}

func TestRunFixedRate(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(200) }))
	defer srv.Close()
	res := Run(context.Background(), Bare(), Config{BaseURL: srv.URL, Conns: 8, Rate: 500, Duration: time.Second})
	if res.Sent < 400 || res.Sent > 560 {
		t.Fatalf("offered 500/s for 1s, sent %d", res.Sent)
	}
}

func TestRunServerDown(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	res := Run(context.Background(), ThreatConnect(Spread{Size: 4}), Config{BaseURL: url, Conns: 2, MaxRequests: 10})
	if res.NotSent != 10 || res.Acked != 0 || res.Ledger.UnknownPoints() != 0 {
		t.Fatalf("down server: notSent %d acked %d unknown %d (%s)", res.NotSent, res.Acked, res.Ledger.UnknownPoints(), res.FirstErr)
	}
}

// A connection broken after the request was written leaves its values in doubt.
func TestRunUnknownOutcome(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		conn, _, _ := w.(http.Hijacker).Hijack()
		conn.Close()
	}))
	defer srv.Close()
	res := Run(context.Background(), ThreatConnect(Spread{Size: 4}), Config{BaseURL: srv.URL, Conns: 2, MaxRequests: 6})
	if res.Unknown != 6 || res.Ledger.UnknownPoints() != 6 || res.Acked != 0 {
		t.Fatalf("unknown %d (%d points), acked %d", res.Unknown, res.Ledger.UnknownPoints(), res.Acked)
	}
}

func TestMalformedViolations(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(200) }))
	defer srv.Close()
	res := Run(context.Background(), Malformed("m"), Config{BaseURL: srv.URL, Conns: 2, MaxRequests: 20})
	if res.Violations != 20 || res.Ledger.AckedPoints() != 0 {
		t.Fatalf("violations %d, points %d", res.Violations, res.Ledger.AckedPoints())
	}
}

func TestThreatConnectRequests(t *testing.T) {
	tg := ThreatConnect(Spread{Size: 10, Metrics: 2, Keys: 3, Interval: Hourly})
	for i := uint64(0); i < 10; i++ {
		r := tg.Request(i)
		var body struct {
			Value float64 `json:"value"`
			Date  string  `json:"date"`
			Name  string  `json:"name"`
		}
		if err := json.Unmarshal(r.Body, &body); err != nil {
			t.Fatal(err)
		}
		date, err := time.Parse(time.RFC3339, body.Date)
		if err != nil {
			t.Fatal(err)
		}
		p := r.Points[0]
		if p.Value != body.Value || p.Key != body.Name || p.Key == "" || !strings.HasSuffix(r.Path, "/"+p.Metric+"/data") {
			t.Fatalf("request %d: %s %s vs %+v", i, r.Path, r.Body, p)
		}
		if w := time.Unix(0, p.Window).UTC(); !w.Equal(date.Truncate(time.Hour)) || !date.Before(time.Now()) {
			t.Fatalf("window %v for date %v", w, date)
		}
	}
	if tg.Request(10) != tg.Request(0) {
		t.Fatal("the pool does not cycle")
	}
}

func TestOTLPRequestsDecode(t *testing.T) {
	for _, enc := range []OTLPEncoding{OTLPJSON, OTLPProto} {
		tg := OTLP(Spread{Size: 3, Metrics: 2, Keys: 5}, enc, 4)
		r := tg.Request(1)
		req := pmetricotlp.NewExportRequest()
		var err error
		if enc == OTLPJSON {
			err = req.UnmarshalJSON(r.Body)
		} else {
			err = req.UnmarshalProto(r.Body)
		}
		if err != nil {
			t.Fatal(err)
		}
		if n := req.Metrics().DataPointCount(); n != 4 || len(r.Points) != 4 {
			t.Fatalf("%s: %d points in body, %d in ledger", enc, n, len(r.Points))
		}
	}
}

func TestMixAndLedgerMerge(t *testing.T) {
	a, b := ThreatConnect(Spread{Size: 2}), BigFix(Spread{Size: 2})
	m := &Mix{TargetName: "mix", Targets: []Target{a, b}}
	if m.Request(0) != a.Request(0) || m.Request(1) != b.Request(0) || m.Request(3) != b.Request(1) {
		t.Fatal("mix does not alternate")
	}
	l1, l2 := NewLedger(), NewLedger()
	l1.Ack([]Point{{Metric: "x", Window: 1, Value: 2}})
	l2.Ack([]Point{{Metric: "x", Window: 1, Value: 3}})
	l2.Unsure([]Point{{Metric: "x", Window: 1, Value: 5}})
	l1.Merge(l2)
	if c := l1.Acked[SeriesWindow{"x", "", 1}]; c.Sum != 5 || c.Count != 2 || l1.UnknownPoints() != 1 {
		t.Fatalf("merged %+v", c)
	}
}

func TestQuantile(t *testing.T) {
	l := Latencies{5, 1, 4, 2, 3, 10, 9, 8, 7, 6}
	if l.Quantile(0.5) != 5*time.Microsecond || l.Quantile(0.99) != 10*time.Microsecond || l.Quantile(0) != time.Microsecond {
		t.Fatalf("quantiles %v %v", l.Quantile(0.5), l.Quantile(0.99))
	}
}
