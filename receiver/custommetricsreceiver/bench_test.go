package custommetricsreceiver

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"testing"

	"go.opentelemetry.io/collector/consumer/consumertest"
)

// benchClient keeps enough idle connections for RunParallel's goroutines.
var benchClient = &http.Client{Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256}}

func postLoop(b *testing.B, url string, body []byte, want int) {
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := benchClient.Post(url, "application/json", bytes.NewReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != want {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

// BenchmarkThreatConnectPost posts single values to a non-keyed metric over
// loopback through the whole receiver (auth off, pipeline accepting).
func BenchmarkThreatConnectPost(b *testing.B) {
	ts := startReceiver(b, nil, consumertest.NewNop())
	resp := ts.do(http.MethodPost, "/api/v2/customMetrics", `{"name":"bench","dataType":"Sum","interval":"Hourly"}`)
	if resp.status != http.StatusCreated {
		b.Fatalf("create: %d %s", resp.status, resp.body)
	}
	postLoop(b, ts.base+"/api/v2/customMetrics/bench/data", []byte(`{"value":"1"}`), http.StatusNoContent)
}

// BenchmarkBareHTTP is the ceiling of this machine for the same requests: a
// net/http server that reads the body and answers 200.
func BenchmarkBareHTTP(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusOK)
	})}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	postLoop(b, "http://"+ln.Addr().String()+"/api/v2/customMetrics/bench/data", []byte(`{"value":"1"}`), http.StatusOK)
}
