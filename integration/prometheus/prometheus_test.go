// Package prometheus tests the distribution's components against a real
// Prometheus server: custommetrics receiver → aggregate → anomaly →
// prometheusremotewrite → Prometheus (Debian's prometheus package, started as
// a plain process on loopback), read back through Prometheus' HTTP API.
package prometheus

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/exporter/prometheusremotewriteexporter"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/otelcol"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/receiver"

	"github.com/custommetrics/bundle/extension/definitionsextension"
	"github.com/custommetrics/bundle/internal/collectortest"
	"github.com/custommetrics/bundle/processor/aggregateprocessor"
	"github.com/custommetrics/bundle/processor/anomalyprocessor"
	"github.com/custommetrics/bundle/receiver/custommetricsreceiver"
)

// prometheusConfig is the minimal server configuration: no scraping; an
// out-of-order window so that back-dated samples (closed windows, late
// values) are accepted after newer ones.
const prometheusConfig = `
global:
  scrape_interval: 1h
storage:
  tsdb:
    out_of_order_time_window: 30d
`

// startPrometheus runs the prometheus binary with the remote-write receiver
// on a free loopback port and returns its base URL.
func startPrometheus(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		if os.Getenv("E2E_SKIP_PROMETHEUS") == "1" {
			t.Skip("prometheus not installed and E2E_SKIP_PROMETHEUS=1")
		}
		t.Fatal("the prometheus binary is missing: install the Debian package `prometheus` " +
			"(apt-get install prometheus), or set E2E_SKIP_PROMETHEUS=1 to skip this test")
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	require.NoError(t, os.WriteFile(cfg, []byte(prometheusConfig), 0o600))
	addr := collectortest.FreeAddr(t)
	logf, err := os.Create(filepath.Join(dir, "prometheus.log"))
	require.NoError(t, err)
	cmd := exec.Command(bin,
		"--config.file="+cfg,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--web.enable-remote-write-receiver",
		"--log.level=warn",
	)
	cmd.Stdout, cmd.Stderr = logf, logf
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		_ = logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("prometheus log:\n%s", b)
		}
	})
	base := "http://" + addr
	require.Eventually(t, func() bool {
		resp, err := http.Get(base + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 30*time.Second, 100*time.Millisecond, "prometheus did not become ready")
	return base
}

func factories() (otelcol.Factories, error) {
	var f otelcol.Factories
	var err error
	if f.Receivers, err = otelcol.MakeFactoryMap[receiver.Factory](custommetricsreceiver.NewFactory()); err != nil {
		return f, err
	}
	if f.Processors, err = otelcol.MakeFactoryMap[processor.Factory](aggregateprocessor.NewFactory(), anomalyprocessor.NewFactory()); err != nil {
		return f, err
	}
	if f.Exporters, err = otelcol.MakeFactoryMap[exporter.Factory](prometheusremotewriteexporter.NewFactory()); err != nil {
		return f, err
	}
	f.Extensions, err = otelcol.MakeFactoryMap[extension.Factory](definitionsextension.NewFactory())
	return f, err
}

// collectorConfig is the documented configuration (exporter README,
// "Sending the outputs to Prometheus"), with test ports and fast checks.
const collectorConfig = `
extensions:
  definitions: {}
receivers:
  custommetrics:
    endpoint: ${env:CM_ENDPOINT}
    definitions: definitions
    sleuth:
      min_interval: 0s
      impact_sources:
        - id: 42
          metric: deploy.latency
          unit: ms
processors:
  aggregate:
    allowed_lateness: 0s
    check_interval: 100ms
  anomaly:
    learning_period: 0
    cooldown: 0
exporters:
  prometheusremotewrite:
    endpoint: ${env:PROM_WRITE_URL}
    resource_to_telemetry_conversion:
      enabled: true
    target_info:
      enabled: false
service:
  extensions: [definitions]
  telemetry:
    metrics:
      level: none
  pipelines:
    metrics:
      receivers: [custommetrics]
      processors: [aggregate, anomaly]
      exporters: [prometheusremotewrite]
`

type sample struct {
	labels map[string]string
	at     time.Time
	value  float64
}

// query runs an instant query and returns every sample of a range vector
// selector (name[1d]) or the instant values.
func query(t *testing.T, base, q string) []sample {
	t.Helper()
	resp, err := http.Get(base + "/api/v1/query?query=" + url.QueryEscape(q))
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	var r struct {
		Data struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Values [][2]any          `json:"values"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal(body, &r), "%s", body)
	var out []sample
	for _, res := range r.Data.Result {
		vals := res.Values
		if len(vals) == 0 && res.Value[0] != nil {
			vals = [][2]any{res.Value}
		}
		for _, v := range vals {
			ts := v[0].(float64)
			f, err := strconv.ParseFloat(v[1].(string), 64)
			require.NoError(t, err)
			out = append(out, sample{labels: res.Metric, at: time.UnixMilli(int64(ts * 1000)).UTC(), value: f})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].at.Before(out[j].at) })
	return out
}

func post(t *testing.T, base, path, body string) {
	t.Helper()
	resp, err := http.Post(base+path, "application/json", strings.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	require.Less(t, resp.StatusCode, 300, "%s %s: %s", path, body, b)
}

func TestAggregateAndAnomalyOutputsReachPrometheus(t *testing.T) {
	prom := startPrometheus(t)
	cm := collectortest.FreeAddr(t)
	t.Setenv("CM_ENDPOINT", cm)
	t.Setenv("PROM_WRITE_URL", prom+"/api/v1/write")
	collectortest.Start(t, factories, collectorConfig)
	base := "http://" + cm

	// A closed window, back-dated: three hours ago.
	now := time.Now().UTC()
	start := now.Truncate(time.Hour).Add(-3 * time.Hour)
	end := start.Add(time.Hour)
	date := func(d time.Duration) string { return start.Add(d).Format("2006-01-02T15:04:05Z") }

	post(t, base, "/api/v2/customMetrics", `{"name":"checkout.latency","dataType":"Max","interval":"Hourly","keyedValues":true}`)
	post(t, base, "/api/v2/customMetrics", `{"name":"checkout.avg","dataType":"Average","interval":"Hourly"}`)
	post(t, base, "/api/v2/customMetrics", `{"name":"orders","dataType":"Sum","interval":"Hourly"}`)
	for _, v := range []struct {
		metric, body string
	}{
		{"checkout.latency", fmt.Sprintf(`{"name":"eu","value":120,"date":%q}`, date(time.Minute))},
		{"checkout.latency", fmt.Sprintf(`{"name":"eu","value":250,"date":%q}`, date(20*time.Minute))},
		{"checkout.latency", fmt.Sprintf(`{"name":"us","value":90,"date":%q}`, date(30*time.Minute))},
		{"checkout.avg", fmt.Sprintf(`{"value":10,"weight":1,"date":%q}`, date(time.Minute))},
		{"checkout.avg", fmt.Sprintf(`{"value":20,"weight":3,"date":%q}`, date(2*time.Minute))},
		{"orders", fmt.Sprintf(`{"value":3,"date":%q}`, date(time.Minute))},
		{"orders", fmt.Sprintf(`{"value":4,"date":%q}`, date(59*time.Minute))},
	} {
		post(t, base, "/api/v2/customMetrics/"+v.metric+"/data", v.body)
	}
	// Raw values (Sleuth: no aggregation metadata, so they pass the aggregate
	// processor and are scored by the anomaly processor), one minute apart.
	raws := []float64{100, 101, 99, 100, 500}
	rawStart := now.Truncate(time.Minute).Add(-10 * time.Minute)
	for i, v := range raws {
		post(t, base, "/api/1/impact/42/register_impact",
			fmt.Sprintf(`{"value":%v,"date":%q}`, v, rawStart.Add(time.Duration(i)*time.Minute).Format("2006-01-02T15:04:05Z")))
	}

	var got map[string][]sample
	names := []string{
		"checkout_latency", "checkout_latency_anomaly_score_ratio", "checkout_latency_anomaly_flag_ratio",
		"checkout_avg", "orders_anomaly_score_ratio",
		"deploy_latency_milliseconds", "deploy_latency_anomaly_score_ratio", "deploy_latency_anomaly_flag_ratio",
	}
	assert.Eventually(t, func() bool {
		got = map[string][]sample{}
		for _, n := range names {
			got[n] = query(t, prom, n+"[30d]")
		}
		return len(got["checkout_latency"]) >= 2 && len(got["checkout_avg"]) >= 1 &&
			len(got["checkout_latency_anomaly_score_ratio"]) >= 2 && len(got["checkout_latency_anomaly_flag_ratio"]) >= 2 &&
			len(got["orders_anomaly_score_ratio"]) >= 1 &&
			len(got["deploy_latency_milliseconds"]) >= len(raws) && len(got["deploy_latency_anomaly_score_ratio"]) >= len(raws)
	}, 60*time.Second, 250*time.Millisecond, "not all outputs arrived")
	t.Logf("series in Prometheus: %v", seriesNames(t, prom))
	if t.Failed() {
		t.FailNow()
	}

	// Window figures (gauges: max, average): one sample per series-window at the window END.
	byKey := map[string]sample{}
	for _, s := range got["checkout_latency"] {
		byKey[s.labels["custommetrics_key"]] = s
		assert.Equal(t, end, s.at, "the sample's timestamp is the window end")
		assert.Equal(t, "threatconnect", s.labels["custommetrics_api"])
	}
	assert.Equal(t, 250.0, byKey["eu"].value)
	assert.Equal(t, 90.0, byKey["us"].value)
	require.Len(t, got["checkout_avg"], 1)
	assert.Equal(t, 17.5, got["checkout_avg"][0].value) // (10·1 + 20·3) / 4
	assert.Equal(t, end, got["checkout_avg"][0].at)
	_, hasWeight := got["checkout_avg"][0].labels["custommetrics_weight"]
	assert.False(t, hasWeight, "the weight is not a label")

	// Anomaly outputs: same labels and timestamp as the scored point.
	for _, n := range []string{"checkout_latency_anomaly_score_ratio", "checkout_latency_anomaly_flag_ratio"} {
		for _, s := range got[n] {
			assert.Equal(t, end, s.at, n)
			assert.Contains(t, []string{"eu", "us"}, s.labels["custommetrics_key"], n)
			assert.GreaterOrEqual(t, s.value, 0.0, n)
			assert.LessOrEqual(t, s.value, 1.0, n)
		}
	}
	// The delta Sum figure (sum, count) is dropped by prometheusremotewrite
	// ("invalid temporality and type combination"); its anomaly score, a
	// gauge, arrives.
	assert.Empty(t, query(t, prom, "orders[30d]"), "delta sums do not reach Prometheus")
	assert.Equal(t, end, got["orders_anomaly_score_ratio"][0].at)

	// Raw values: their own timestamps (ms) and values; the unit becomes a suffix.
	var rawGot []float64
	for i, s := range got["deploy_latency_milliseconds"] {
		rawGot = append(rawGot, s.value)
		assert.Equal(t, rawStart.Add(time.Duration(i)*time.Minute), s.at)
		assert.Equal(t, "sleuth", s.labels["custommetrics_api"])
	}
	assert.Equal(t, raws, rawGot)
	scores := got["deploy_latency_anomaly_score_ratio"]
	for i, s := range scores {
		assert.Equal(t, rawStart.Add(time.Duration(i)*time.Minute), s.at)
	}
	flags := got["deploy_latency_anomaly_flag_ratio"]
	require.Len(t, flags, len(raws))
	assert.Equal(t, 1.0, flags[len(flags)-1].value, "the jump to 500 is flagged (scores %v)", scores)
}

func seriesNames(t *testing.T, prom string) []string {
	resp, err := http.Get(prom + "/api/v1/label/__name__/values")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var r struct {
		Data []string `json:"data"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&r)
	return r.Data
}
