package sqlexporter // import "github.com/custommetrics/bundle/exporter/sqlexporter"

import (
	"errors"
	"fmt"

	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/config/configretry"
	"go.opentelemetry.io/collector/exporter/exporterhelper"
)

// Driver names a supported database.
type Driver string

const (
	// DriverSQLite is the embedded default: a file, nothing to install.
	DriverSQLite Driver = "sqlite"
	// DriverPostgres is for several collectors writing to one store, each
	// its own series (see the README).
	DriverPostgres Driver = "postgres"
)

// Config defines the configuration of the sql exporter.
type Config struct {
	TimeoutConfig exporterhelper.TimeoutConfig                             `mapstructure:",squash"`
	QueueConfig   configoptional.Optional[exporterhelper.QueueBatchConfig] `mapstructure:"sending_queue"`
	RetryConfig   configretry.BackOffConfig                                `mapstructure:"retry_on_failure"`

	// Driver is "sqlite" (default) or "postgres".
	Driver Driver `mapstructure:"driver"`
	// DSN is the SQLite file path (created with its directory when missing;
	// relative to the working directory) or the PostgreSQL connection string
	// (URL or key=value form). Use ${env:VAR} for secrets.
	DSN string `mapstructure:"dsn"`

	// prevent unkeyed literal initialization
	_ struct{}
}

// Validate checks the exporter configuration.
func (cfg *Config) Validate() error {
	switch cfg.Driver {
	case DriverSQLite, DriverPostgres:
	default:
		return fmt.Errorf("driver must be %q or %q, got %q", DriverSQLite, DriverPostgres, cfg.Driver)
	}
	if cfg.DSN == "" {
		return errors.New("dsn must not be empty")
	}
	if cfg.QueueConfig.HasValue() && cfg.QueueConfig.Get().NumConsumers > 1 {
		return fmt.Errorf("sending_queue::num_consumers must be 1, got %d: every emission of a window restates "+
			"its figure and the last write wins, so batches must be written in the order they were queued; "+
			"several consumers could write an older figure over a newer one", cfg.QueueConfig.Get().NumConsumers)
	}
	return nil
}
