package aggregateprocessor // import "github.com/custommetrics/bundle/processor/aggregateprocessor"

import (
	"errors"
	"fmt"
	"regexp"
	"time"

	"go.opentelemetry.io/collector/component"

	"github.com/custommetrics/bundle/internal/aggregation"
	"github.com/custommetrics/bundle/internal/calendar"
	"github.com/custommetrics/bundle/internal/pgdb"
)

// Defaults. See README.md for the reasoning.
const (
	defaultAllowedLateness  = 30 * time.Second
	defaultCheckInterval    = time.Second
	defaultMaxSeriesWindows = 1_000_000
	defaultMaxPerTenant     = 250_000
	defaultCommitDelay      = 1 * time.Millisecond
	defaultAppIDAttribute   = "app.id"
)

// Config defines the configuration of the aggregate processor.
type Config struct {
	// TimeZone is the IANA zone the calendar windows are aligned to ("" = UTC).
	TimeZone string `mapstructure:"time_zone"`
	// AllowedLateness delays the final emission of a window past its end, so
	// values in flight at the end of a window are in its first final figure
	// instead of a restatement. Default 30s.
	AllowedLateness time.Duration `mapstructure:"allowed_lateness"`
	// CheckInterval is how often closed windows are looked for. Default 1s.
	CheckInterval time.Duration `mapstructure:"check_interval"`
	// RunningInterval, when > 0, emits the running figure of every open window
	// that changed since its last emission this often. 0 (default) = off.
	RunningInterval time.Duration `mapstructure:"running_interval"`
	// KeepRaw passes the aggregated raw points on as well.
	KeepRaw bool `mapstructure:"keep_raw"`
	// Rules select metrics of any receiver for aggregation; metrics that carry
	// custommetrics.aggregation and custommetrics.interval metadata need none.
	Rules []Rule `mapstructure:"rules"`
	// Storage is the ID of a storage extension (e.g. file_storage) that keeps
	// window states durable. Without it state is in memory only.
	Storage *component.ID `mapstructure:"storage"`
	// Postgres shares the window states with every collector that names the
	// same database (cluster mode, see README): exclusive with Storage.
	Postgres *PostgresConfig `mapstructure:"postgres"`
	// CommitDelay is how long a group commit waits for more callers before
	// it writes, when the previous commit was shared by several callers
	// (a lone caller never waits). Default 1ms; 0 = never wait.
	CommitDelay time.Duration `mapstructure:"commit_delay"`
	// MaxSeriesWindows bounds the series-windows held in memory. Default 1,000,000.
	MaxSeriesWindows int `mapstructure:"max_series_windows"`
	// MaxSeriesWindowsPerTenant bounds the series-windows of one tenant (the
	// custommetrics.tenant resource attribute; absent is the default
	// tenant), so that one tenant's keys cannot take the room of the others.
	// Default 250,000; 0 = no per-tenant bound.
	MaxSeriesWindowsPerTenant int `mapstructure:"max_series_windows_per_tenant"`
	// RestatementRetention is how long after its end a window can still be
	// restated; older values are refused. 0 (default) = forever.
	RestatementRetention time.Duration `mapstructure:"restatement_retention"`
	// Definitions is the ID of the definitions extension whose Embrace custom
	// metric definitions are computed as derived metrics. Unset = none.
	Definitions *component.ID `mapstructure:"definitions"`
	// Embrace says how Embrace definitions meet the data.
	Embrace EmbraceConfig `mapstructure:"embrace"`

	// prevent unkeyed literal initialization
	_ struct{}
}

// PostgresConfig names the database of the shared window states.
type PostgresConfig = pgdb.Config

// EmbraceConfig says how Embrace derived-metric definitions meet the data.
type EmbraceConfig struct {
	// AppIDAttribute is the attribute holding the app a point belongs to: the
	// resource attribute, else the data point attribute. Default "app.id".
	AppIDAttribute string `mapstructure:"app_id_attribute"`

	// prevent unkeyed literal initialization
	_ struct{}
}

// Rule selects metrics by name or regular expression and says how to aggregate them.
type Rule struct {
	// Name matches a metric name exactly.
	Name string `mapstructure:"name"`
	// Regexp matches metric names (Go RE2 syntax, anchored: it must match the whole name).
	Regexp string `mapstructure:"regexp"`
	// Aggregation is sum, count, min, max, first, last or average.
	Aggregation aggregation.Func `mapstructure:"aggregation"`
	// Intervals are the windows to aggregate into; one output per interval.
	Intervals []calendar.Interval `mapstructure:"intervals"`
	// Attributes are the data point attribute keys that identify a series;
	// other attributes are dropped. Unset = all attributes.
	Attributes []string `mapstructure:"attributes"`

	// prevent unkeyed literal initialization
	_ struct{}
}

var _ component.Config = (*Config)(nil)

// Validate checks the processor configuration.
func (cfg *Config) Validate() error {
	var errs []error
	if _, err := time.LoadLocation(cfg.TimeZone); err != nil {
		errs = append(errs, fmt.Errorf("time_zone: %w", err))
	}
	if cfg.AllowedLateness < 0 {
		errs = append(errs, errors.New("allowed_lateness must not be negative"))
	}
	if cfg.CheckInterval <= 0 {
		errs = append(errs, errors.New("check_interval must be positive"))
	}
	if cfg.RunningInterval < 0 {
		errs = append(errs, errors.New("running_interval must not be negative (0 = off)"))
	}
	if cfg.MaxSeriesWindowsPerTenant < 0 {
		errs = append(errs, fmt.Errorf("max_series_windows_per_tenant must not be negative, got %d", cfg.MaxSeriesWindowsPerTenant))
	}
	if cfg.MaxSeriesWindows <= 0 {
		errs = append(errs, errors.New("max_series_windows must be positive"))
	}
	if cfg.CommitDelay < 0 || cfg.CommitDelay > time.Second {
		errs = append(errs, errors.New("commit_delay must be between 0 and 1s"))
	}
	if cfg.RestatementRetention < 0 {
		errs = append(errs, errors.New("restatement_retention must not be negative (0 = forever)"))
	}
	if cfg.Postgres != nil {
		if err := pgdb.Validate(string(cfg.Postgres.DSN), cfg.Storage != nil, "window states"); err != nil {
			errs = append(errs, err)
		}
	}

	if cfg.Definitions != nil && cfg.Embrace.AppIDAttribute == "" {
		errs = append(errs, errors.New("embrace::app_id_attribute must not be empty when definitions is set"))
	}
	for i, r := range cfg.Rules {
		if err := r.validate(); err != nil {
			errs = append(errs, fmt.Errorf("rules[%d]: %w", i, err))
		}
	}
	return errors.Join(errs...)
}

func (r *Rule) validate() error {
	var errs []error
	switch {
	case r.Name == "" && r.Regexp == "":
		errs = append(errs, errors.New("one of name or regexp is required"))
	case r.Name != "" && r.Regexp != "":
		errs = append(errs, errors.New("name and regexp are mutually exclusive"))
	case r.Regexp != "":
		if _, err := regexp.Compile(r.Regexp); err != nil {
			errs = append(errs, fmt.Errorf("regexp: %w", err))
		}
	}
	if !r.Aggregation.Valid() {
		errs = append(errs, errors.New("aggregation is required (sum|count|min|max|first|last|average)"))
	}
	if len(r.Intervals) == 0 {
		errs = append(errs, errors.New("intervals must list at least one interval (5m|hour|day|week|month|year)"))
	}
	seen := map[calendar.Interval]bool{}
	for _, iv := range r.Intervals {
		if !iv.Valid() {
			errs = append(errs, fmt.Errorf("invalid interval %v", iv))
		}
		if seen[iv] {
			errs = append(errs, fmt.Errorf("interval %v listed twice", iv))
		}
		seen[iv] = true
	}
	return errors.Join(errs...)
}
