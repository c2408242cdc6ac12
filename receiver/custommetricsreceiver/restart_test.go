package custommetricsreceiver

import (
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/storage/filestorage"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/otelcol"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/receiver"

	"github.com/custommetrics/bundle/extension/definitionsextension"
	"github.com/custommetrics/bundle/internal/collectortest"
	"github.com/custommetrics/bundle/processor/aggregateprocessor"
)

func restartFactories() (otelcol.Factories, error) {
	var err error
	f := otelcol.Factories{}
	if f.Receivers, err = otelcol.MakeFactoryMap[receiver.Factory](NewFactory()); err != nil {
		return f, err
	}
	if f.Extensions, err = otelcol.MakeFactoryMap[extension.Factory](definitionsextension.NewFactory(), filestorage.NewFactory()); err != nil {
		return f, err
	}
	if f.Processors, err = otelcol.MakeFactoryMap[processor.Factory](aggregateprocessor.NewFactory()); err != nil {
		return f, err
	}
	f.Exporters, err = otelcol.MakeFactoryMap[exporter.Factory](exportertest.NewNopFactory())
	return f, err
}

// restartConfig runs the receiver alone, so it must not promise returnValue
// (threatconnect::return_value false); restartAggregateConfig adds the
// aggregate processor with storage, whose windows answer returnValue.
const restartConfig = `
extensions:
  file_storage:
    directory: ${env:DATA_DIR}
    create_directory: true
  definitions:
    storage: file_storage
receivers:
  custommetrics:
    endpoint: ${env:RECEIVER_ADDR}
    definitions: definitions
    threatconnect:
      return_value: false
    bigfix:
      users:
        - {username: master, password: mpw, role: master_operator}
exporters:
  nop:
service:
  extensions: [file_storage, definitions]
  telemetry:
    metrics:
      level: none
  pipelines:
    metrics:
      receivers: [custommetrics]
      exporters: [nop]
`

var restartAggregateConfig = strings.Replace(strings.Replace(strings.Replace(restartConfig, `    threatconnect:
      return_value: false
`, "", 1), `exporters:
  nop:`, `processors:
  aggregate:
    storage: file_storage
exporters:
  nop:`, 1), `      exporters: [nop]`, `      processors: [aggregate]
      exporters: [nop]`, 1)

// TestDefinitionsAndReturnValuesSurviveRestart runs the receiver in front of
// the aggregate processor in the real Collector runtime with file_storage,
// restarts it on the same directory, and finds every definition and
// returnValue figure again: the figures are the processor's durable windows.
func TestDefinitionsAndReturnValuesSurviveRestart(t *testing.T) {
	require.NotContains(t, restartAggregateConfig, "return_value")
	addr := collectortest.FreeAddr(t)
	t.Setenv("RECEIVER_ADDR", addr)
	t.Setenv("DATA_DIR", filepath.Join(t.TempDir(), "storage"))
	ts := &testServer{t: t, base: "http://" + addr}
	master := []string{"Authorization", basic("master", "mpw")}

	col := collectortest.Start(t, restartFactories, restartAggregateConfig)
	createDocMetrics(t, ts)
	resp := ts.do(http.MethodPost, "/api/v2/customMetrics/tasksCompleted/data?returnValue=true", `{"value":"2","date":"2018-01-19T14:44:00Z"}`)
	require.Equal(t, http.StatusOK, resp.status, string(resp.body))
	resp = ts.do(http.MethodPost, "/api/v2/customMetrics/playbookRuns/data?returnValue=true", `{"name":"app1","value":"5","date":"2018-01-19T14:10:00Z"}`)
	require.Equal(t, http.StatusOK, resp.status, string(resp.body))
	require.Equal(t, http.StatusOK, ts.do(http.MethodPost, "/api/deploymentmetrics/custom", `{"bla":"3"}`, master...).status)
	before := ts.do(http.MethodGet, "/api/v2/customMetrics", "")
	require.Equal(t, http.StatusOK, before.status)
	// LaunchDarkly and Embrace definitions, one of them patched.
	resp = ts.do(http.MethodPost, "/api/v2/metrics/shop", ldNumericBody)
	require.Equal(t, http.StatusCreated, resp.status, string(resp.body))
	resp = ts.do(http.MethodPatch, "/api/v2/metrics/shop/revenue", `[{"op":"replace","path":"/name","value":"Income"}]`)
	require.Equal(t, http.StatusOK, resp.status, string(resp.body))
	resp = ts.do(http.MethodPost, embraceBase, embraceDocCreateBody)
	require.Equal(t, http.StatusOK, resp.status, string(resp.body))
	ldBefore := ts.do(http.MethodGet, "/api/v2/metrics/shop", "")
	embraceBefore := ts.do(http.MethodGet, embraceBase, "")
	col.Shutdown(t)

	collectortest.Start(t, restartFactories, restartAggregateConfig)
	after := ts.do(http.MethodGet, "/api/v2/customMetrics", "")
	require.Equal(t, http.StatusOK, after.status)
	assert.JSONEq(t, string(before.body), string(after.body), "definitions, with their ids, survive the restart")

	ldAfter := ts.do(http.MethodGet, "/api/v2/metrics/shop", "")
	require.Equal(t, http.StatusOK, ldAfter.status)
	assert.JSONEq(t, string(ldBefore.body), string(ldAfter.body), "LaunchDarkly metrics, with ids and versions, survive the restart")
	embraceAfter := ts.do(http.MethodGet, embraceBase, "")
	require.Equal(t, http.StatusOK, embraceAfter.status)
	assert.JSONEq(t, string(embraceBefore.body), string(embraceAfter.body), "Embrace definitions, with their ids and filters, survive the restart")
	resp = ts.do(http.MethodPatch, "/api/v2/metrics/shop/revenue", `[{"op":"test","path":"/_version","value":2},{"op":"replace","path":"/name","value":"Turnover"}]`)
	require.Equal(t, http.StatusOK, resp.status, string(resp.body))
	assert.Equal(t, 3.0, resp.json(t)["_version"], "versions continue")
	assert.Equal(t, http.StatusConflict, ts.do(http.MethodPost, embraceBase, embraceDocCreateBody).status)

	// The running aggregates continue where they were.
	resp = ts.do(http.MethodPost, "/api/v2/customMetrics/tasksCompleted/data?returnValue=true", `{"value":"3","date":"2018-01-19T20:00:00Z"}`)
	require.Equal(t, http.StatusOK, resp.status, string(resp.body))
	assert.JSONEq(t, `{"value":5,"date":"2018-01-19T00:00:00Z"}`, string(resp.body))
	resp = ts.do(http.MethodPost, "/api/v2/customMetrics/playbookRuns/data?returnValue=true", `{"name":"app1","value":"1","date":"2018-01-19T14:59:00Z"}`)
	assert.JSONEq(t, `{"value":6,"date":"2018-01-19T14:00:00Z"}`, string(resp.body))

	// A new definition gets a fresh id, never one used before the restart.
	resp = ts.do(http.MethodPost, "/api/v2/customMetrics", `{"name":"third","dataType":"Max","interval":"Weekly"}`)
	require.Equal(t, http.StatusCreated, resp.status)
	id := int64(resp.json(t)["data"].(map[string]any)["customMetricConfig"].(map[string]any)["id"].(float64))
	assert.Equal(t, "3", strconv.FormatInt(id, 10))

	resp = ts.do(http.MethodGet, "/api/deploymentmetrics/custom", "", master...)
	require.Equal(t, http.StatusOK, resp.status)
	assert.Contains(t, string(resp.body), `"metrics":[{"bla":"3"}]`)
}

// TestReturnValueIsTheAggregateProcessorsWindow: with the aggregate processor
// in the pipeline, returnValue answers from its windows (here in a time zone
// the receiver knows nothing about), so the figure a client reads back is
// the figure the processor emits and stores.
func TestReturnValueIsTheAggregateProcessorsWindow(t *testing.T) {
	addr := collectortest.FreeAddr(t)
	t.Setenv("RECEIVER_ADDR", addr)
	t.Setenv("DATA_DIR", filepath.Join(t.TempDir(), "storage"))
	ts := &testServer{t: t, base: "http://" + addr}
	cfg := strings.Replace(restartAggregateConfig, "    storage: file_storage\nexporters:", "    storage: file_storage\n    time_zone: Asia/Kolkata\nexporters:", 1)
	require.Contains(t, cfg, "Asia/Kolkata")
	collectortest.Start(t, restartFactories, cfg)
	createDocMetrics(t, ts)
	// tasksCompleted is a Daily Sum: 14:44Z is 20:14 in Kolkata (UTC+5:30),
	// whose day starts at 18:30Z the day before.
	resp := ts.do(http.MethodPost, "/api/v2/customMetrics/tasksCompleted/data?returnValue=true", `{"value":"2","date":"2018-01-19T14:44:00Z"}`)
	require.Equal(t, http.StatusOK, resp.status, string(resp.body))
	assert.JSONEq(t, `{"value":2,"date":"2018-01-18T18:30:00Z"}`, string(resp.body))
	resp = ts.do(http.MethodPost, "/api/v2/customMetrics/tasksCompleted/data?returnValue=true", `{"value":"3","date":"2018-01-19T18:29:00Z"}`)
	assert.JSONEq(t, `{"value":5,"date":"2018-01-18T18:30:00Z"}`, string(resp.body))
	resp = ts.do(http.MethodPost, "/api/v2/customMetrics/tasksCompleted/data?returnValue=true", `{"value":"4","date":"2018-01-19T18:30:00Z"}`)
	assert.JSONEq(t, `{"value":4,"date":"2018-01-19T18:30:00Z"}`, string(resp.body))
}

// TestDefinitionsQuotaAnswers429: at the definitions extension's
// max_definitions_per_tenant, creates are refused with 429 in each API's
// shape and nothing is created; replacing a BigFix document still works.
func TestDefinitionsQuotaAnswers429(t *testing.T) {
	t.Setenv("DATA_DIR", t.TempDir())
	addr := collectortest.FreeAddr(t)
	t.Setenv("RECEIVER_ADDR", addr)
	cfg := strings.Replace(restartConfig, "  definitions:\n    storage: file_storage\n", "  definitions:\n    storage: file_storage\n    max_definitions_per_tenant: 2\n", 1)
	collectortest.Start(t, restartFactories, cfg)
	base := "http://" + addr
	do := func(method, path, body string) (int, string) {
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.SetBasicAuth("master", "mpw")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var b strings.Builder
		_, _ = io.Copy(&b, resp.Body)
		return resp.StatusCode, b.String()
	}
	for i := range 2 {
		status, body := do(http.MethodPost, "/api/v2/customMetrics", `{"name":"m`+strconv.Itoa(i)+`","dataType":"Sum","interval":"Daily"}`)
		require.Equal(t, http.StatusCreated, status, body)
	}
	status, body := do(http.MethodPost, "/api/v2/customMetrics", `{"name":"m2","dataType":"Sum","interval":"Daily"}`)
	assert.Equal(t, http.StatusTooManyRequests, status)
	assert.Contains(t, body, `"status":"Failure"`)
	assert.Contains(t, body, "max_definitions_per_tenant")
	status, body = do(http.MethodPost, "/api/deploymentmetrics/tag", `{"a":1}`)
	assert.Equal(t, http.StatusTooManyRequests, status, body)
	status, body = do(http.MethodGet, "/api/v2/customMetrics", "")
	require.Equal(t, http.StatusOK, status)
	assert.Contains(t, body, `"resultCount":2`)
	status, _ = do(http.MethodDelete, "/api/v2/customMetrics/m0", "")
	require.Equal(t, http.StatusOK, status)
	status, body = do(http.MethodPost, "/api/deploymentmetrics/tag", `{"a":1}`)
	assert.Equal(t, http.StatusOK, status, body)
}
