// Package cluster tests cluster mode end to end: three collectors built from
// this module, started as separate processes with
// cmd/otelcol-custommetrics/cluster.yaml on one private PostgreSQL server
// (internal/pgserver), answer as one collector would, through kill -9 of an
// instance and an outage of the database.
package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/custommetrics/bundle/internal/pgserver"
	"github.com/custommetrics/bundle/testbed/collector"
)

// instance is one collector process of the cluster.
type instance struct {
	proc   *collector.Process
	base   string // receiver URL
	health string
}

func startInstance(t *testing.T, bin, dsn, dir string) *instance {
	t.Helper()
	// Free ports are picked before the collector binds them, so another
	// process can take one in between: then try again with others.
	for attempt := 1; ; attempt++ {
		in, err := tryInstance(t, bin, dsn, dir)
		if err == nil {
			return in
		}
		if attempt == 3 || !strings.Contains(err.Error(), "address already in use") {
			require.NoError(t, err)
		}
		t.Logf("a port was taken before the collector bound it; starting again: %v", err)
	}
}

func tryInstance(t *testing.T, bin, dsn, dir string) (*instance, error) {
	recv, health, tel := collector.FreePort(), collector.FreePort(), collector.FreePort()
	cfg, err := filepath.Abs("../../cmd/otelcol-custommetrics/cluster.yaml")
	require.NoError(t, err)
	in := &instance{
		proc: &collector.Process{
			Bin: bin, Args: []string{"--config", cfg}, Dir: dir, Log: filepath.Join(dir, "collector.log"),
			Env: []string{
				"CUSTOMMETRICS_PG_DSN=" + dsn,
				"CUSTOMMETRICS_ENDPOINT=127.0.0.1:" + strconv.Itoa(recv),
				"CUSTOMMETRICS_HEALTH_ENDPOINT=127.0.0.1:" + strconv.Itoa(health),
				"CUSTOMMETRICS_TELEMETRY_PORT=" + strconv.Itoa(tel),
			},
		},
		base:   "http://127.0.0.1:" + strconv.Itoa(recv),
		health: "http://127.0.0.1:" + strconv.Itoa(health) + "/",
	}
	require.NoError(t, in.proc.Start())
	if err := in.proc.WaitHTTP(in.health, 60*time.Second); err != nil {
		if done, _ := in.proc.Exited(); !done {
			_ = in.proc.Stop(10 * time.Second)
		}
		return nil, err
	}
	t.Cleanup(func() {
		if done, _ := in.proc.Exited(); !done {
			_ = in.proc.Stop(10 * time.Second)
		}
		if t.Failed() {
			t.Logf("log of %s:\n%s", dir, in.proc.Tail(30))
		}
	})
	return in, nil
}

var client = &http.Client{Timeout: 15 * time.Second}

// send posts body to url; status 0 means no answer (the request may or may
// not have been applied).
func send(method, url, body string) (int, []byte) {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return 0, nil
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// storedFigure returns the windows table's figure of metric, or -1.
func storedFigure(t *testing.T, dsn, metric string) float64 {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return -1
	}
	defer conn.Close(ctx)
	var v float64
	if err := conn.QueryRow(ctx, "SELECT value FROM windows WHERE metric = $1", metric).Scan(&v); err != nil {
		return -1
	}
	return v
}

func TestClusterAnswersAsOneCollector(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the distribution and runs three collectors")
	}
	bin := filepath.Join(t.TempDir(), "otelcol-custommetrics")
	require.NoError(t, collector.Build(context.Background(), "../..", bin))
	srv, err := pgserver.Start(pgserver.Options{})
	require.NoError(t, err)
	t.Cleanup(srv.Remove)
	dsn := srv.DSN("postgres")
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	ins := make([]*instance, 3)
	for i := range ins {
		ins[i] = startInstance(t, bin, dsn, dirs[i])
	}
	const api = "/api/v2/customMetrics"

	// Definitions: created on one instance, known to all at once; of
	// concurrent creates of one name on all instances, one succeeds.
	status, body := send(http.MethodPost, ins[0].base+api, `{"name":"orders","dataType":"Sum","interval":"Daily","keyedValues":false}`)
	require.Equal(t, http.StatusCreated, status, "%s", body)
	for _, in := range ins[1:] {
		status, body := send(http.MethodGet, in.base+api+"/orders", "")
		require.Equal(t, http.StatusOK, status, "%s", body)
	}
	var created, conflicts atomic.Int32
	var wg sync.WaitGroup
	for i := range 9 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch status, _ := send(http.MethodPost, ins[i%3].base+api, `{"name":"contested","dataType":"Count","interval":"Hourly","keyedValues":false}`); status {
			case http.StatusCreated:
				created.Add(1)
			case http.StatusConflict:
				conflicts.Add(1)
			}
		}()
	}
	wg.Wait()
	assert.Equal(t, int32(1), created.Load())
	assert.Equal(t, int32(8), conflicts.Load())

	// LaunchDarkly patches on all instances at once: none lost, _version
	// counts them; of two optimistic patches of one _version, one wins; a
	// delete on one instance is seen by the others.
	const ld = "/api/v2/metrics/proj"
	status, body = send(http.MethodPost, ins[0].base+ld, `{"key":"m","kind":"custom","eventKey":"e","isNumeric":false}`)
	require.Equal(t, http.StatusCreated, status, "%s", body)
	for i := range 15 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, body := send(http.MethodPatch, ins[i%3].base+ld+"/m", fmt.Sprintf(`[{"op":"replace","path":"/name","value":"n%d"}]`, i))
			assert.Equal(t, http.StatusOK, status, "%s", body)
		}()
	}
	wg.Wait()
	version := func(in *instance) float64 {
		status, body := send(http.MethodGet, in.base+ld+"/m", "")
		require.Equal(t, http.StatusOK, status, "%s", body)
		var m struct {
			Version float64 `json:"_version"`
		}
		require.NoError(t, json.Unmarshal(body, &m))
		return m.Version
	}
	for _, in := range ins {
		assert.Equal(t, 16.0, version(in), "every patch counted, on every instance")
	}
	var won, lost atomic.Int32
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch status, _ := send(http.MethodPatch, ins[i].base+ld+"/m", `[{"op":"test","path":"/_version","value":16},{"op":"replace","path":"/name","value":"x"}]`); status {
			case http.StatusOK:
				won.Add(1)
			case http.StatusConflict:
				lost.Add(1)
			}
		}()
	}
	wg.Wait()
	assert.Equal(t, int32(1), won.Load())
	assert.Equal(t, int32(1), lost.Load())
	status, _ = send(http.MethodDelete, ins[1].base+ld+"/m", "")
	require.Equal(t, http.StatusNoContent, status)
	status, _ = send(http.MethodGet, ins[2].base+ld+"/m", "")
	assert.Equal(t, http.StatusNotFound, status, "deleted on one instance, gone on the others")

	// Values round-robin over the instances, with returnValue: each answer
	// holds every value acknowledged before its request was sent. One
	// instance is killed with SIGKILL mid-load and restarted.
	const date = "2024-06-01T12:00:00Z" // a closed Daily window: emitted within a second or two
	var mu sync.Mutex
	acked, unknown := 0.0, 0.0 // unknown: no answer, so applied or not
	var targets [3]atomic.Pointer[instance]
	for i, in := range ins {
		targets[i].Store(in)
	}
	var down atomic.Int32 // index of the killed instance, -1 for none
	down.Store(-1)
	var stop atomic.Bool
	var requests atomic.Int64
	var workers sync.WaitGroup
	for wk := range 6 {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for i := 0; !stop.Load(); i++ {
				v := float64(wk*100_000 + i + 1)
				k := (wk + i) % 3
				if int32(k) == down.Load() {
					k = (k + 1) % 3
				}
				mu.Lock()
				before := acked
				mu.Unlock()
				status, body := send(http.MethodPost, targets[k].Load().base+api+"/orders/data?returnValue=true",
					fmt.Sprintf(`{"value":"%g","date":"%s"}`, v, date))
				requests.Add(1)
				mu.Lock()
				switch status {
				case http.StatusOK:
					acked += v
					var got struct{ Value float64 }
					if assert.NoError(t, json.Unmarshal(body, &got)) {
						assert.GreaterOrEqual(t, got.Value, before+v, "a returnValue holds every value acknowledged before it")
					}
				case 0:
					unknown += v
				default:
					t.Errorf("status %d: %s", status, body)
				}
				mu.Unlock()
			}
		}()
	}
	time.Sleep(time.Second)
	ins[1].proc.Kill() // mid-load: requests in flight to it get no answer
	down.Store(1)
	ins[1] = startInstance(t, bin, dsn, dirs[1])
	targets[1].Store(ins[1])
	down.Store(-1)
	time.Sleep(time.Second)
	stop.Store(true)
	workers.Wait()
	t.Logf("%d requests under load", requests.Load())
	status, body = send(http.MethodPost, ins[1].base+api+"/orders/data?returnValue=true", fmt.Sprintf(`{"value":"1000","date":"%s"}`, date))
	require.Equal(t, http.StatusOK, status, "the restarted instance serves: %s", body)
	acked += 1000

	// PostgreSQL down: 503 with Retry-After, counted nowhere; then back.
	require.NoError(t, srv.Stop("immediate"))
	status, _ = send(http.MethodPost, ins[2].base+api+"/orders/data", fmt.Sprintf(`{"value":"50000","date":"%s"}`, date))
	assert.Equal(t, http.StatusServiceUnavailable, status)
	require.NoError(t, srv.Start())
	require.Eventually(t, func() bool {
		status, _ := send(http.MethodPost, ins[2].base+api+"/orders/data", fmt.Sprintf(`{"value":"2000","date":"%s"}`, date))
		return status == http.StatusNoContent
	}, 30*time.Second, 200*time.Millisecond)
	acked += 2000

	// The stored figure is the sum of every acknowledged value (plus those
	// whose answer the kill swallowed, which may or may not have counted).
	var stored float64
	require.Eventually(t, func() bool {
		stored = storedFigure(t, dsn, "orders")
		return stored >= acked
	}, 60*time.Second, 250*time.Millisecond, "stored %v, acknowledged %v", stored, acked)
	time.Sleep(2 * time.Second) // nothing more arrives later
	stored = storedFigure(t, dsn, "orders")
	assert.GreaterOrEqual(t, stored, acked)
	assert.LessOrEqual(t, stored, acked+unknown)
	t.Logf("acknowledged %v, unanswered %v, stored %v", acked, unknown, stored)
}
