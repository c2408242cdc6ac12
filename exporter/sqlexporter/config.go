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
	// DriverPostgres is for several collectors writing to one store.
	DriverPostgres Driver = "postgres"
)

// Config defines the configuration of the sql exporter.
type Config struct {
	TimeoutConfig exporterhelper.TimeoutConfig                             `mapstructure:",squash"`
	QueueConfig   configoptional.Optional[exporterhelper.QueueBatchConfig] `mapstructure:"sending_queue"`
	RetryConfig   configretry.BackOffConfig                                `mapstructure:"retry_on_failure"`

	// Driver is "sqlite" (default) or "postgres".
	Driver Driver `mapstructure:"driver"`
	// DSN is the SQLite file path or the PostgreSQL connection string.
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
	return nil
}
