package anomalyprocessor // import "github.com/custommetrics/bundle/processor/anomalyprocessor"

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"go.opentelemetry.io/collector/component"

	"github.com/custommetrics/bundle/internal/pgdb"
	"github.com/custommetrics/bundle/processor/anomalyprocessor/internal/detector"
)

// MatchConfig selects metrics by exact name or by regular expression (RE2,
// unanchored: use ^ and $ to match whole names).
type MatchConfig struct {
	// Names are exact metric names.
	Names []string `mapstructure:"names"`
	// Regexps are regular expressions matched against metric names.
	Regexps []string `mapstructure:"regexps"`

	_ struct{}
}

// Config defines the configuration of the anomaly processor.
type Config struct {
	// Include selects the metrics to score; empty selects every gauge and sum.
	Include MatchConfig `mapstructure:"include"`
	// Exclude removes metrics from the selection.
	Exclude MatchConfig `mapstructure:"exclude"`

	// Sensitivity in [0,1]: a value is flagged when its score is at least
	// 1-sensitivity.
	Sensitivity float64 `mapstructure:"sensitivity"`
	// LearningPeriod is the number of values after which a series is scored
	// at the latest; a series with at least 14 values spanning 4 days is
	// scored earlier (a daily series from day 14).
	LearningPeriod int `mapstructure:"learning_period"`
	// LearningDuration additionally requires a series' values to span at
	// least this long (by data point timestamps) before it is scored; 0 off.
	LearningDuration time.Duration `mapstructure:"learning_duration"`
	// Seasonality is none, daily, weekly or auto.
	Seasonality string `mapstructure:"seasonality"`
	// Direction is up, down or both.
	Direction string `mapstructure:"direction"`
	// MinRelativeChange: flag only if |value-expected| >= this*|expected|.
	MinRelativeChange float64 `mapstructure:"min_relative_change"`
	// Cooldown is the number of values after a flag during which nothing is
	// flagged again.
	Cooldown int `mapstructure:"cooldown"`

	// Metrics emits <metric>.anomaly.score and <metric>.anomaly.flag gauges.
	Metrics bool `mapstructure:"metrics"`
	// Attributes adds anomaly.* attributes to the scored data points.
	Attributes bool `mapstructure:"attributes"`

	// Storage is the ID of a storage extension that persists detector states.
	Storage *component.ID `mapstructure:"storage"`
	// Postgres keeps the detector states in a PostgreSQL database shared by
	// several collectors instead (cluster mode, see README): exclusive with
	// Storage.
	Postgres *PostgresConfig `mapstructure:"postgres"`
	// SnapshotInterval is how often changed states are written to storage.
	SnapshotInterval time.Duration `mapstructure:"snapshot_interval"`
	// MaxSeries bounds the number of series tracked; points of further new
	// series pass through unscored.
	MaxSeries int `mapstructure:"max_series"`
	// MaxSeriesPerTenant bounds the series tracked for one tenant (the
	// resource attribute custommetrics.tenant; absent is the default
	// tenant); points of its further new series pass through unscored while
	// other tenants keep getting new series. 0 means no per-tenant bound.
	MaxSeriesPerTenant int `mapstructure:"max_series_per_tenant"`
	// SeriesTTL: a series without a data point for this long is forgotten
	// (memory and storage).
	SeriesTTL time.Duration `mapstructure:"series_ttl"`

	// prevent unkeyed literal initialization
	_ struct{}
}

// Defaults that are not detector parameters.
const (
	defaultSnapshotInterval   = time.Minute
	defaultMaxSeries          = 100_000
	defaultMaxSeriesPerTenant = 10_000
	defaultSeriesTTL          = 7 * 24 * time.Hour
)

func createDefaultConfig() component.Config {
	d := detector.DefaultConfig()
	return &Config{
		Sensitivity:        d.Sensitivity,
		LearningPeriod:     d.LearningPeriod,
		Seasonality:        d.Seasonality.String(),
		Direction:          d.Direction.String(),
		MinRelativeChange:  d.MinRelativeChange,
		Cooldown:           d.Cooldown,
		Metrics:            true,
		SnapshotInterval:   defaultSnapshotInterval,
		MaxSeries:          defaultMaxSeries,
		MaxSeriesPerTenant: defaultMaxSeriesPerTenant,
		SeriesTTL:          defaultSeriesTTL,
	}
}

// detectorConfig converts the configuration to the detector's.
func (cfg *Config) detectorConfig() (detector.Config, error) {
	var errs []error
	d := detector.Config{
		Sensitivity:       cfg.Sensitivity,
		LearningPeriod:    cfg.LearningPeriod,
		MinRelativeChange: cfg.MinRelativeChange,
		Cooldown:          cfg.Cooldown,
	}
	var err error
	if d.Seasonality, err = detector.ParseSeasonality(cfg.Seasonality); err != nil {
		errs = append(errs, fmt.Errorf("seasonality: %w", err))
	}
	if d.Direction, err = detector.ParseDirection(cfg.Direction); err != nil {
		errs = append(errs, fmt.Errorf("direction: %w", err))
	}
	if len(errs) == 0 {
		if err := d.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	return d, errors.Join(errs...)
}

// PostgresConfig names the database of the shared detector states.
type PostgresConfig = pgdb.Config

// Validate checks the processor configuration.
func (cfg *Config) Validate() error {
	var errs []error
	if cfg.Postgres != nil {
		if err := pgdb.Validate(string(cfg.Postgres.DSN), cfg.Storage != nil, "detector states"); err != nil {
			errs = append(errs, err)
		}
	}

	if !(cfg.Sensitivity >= 0 && cfg.Sensitivity <= 1) {
		errs = append(errs, fmt.Errorf("sensitivity must be within [0,1], got %v", cfg.Sensitivity))
	}
	if cfg.LearningPeriod < 0 {
		errs = append(errs, fmt.Errorf("learning_period must not be negative, got %d", cfg.LearningPeriod))
	}
	if cfg.LearningDuration < 0 {
		errs = append(errs, fmt.Errorf("learning_duration must not be negative, got %v", cfg.LearningDuration))
	}
	if _, err := detector.ParseSeasonality(cfg.Seasonality); err != nil {
		errs = append(errs, fmt.Errorf("seasonality: %w", err))
	}
	if _, err := detector.ParseDirection(cfg.Direction); err != nil {
		errs = append(errs, fmt.Errorf("direction: %w", err))
	}
	if !(cfg.MinRelativeChange >= 0) || cfg.MinRelativeChange > 1e300 {
		errs = append(errs, fmt.Errorf("min_relative_change must be a non-negative number, got %v", cfg.MinRelativeChange))
	}
	if cfg.Cooldown < 0 {
		errs = append(errs, fmt.Errorf("cooldown must not be negative, got %d", cfg.Cooldown))
	}
	if !cfg.Metrics && !cfg.Attributes {
		errs = append(errs, errors.New("metrics and attributes are both false: the processor would output nothing"))
	}
	if cfg.SnapshotInterval <= 0 {
		errs = append(errs, fmt.Errorf("snapshot_interval must be positive, got %v", cfg.SnapshotInterval))
	}
	if cfg.MaxSeries <= 0 {
		errs = append(errs, fmt.Errorf("max_series must be positive, got %d", cfg.MaxSeries))
	}
	if cfg.MaxSeriesPerTenant < 0 {
		errs = append(errs, fmt.Errorf("max_series_per_tenant must be 0 (no per-tenant bound) or positive, got %d", cfg.MaxSeriesPerTenant))
	}
	if cfg.SeriesTTL <= 0 {
		errs = append(errs, fmt.Errorf("series_ttl must be positive, got %v", cfg.SeriesTTL))
	}
	for _, m := range []struct {
		name string
		mc   MatchConfig
	}{{"include", cfg.Include}, {"exclude", cfg.Exclude}} {
		for i, n := range m.mc.Names {
			if strings.TrimSpace(n) == "" {
				errs = append(errs, fmt.Errorf("%s.names[%d] is empty", m.name, i))
			}
		}
		for i, r := range m.mc.Regexps {
			if _, err := regexp.Compile(r); err != nil {
				errs = append(errs, fmt.Errorf("%s.regexps[%d]: %w", m.name, i, err))
			}
		}
	}
	return errors.Join(errs...)
}
