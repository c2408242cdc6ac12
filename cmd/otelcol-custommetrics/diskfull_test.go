//go:build linux

package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/custommetrics/bundle/internal/collectortest"
)

// mountTmpfs mounts a tmpfs of size bytes on a new directory. It needs
// root (CAP_SYS_ADMIN), which CI has; elsewhere the test is skipped.
func mountTmpfs(t *testing.T, size int) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("mounting a tmpfs for the disk-full test: %v (CI runs as root)", err)
		}
		t.Skipf("mounting a tmpfs needs root: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

// fill writes a ballast file until the filesystem is full.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	require.NoError(t, err)
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			require.True(t, errors.Is(err, syscall.ENOSPC), "%v", err)
			break
		}
	}
	for { // the last partial chunk
		if _, err := f.Write(chunk[:512]); err != nil {
			break
		}
	}
}

const diskFullConfig = `
extensions:
  health_check:
    http:
      endpoint: ${env:HEALTH_ADDR}
      status:
        enabled: true
        path: /
    component_health:
      include_permanent_errors: true
      include_recoverable_errors: true
      recovery_duration: 1ms
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
exporters:
  debug:
    verbosity: basic
service:
  extensions: [health_check, file_storage, definitions]
  telemetry:
    metrics:
      level: none
  pipelines:
    metrics:
      receivers: [custommetrics]
      processors: [aggregate]
      exporters: [debug]
`

// TestDiskFullEndToEnd: with the state on a filesystem that fills up, a
// value is either acknowledged (204) and counted, or refused with 503,
// Retry-After and ThreatConnect's error shape (no internal paths) and never
// counted, not even after recovery; health_check turns unhealthy while
// storage fails and healthy again once space is freed, and service resumes
// by itself.
func TestDiskFullEndToEnd(t *testing.T) {
	data := mountTmpfs(t, 4<<20)
	health, addr := collectortest.FreeAddr(t), collectortest.FreeAddr(t)
	t.Setenv("DATA_DIR", data)
	t.Setenv("HEALTH_ADDR", health)
	t.Setenv("RECEIVER_ADDR", addr)
	col := collectortest.Start(t, components, diskFullConfig)
	base := "http://" + addr + "/api/v2/customMetrics"
	require.Equal(t, http.StatusCreated, post(t, base, `{"name":"runs","dataType":"Sum","interval":"Daily","keyedValues":true}`).status)
	require.Equal(t, http.StatusCreated, post(t, base, `{"name":"total","dataType":"Sum","interval":"Daily"}`).status)
	healthy := func() bool {
		resp, err := http.Get("http://" + health + "/")
		if err != nil {
			return false
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	require.Eventually(t, healthy, 10*time.Second, 20*time.Millisecond)

	date := time.Now().UTC().Format("2006-01-02T15:04:05Z")
	acked, refused := 0, 0
	check := func(a answer) {
		if a.status == http.StatusServiceUnavailable {
			refused++
			assert.NotEmpty(t, a.header.Get("Retry-After"))
			assert.Equal(t, "Failure", a.body["status"])
			assert.NotContains(t, a.body["message"], data, "no internal paths")
			assert.NotContains(t, a.body["message"], "no space left")
		} else {
			require.Equal(t, http.StatusNoContent, a.status, "%v", a.body)
		}
	}
	// send posts a value with a long key (a new series-window: the store
	// grows), then a value of 1 to the unkeyed "total", whose figure must
	// end as the number of its acknowledged values.
	grow := func(key string) int {
		a := post(t, base+"/runs/data", `{"name":"`+key+strings.Repeat("k", 1000)+`","value":1,"date":"`+date+`"}`)
		check(a)
		return a.status
	}
	send := func(key string) int {
		grow(key)
		a := post(t, base+"/total/data", `{"value":1,"date":"`+date+`"}`)
		check(a)
		if a.status == http.StatusNoContent {
			acked++
		}
		return a.status
	}
	for i := range 20 {
		require.Equal(t, http.StatusNoContent, send(fmt.Sprintf("before-%d-", i)))
	}
	ballast := filepath.Join(data, "ballast")
	fill(t, ballast)
	for i := 0; refused < 50 && i < 2000; i++ {
		send(fmt.Sprintf("full-%d-", i))
	}
	t.Logf("during the full disk: acknowledged %d to total, refused %d", acked, refused)
	require.Positive(t, refused, "a full disk must refuse values")
	require.Equal(t, http.StatusServiceUnavailable, grow("last-"), "a new series-window cannot be stored")

	// The definitions store is on the same disk: a large BigFix document
	// cannot be stored, and the refusal leaves no trace.
	doc := `{"note":"` + strings.Repeat("x", 200<<10) + `","runs":1}`
	bf := "http://" + addr + "/api/deploymentmetrics/big"
	postRaw := func(url, body string) (int, http.Header) {
		resp, err := http.Post(url, "application/json", strings.NewReader(body))
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, resp.Header
	}
	status, header := postRaw(bf, doc)
	require.Equal(t, http.StatusServiceUnavailable, status)
	assert.NotEmpty(t, header.Get("Retry-After"))
	resp, err := http.Get(bf)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNotFound, resp.StatusCode, "a refused document is not stored")
	// (component status reaches health_check asynchronously, and a
	// recoverable error counts once recovery_duration has passed)
	assert.Eventually(t, func() bool { return !healthy() }, 5*time.Second, 10*time.Millisecond, "health_check must show the storage failure")

	require.NoError(t, os.Remove(ballast))
	require.Eventually(t, func() bool { return send("after-") == http.StatusNoContent }, 10*time.Second, 50*time.Millisecond,
		"service resumes by itself once writes succeed")
	require.Eventually(t, healthy, 10*time.Second, 20*time.Millisecond, "health_check recovers")
	for i := range 20 {
		require.Equal(t, http.StatusNoContent, send(fmt.Sprintf("more-%d-", i)))
	}
	status, _ = postRaw(bf, doc)
	require.Equal(t, http.StatusOK, status, "the definitions store resumes by itself")

	// Every acknowledged value is counted, no refused one, after a restart
	// too (from storage alone).
	col.Shutdown(t)
	collectortest.Start(t, components, diskFullConfig)
	a := post(t, base+"/total/data?returnValue=true", `{"value":0,"date":"`+date+`"}`)
	require.Equal(t, http.StatusOK, a.status, "%v", a.body)
	t.Logf("acknowledged %d to total, refused %d", acked, refused)
	assert.Equal(t, float64(acked), a.body["value"], "the figure is the number of acknowledged values")
}
