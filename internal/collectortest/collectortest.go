// Package collectortest runs a real Collector (the otelcol runtime) inside a
// test, so that components are exercised exactly as the distribution runs them.
package collectortest // import "github.com/custommetrics/bundle/internal/collectortest"

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/provider/envprovider"
	"go.opentelemetry.io/collector/confmap/provider/fileprovider"
	"go.opentelemetry.io/collector/otelcol"
	"go.opentelemetry.io/collector/service/telemetry/otelconftelemetry"
)

// Collector is a running in-process Collector.
type Collector struct {
	col  *otelcol.Collector
	done chan error
}

// Start runs a Collector with the given factories (the Collector's own
// telemetry factory is added when they have none) and YAML configuration
// (which may use ${env:VAR}) and waits until it is running. It is shut down
// when the test ends unless Shutdown was called before.
func Start(t testing.TB, factories func() (otelcol.Factories, error), configYAML string) *Collector {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(path, []byte(configYAML), 0o600))

	withTelemetry := func() (otelcol.Factories, error) {
		f, err := factories()
		if f.Telemetry == nil {
			f.Telemetry = otelconftelemetry.NewFactory()
		}
		return f, err
	}
	col, err := otelcol.NewCollector(otelcol.CollectorSettings{
		BuildInfo: component.BuildInfo{Command: "otelcol-test", Version: "test"},
		Factories: withTelemetry,
		ConfigProviderSettings: otelcol.ConfigProviderSettings{
			ResolverSettings: confmap.ResolverSettings{
				URIs:              []string{path},
				ProviderFactories: []confmap.ProviderFactory{fileprovider.NewFactory(), envprovider.NewFactory()},
				DefaultScheme:     "env",
			},
		},
	})
	require.NoError(t, err)

	c := &Collector{col: col, done: make(chan error, 1)}
	go func() { c.done <- col.Run(context.Background()) }()
	require.Eventually(t, func() bool {
		select {
		case err := <-c.done:
			c.done <- err
			return true
		default:
		}
		return col.GetState() == otelcol.StateRunning
	}, 30*time.Second, 10*time.Millisecond)
	if col.GetState() != otelcol.StateRunning {
		t.Fatalf("collector did not start: %v", <-c.done)
	}
	t.Cleanup(func() { c.Shutdown(t) })
	return c
}

// Shutdown stops the Collector and waits for Run to return. Calling it twice is safe.
func (c *Collector) Shutdown(t testing.TB) {
	t.Helper()
	if c.col == nil {
		return
	}
	c.col.Shutdown()
	select {
	case err := <-c.done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("collector did not shut down within 30s")
	}
	c.col = nil
}

// FreeAddr returns a loopback address with a port that was free a moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().String()
}
