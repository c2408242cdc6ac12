package main

import (
	"fmt"
	"strings"

	"github.com/custommetrics/bundle/testbed/loadgen"
)

// ports are the loopback ports of one collector (fresh per scenario, so the
// testbed never collides with a collector running on the default ports).
type ports struct{ api, health, otlp, telemetry, pprof int }

// colOpts are the knobs of a scenario's configuration. The zero value is the
// default configuration's pipeline (cmd/otelcol-custommetrics/config.yaml):
// custommetrics → memory_limiter → aggregate → anomaly → sql (SQLite) + debug.
type colOpts struct {
	// durable keeps the aggregate processor's windows in file_storage, so
	// acknowledged values survive kill -9 (the sql exporter has no queue: a
	// window is marked emitted once it is in the database).
	durable bool
	// memLimitMiB, when > 0, replaces the memory_limiter's percentages.
	memLimitMiB, memSpikeMiB int
	// readHeaderTimeout and readTimeout of the receiver ("" = defaults).
	readHeaderTimeout, readTimeout string
	// pgDSN, when set, stores in PostgreSQL instead of SQLite.
	pgDSN string
	// env is added to the collector's environment (e.g. GOMEMLIMIT).
	env []string
	// anomalyMaxSeries, when set, is the anomaly processor's
	// max_series_per_tenant ("0" = no limit).
	anomalyMaxSeries string
	// runningInterval, when set, is the aggregate processor's running_interval.
	runningInterval string
	// dataTmpfs, when > 0, mounts a tmpfs of that many bytes as the
	// collector's data directory (needs root), for the disk-full scenario.
	dataTmpfs int
}

// sleuthSources is the number of Sleuth impact sources the configuration maps.
const sleuthSources = 8

func (o colOpts) yaml(p ports) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w(`extensions:
  health_check:
    http:
      endpoint: 127.0.0.1:%d
      status:
        enabled: true
        path: /
    component_health:
      include_permanent_errors: true
      include_recoverable_errors: true
      recovery_duration: 1s # the shipped config waits 5s; the disk-full scenario has 6s of full disk
  file_storage:
    directory: data/storage
    create_directory: true
  definitions:
    storage: file_storage
`, p.health)
	exts := "health_check, file_storage, definitions"
	if p.pprof > 0 {
		// -profile: the Collector's own pprof extension, for CPU profiles
		// taken during the load.
		w("  pprof:\n    endpoint: 127.0.0.1:%d\n", p.pprof)
		exts += ", pprof"
	}
	w(`
receivers:
  custommetrics:
    endpoint: 127.0.0.1:%d
    definitions: definitions
`, p.api)
	if o.readHeaderTimeout != "" {
		w("    read_header_timeout: %s\n", o.readHeaderTimeout)
	}
	if o.readTimeout != "" {
		w("    read_timeout: %s\n", o.readTimeout)
	}
	w("    sleuth:\n      min_interval: 0s\n      impact_sources:\n")
	for i := 1; i <= sleuthSources; i++ {
		w("        - id: %d\n          metric: tb_sleuth_%d\n", i, i)
	}
	// LaunchDarkly SDK events and Embrace definitions (testbed/loadgen/definitions.go).
	w(`    launchdarkly:
      events:
        sdk_keys:
          - key: %s
            project: %s
    embrace:
      base_metrics:
        - name: %s
          attributes: [key, os]
`, loadgen.LaunchDarklySDKKey, loadgen.LaunchDarklyProject, loadgen.EmbraceBaseMetric)
	w(`  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:%d

processors:
  memory_limiter:
    check_interval: 1s
`, p.otlp)
	if o.memLimitMiB > 0 {
		w("    limit_mib: %d\n    spike_limit_mib: %d\n", o.memLimitMiB, o.memSpikeMiB)
	} else {
		w("    limit_percentage: 80\n    spike_limit_percentage: 20\n")
	}
	w(`  aggregate:
    rules:
      - regexp: "tb_(sleuth|otlp)_.*"
        aggregation: sum
        intervals: [day]
      - name: %s
        aggregation: sum
        intervals: [day]
    definitions: definitions
`, loadgen.EmbraceBaseMetric)
	if o.durable {
		w("    storage: file_storage\n")
	}
	if o.runningInterval != "" {
		w("    running_interval: %s\n", o.runningInterval)
	}
	w("  anomaly:\n")
	if o.anomalyMaxSeries != "" {
		w("    max_series_per_tenant: %s\n", o.anomalyMaxSeries)
	}
	w("\nexporters:\n  sql:\n")
	if o.pgDSN != "" {
		w("    driver: postgres\n    dsn: %s\n", o.pgDSN)
	} else {
		w("    driver: sqlite\n    dsn: data/custommetrics.db\n")
	}
	w(`  debug:
    verbosity: basic

service:
  extensions: [%s]
  telemetry:
    metrics:
      readers:
        - pull:
            exporter:
              prometheus:
                host: 127.0.0.1
                port: %d
  pipelines:
    metrics:
      receivers: [custommetrics, otlp]
      processors: [memory_limiter, aggregate, anomaly]
      exporters: [sql, debug]
`, exts, p.telemetry)
	return b.String()
}
