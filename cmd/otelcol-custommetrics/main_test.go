package main

import (
	"net/http"
	"os"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/provider/envprovider"
	"go.opentelemetry.io/collector/confmap/provider/fileprovider"
	"go.opentelemetry.io/collector/otelcol"
	"go.uber.org/goleak"

	"github.com/custommetrics/bundle/internal/collectortest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestCollectorRunsAllComponents starts the distribution's own factories in the
// real otelcol runtime with every bundle component wired, and stops it cleanly
// (goleak in TestMain fails the package on a leaked goroutine).
func TestCollectorRunsAllComponents(t *testing.T) {
	health := collectortest.FreeAddr(t)
	recv := collectortest.FreeAddr(t)
	t.Setenv("HEALTH_ADDR", health)
	t.Setenv("RECEIVER_ADDR", recv)
	t.Setenv("DATA_DIR", t.TempDir())
	cfg, err := os.ReadFile("testdata/all-components.yaml")
	require.NoError(t, err)

	col := collectortest.Start(t, components, string(cfg))

	resp, err := http.Get("http://" + health)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	resp, err = http.Get("http://" + recv + "/")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNotFound, resp.StatusCode, "the receiver serves its APIs, nothing at /")

	col.Shutdown(t)
	_, err = http.Get("http://" + health)
	require.Error(t, err, "health_check must be stopped after shutdown")
}

// TestDefaultConfigIsValid loads the shipped default configuration through the
// distribution's own command, as `make run` does.
func TestDefaultConfigIsValid(t *testing.T) {
	require.NoError(t, validateConfig(t, "config.yaml"))
}

func validateConfig(t *testing.T, path string) error {
	t.Helper()
	cmd := otelcol.NewCommand(otelcol.CollectorSettings{
		BuildInfo: component.BuildInfo{Command: "otelcol-custommetrics", Version: "test"},
		Factories: components,
		ConfigProviderSettings: otelcol.ConfigProviderSettings{
			ResolverSettings: confmap.ResolverSettings{
				ProviderFactories: []confmap.ProviderFactory{fileprovider.NewFactory(), envprovider.NewFactory()},
			},
		},
	})
	cmd.SetArgs([]string{"validate", "--config", path})
	return cmd.Execute()
}

func TestInvalidConfigIsRefused(t *testing.T) {
	err := validateConfig(t, "testdata/invalid.yaml")
	require.ErrorContains(t, err, `driver must be "sqlite" or "postgres"`)
}
