package custommetricsreceiver

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"testing"

	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/storage/filestorage"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/extension/extensiontest"
	"go.opentelemetry.io/collector/processor/processortest"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/custommetrics/bundle/extension/definitionsextension"
	"github.com/custommetrics/bundle/internal/collectortest"
	"github.com/custommetrics/bundle/processor/aggregateprocessor"
	"github.com/custommetrics/bundle/receiver/custommetricsreceiver/internal/metadata"
)

// benchClient keeps enough idle connections for RunParallel's goroutines.
var benchClient = &http.Client{Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256}}

func postLoop(b *testing.B, url string, body []byte, want int) {
	b.ReportAllocs()
	// Many concurrent keep-alive clients, as a fleet of scripts would be.
	b.SetParallelism(16)
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

type extHost struct {
	component.Host
	exts map[component.ID]component.Component
}

func (h extHost) GetExtensions() map[component.ID]component.Component { return h.exts }

// BenchmarkThreatConnectPostFileStorage is BenchmarkThreatConnectPost in front
// of the aggregate processor, with the definitions and the processor's windows
// in file_storage (bbolt), as in the default configuration: every value's
// window is written before the answer (group commit).
func BenchmarkThreatConnectPostFileStorage(b *testing.B) {
	ctx := context.Background()
	fsID := component.MustNewID("file_storage")
	fsCfg := filestorage.NewFactory().CreateDefaultConfig().(*filestorage.Config)
	fsCfg.Directory = b.TempDir()
	fs, err := filestorage.NewFactory().Create(ctx, extensiontest.NewNopSettings(component.MustNewType("file_storage")), fsCfg)
	require.NoError(b, err)
	defID := component.MustNewID("definitions")
	defs, err := definitionsextension.NewFactory().Create(ctx, extensiontest.NewNopSettings(component.MustNewType("definitions")), &definitionsextension.Config{Storage: &fsID})
	require.NoError(b, err)
	host := extHost{Host: componenttest.NewNopHost(), exts: map[component.ID]component.Component{fsID: fs, defID: defs}}
	require.NoError(b, fs.Start(ctx, host))
	require.NoError(b, defs.Start(ctx, host))
	b.Cleanup(func() {
		require.NoError(b, defs.Shutdown(ctx))
		require.NoError(b, fs.Shutdown(ctx))
	})

	af := aggregateprocessor.NewFactory()
	aggCfg := af.CreateDefaultConfig().(*aggregateprocessor.Config)
	aggCfg.Storage = &fsID
	agg, err := af.CreateMetrics(ctx, processortest.NewNopSettings(af.Type()), aggCfg, consumertest.NewNop())
	require.NoError(b, err)
	require.NoError(b, agg.Start(ctx, host))
	b.Cleanup(func() { require.NoError(b, agg.Shutdown(ctx)) })

	cfg := createDefaultConfig().(*Config)
	cfg.ServerConfig.NetAddr.Endpoint = collectortest.FreeAddr(b)
	cfg.Definitions = &defID
	r, err := NewFactory().CreateMetrics(ctx, receivertest.NewNopSettings(metadata.Type), cfg, agg)
	require.NoError(b, err)
	require.NoError(b, r.Start(ctx, host))
	b.Cleanup(func() { require.NoError(b, r.Shutdown(ctx)) })
	ts := &testServer{t: b, base: "http://" + cfg.ServerConfig.NetAddr.Endpoint}

	resp := ts.do(http.MethodPost, "/api/v2/customMetrics", `{"name":"bench","dataType":"Sum","interval":"Hourly"}`)
	require.Equal(b, http.StatusCreated, resp.status, string(resp.body))
	postLoop(b, ts.base+"/api/v2/customMetrics/bench/data", []byte(`{"value":"1"}`), http.StatusNoContent)
}
