package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/custommetrics/bundle/testbed/collector"
	"github.com/custommetrics/bundle/testbed/loadgen"
)

// mountTmpfs mounts a tmpfs of size bytes on dir (created), for a data
// directory that can fill up. It needs root, as CI has.
func mountTmpfs(dir string, size int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
		return fmt.Errorf("mounting a %d-byte tmpfs on %s (the disk-full scenario needs root): %w", size, dir, err)
	}
	return nil
}

// fillUp writes path until its filesystem has no space left.
func fillUp(path string) (int64, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	var n int64
	for size := len(chunk); size >= 512; {
		w, err := f.Write(chunk[:size])
		n += int64(w)
		if errors.Is(err, syscall.ENOSPC) {
			size /= 2
			continue
		}
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// diskFull: keyed ThreatConnect load at a fixed rate on a collector whose
// data directory (file_storage and SQLite) is a small tmpfs. After a third
// of the time a ballast file fills it; after two thirds the ballast is
// removed. Every value is either acknowledged and stored, or refused (503)
// and stored nowhere, even after recovery: the accounting finds no loss,
// nothing over the acknowledged figures and no series that only refused
// values would have made; health_check turns unhealthy while storage
// fails, and both it and the acknowledgements come back by themselves.
func (e *env) diskFull(d time.Duration, rate float64) {
	name := "disk-full"
	if !e.want(name) {
		return
	}
	log.Printf("scenario %s", name)
	c, err := e.newCollector(name, colOpts{durable: true, dataTmpfs: 64 << 20})
	if err != nil {
		e.add(&row{Scenario: name, Target: "-", Fail: []string{"start: " + err.Error()}})
		return
	}
	defer func() { _ = syscall.Unmount(filepath.Join(c.dir, "data"), syscall.MNT_DETACH) }()
	// Back-dated hourly values over ten years: nearly every value opens a
	// window of its own, so the stores keep growing.
	t := tc(loadgen.Spread{Size: 100000, Metrics: 4, Keys: 20, Days: 3650, From: time.Date(2010, 1, 1, 0, 0, 0, 0, time.UTC), Interval: loadgen.Hourly, Prefix: "tb_full"})
	ctx := context.Background()
	if err := setup(ctx, c.api(), t); err != nil {
		c.proc.Kill()
		e.add(&row{Scenario: name, Target: "-", Fail: []string{err.Error()}})
		return
	}
	r := &row{Scenario: name, Target: "threatconnect-keyed"}
	s := collector.Sample(c.proc.Pid(), 250*time.Millisecond)
	var res *loadgen.Result
	var wg sync.WaitGroup
	wg.Go(func() {
		res = loadgen.Run(ctx, t, loadgen.Config{BaseURL: c.api(), Conns: 16, Rate: rate, Duration: d})
	})
	healthURL := fmt.Sprintf("http://127.0.0.1:%d/", c.ports.health)
	healthy := func() bool {
		resp, err := http.Get(healthURL)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	time.Sleep(d / 3)
	ballast := filepath.Join(c.dir, "data", "ballast")
	n, err := fillUp(ballast)
	if err != nil {
		r.Fail = append(r.Fail, "filling the disk: "+err.Error())
	}
	sawUnhealthy := false
	for deadline := time.Now().Add(d / 3); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if !healthy() {
			sawUnhealthy = true
		}
	}
	if err := os.Remove(ballast); err != nil {
		r.Fail = append(r.Fail, "removing the ballast: "+err.Error())
	}
	freedAt := time.Now()
	wg.Wait()
	r.Usage = s.Stop()
	r.Res = res
	recovered := healthy()
	r.Notes = append(r.Notes, fmt.Sprintf("a %d MiB ballast filled the 64 MiB data tmpfs from %v to %v of the load; answers %v; health_check unhealthy while full: %v, healthy %v after the ballast was removed: %v",
		n>>20, d/3, 2*d/3, res.Status, sawUnhealthy, time.Since(freedAt).Round(time.Millisecond), recovered))
	if res.Status[http.StatusServiceUnavailable] == 0 {
		r.Fail = append(r.Fail, "the full disk refused nothing (503): the scenario did not fill the store")
	}
	if !sawUnhealthy {
		r.Fail = append(r.Fail, "health_check never showed the storage failure")
	}
	if !recovered {
		r.Fail = append(r.Fail, "health_check did not recover after the ballast was removed")
	}
	for code := range res.Status {
		if code != http.StatusNoContent && code != http.StatusServiceUnavailable {
			r.Fail = append(r.Fail, fmt.Sprintf("answer %d (%s): only 204 or 503 are right", code, res.Examples[code]))
		}
	}
	// Windows whose emission failed while the disk was full stay due in the
	// aggregate processor and go out at a later tick: every acknowledged
	// figure must reach the table while the collector runs, so wait for
	// that before stopping it (a stop would leave them for the next start,
	// which is durable but not what this checks).
	if took, ok := c.settle(res.Ledger, 90*time.Second); ok {
		r.Notes = append(r.Notes, fmt.Sprintf("every acknowledged figure was in the table %v after the load", took.Round(100*time.Millisecond)))
	} else {
		r.Notes = append(r.Notes, "collector log tail:\n"+c.proc.Tail(40))
	}
	r.Fail = append(r.Fail, c.stop()...)
	if rep, err := c.account(res.Ledger); err != nil {
		r.Fail = append(r.Fail, "accounting: "+err.Error())
	} else {
		r.Loss = rep
	}
	if res.Acked == 0 {
		r.Fail = append(r.Fail, "nothing acknowledged")
	}
	e.add(r)
}
