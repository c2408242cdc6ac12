package main

import (
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	_ "modernc.org/sqlite"

	"github.com/custommetrics/bundle/internal/collectortest"
)

// edgesConfig: receiver → aggregate (file_storage) → sql (SQLite), emitting
// running figures every 200ms so that open windows reach the table too.
const edgesConfig = `
extensions:
  file_storage:
    directory: ${env:DATA_DIR}/storage
    create_directory: true
  definitions:
    storage: file_storage
receivers:
  custommetrics:
    endpoint: ${env:RECEIVER_ADDR}
    definitions: definitions
processors:
  aggregate:
    storage: file_storage
    check_interval: 100ms
    running_interval: 200ms
exporters:
  sql:
    driver: sqlite
    dsn: ${env:DATA_DIR}/custommetrics.db
service:
  extensions: [file_storage, definitions]
  telemetry:
    metrics:
      level: none
  pipelines:
    metrics:
      receivers: [custommetrics]
      processors: [aggregate]
      exporters: [sql]
`

type answer struct {
	status int
	body   map[string]any
	header http.Header
}

func post(t *testing.T, url, body string) answer {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	a := answer{status: resp.StatusCode, header: resp.Header}
	if len(raw) > 0 {
		require.NoError(t, json.Unmarshal(raw, &a.body), "%s", raw)
	}
	return a
}

// TestEdgesOfInputEndToEnd: through the real runtime into SQLite, a value
// lands in its exact window at the edges of the supported dates (before
// 1970, at the epoch, 1700 and 2199), a date beyond them is refused with
// 400 in ThreatConnect's shape and counted nowhere, and a value that would
// make a figure non-finite is refused while the window keeps its last
// finite figure.
func TestEdgesOfInputEndToEnd(t *testing.T) {
	dir := t.TempDir()
	addr := collectortest.FreeAddr(t)
	t.Setenv("DATA_DIR", dir)
	t.Setenv("RECEIVER_ADDR", addr)
	collectortest.Start(t, components, edgesConfig)
	base := "http://" + addr + "/api/v2/customMetrics"

	for _, def := range []string{
		`{"name":"backfill","dataType":"Sum","interval":"Daily"}`,
		`{"name":"big","dataType":"Sum","interval":"Daily"}`,
		`{"name":"mean","dataType":"Average","interval":"Daily"}`,
	} {
		require.Equal(t, http.StatusCreated, post(t, base, def).status)
	}
	figure := func(metric, body string) float64 {
		a := post(t, base+"/"+metric+"/data?returnValue=true", body)
		require.Equal(t, http.StatusOK, a.status, "%v", a.body)
		return a.body["value"].(float64)
	}
	// Before 1970, at the epoch exactly, and the edges of the supported range.
	assert.Equal(t, 1.0, figure("backfill", `{"value":1,"date":"1969-12-31T12:00:00Z"}`))
	assert.Equal(t, 3.0, figure("backfill", `{"value":2,"date":"1969-12-31T23:59:59Z"}`))
	assert.Equal(t, 4.0, figure("backfill", `{"value":4,"date":"1970-01-01T00:00:00Z"}`))
	assert.Equal(t, 8.0, figure("backfill", `{"value":4,"date":"1970-01-01T23:59:59.999Z"}`))
	assert.Equal(t, 5.0, figure("backfill", `{"value":5,"date":"1700-01-01T00:00:00Z"}`))
	assert.Equal(t, 6.0, figure("backfill", `{"value":6,"date":"2199-12-31T23:59:59Z"}`))
	for _, date := range []string{"9999-12-31T00:00:00Z", "2300-01-01", "0001-01-01T00:00:00Z", "0001-06-01", "1699-12-31T23:59:59Z", "2200-01-01"} {
		a := post(t, base+"/backfill/data?returnValue=true", `{"value":100,"date":"`+date+`"}`)
		assert.Equal(t, http.StatusBadRequest, a.status, date)
		assert.Equal(t, "Failure", a.body["status"], date)
	}

	// Overflow: the second 1e308 would make the sum +Inf.
	today := time.Now().UTC().Format("2006-01-02T15:04:05Z")
	assert.Equal(t, 1e308, figure("big", `{"value":1e308,"date":"`+today+`"}`))
	a := post(t, base+"/big/data?returnValue=true", `{"value":1e308,"date":"`+today+`"}`)
	require.Equal(t, http.StatusBadRequest, a.status, "%v", a.body)
	assert.Equal(t, "Failure", a.body["status"])
	assert.Contains(t, a.body["message"], "non-finite")
	assert.Equal(t, 1e308+1, figure("big", `{"value":1,"date":"`+today+`"}`), "later values see the last finite figure")

	// Weight 0 on an empty Average window leaves it without a figure: refused.
	a = post(t, base+"/mean/data?returnValue=true", `{"value":5,"weight":0,"date":"`+today+`"}`)
	require.Equal(t, http.StatusBadRequest, a.status, "%v", a.body)
	assert.Equal(t, 4.0, figure("mean", `{"value":4,"weight":2,"date":"`+today+`"}`))
	assert.Equal(t, 4.0, figure("mean", `{"value":100,"weight":0,"date":"`+today+`"}`), "weight 0 adds nothing")

	day := int64(24 * time.Hour)
	ymd := func(y, m, d int) int64 { return time.Date(y, time.Month(m), d, 0, 0, 0, 0, time.UTC).UnixNano() }
	want := map[[2]int64]float64{
		{-day, 0}:                            3,
		{0, day}:                             8,
		{ymd(1700, 1, 1), ymd(1700, 1, 2)}:   5,
		{ymd(2199, 12, 31), ymd(2200, 1, 1)}: 6,
	}
	db, err := sql.Open("sqlite", filepath.Join(dir, "custommetrics.db")+"?mode=ro")
	require.NoError(t, err)
	defer db.Close()
	got := map[[2]int64]float64{}
	var bigValue float64
	require.Eventually(t, func() bool {
		rows, err := db.Query(`SELECT metric, window_start_unix_nano, window_end_unix_nano, value FROM windows`)
		if err != nil {
			return false
		}
		defer rows.Close()
		clear(got)
		for rows.Next() {
			var metric string
			var s, e int64
			var v float64
			if rows.Scan(&metric, &s, &e, &v) != nil {
				return false
			}
			switch metric {
			case "backfill":
				got[[2]int64{s, e}] = v
			case "big":
				bigValue = v
			}
		}
		return len(got) == len(want) && bigValue == 1e308+1
	}, 20*time.Second, 100*time.Millisecond, "windows: %v, big: %v", got, bigValue)
	assert.Equal(t, want, got)
}

// TestDefaultConfigShowsOpenWindows: with the shipped configuration (its
// addresses moved to free ports, its data/ under a scratch working
// directory), a ThreatConnect value posted for today is in the SQLite
// windows table within 15 s, as the running figure of its open window.
func TestDefaultConfigShowsOpenWindows(t *testing.T) {
	raw, err := os.ReadFile("config.yaml")
	require.NoError(t, err)
	addr, health := collectortest.FreeAddr(t), collectortest.FreeAddr(t)
	_, telemetry, _ := strings.Cut(collectortest.FreeAddr(t), ":")
	cfg := strings.NewReplacer("127.0.0.1:8181", addr, "127.0.0.1:13133", health, "port: 8888", "port: "+telemetry).Replace(string(raw))
	require.NotEqual(t, string(raw), cfg)
	t.Chdir(t.TempDir())
	collectortest.Start(t, components, cfg)

	base := "http://" + addr + "/api/v2/customMetrics"
	require.Equal(t, http.StatusCreated, post(t, base, `{"name":"today","dataType":"Sum","interval":"Daily"}`).status)
	posted := time.Now()
	require.Equal(t, http.StatusNoContent, post(t, base+"/today/data", `{"value":42}`).status)

	db, err := sql.Open("sqlite", "data/custommetrics.db?mode=ro")
	require.NoError(t, err)
	defer db.Close()
	var value float64
	var status string
	require.Eventually(t, func() bool {
		return db.QueryRow(`SELECT value, status FROM windows WHERE metric = 'today'`).Scan(&value, &status) == nil
	}, 15*time.Second, 100*time.Millisecond)
	t.Logf("in the windows table %v after the post", time.Since(posted).Round(time.Millisecond))
	assert.Equal(t, 42.0, value)
	assert.Equal(t, "running", status)
}
