package definitionsextension // import "github.com/custommetrics/bundle/extension/definitionsextension"

import (
	"errors"

	"go.opentelemetry.io/collector/component"

	"github.com/custommetrics/bundle/internal/pgdb"
)

// Config defines the configuration of the definitions extension.
type Config struct {
	// Storage is the ID of a storage extension (e.g. file_storage) that
	// persists the definitions. When unset, definitions live in memory only
	// and are lost on restart (a warning is logged at start).
	Storage *component.ID `mapstructure:"storage"`
	// Postgres keeps the definitions in a PostgreSQL database shared by
	// several collectors instead (cluster mode): a change on any of them is
	// seen by all at once. Exclusive with Storage.
	Postgres *PostgresConfig `mapstructure:"postgres"`

	// MaxDefinitionsPerTenant limits the definitions one tenant holds, all
	// kinds together (ThreatConnect metrics, BigFix documents, LaunchDarkly
	// metrics, Embrace metrics). A create beyond it is refused
	// (definitions.ErrQuota); 0 means no limit.
	MaxDefinitionsPerTenant int `mapstructure:"max_definitions_per_tenant"`

	// prevent unkeyed literal initialization
	_ struct{}
}

// PostgresConfig names the shared database.
type PostgresConfig = pgdb.Config

// Validate checks the extension configuration.
func (cfg *Config) Validate() error {
	if cfg.MaxDefinitionsPerTenant < 0 {
		return errors.New("max_definitions_per_tenant must be 0 (no limit) or positive")
	}
	if cfg.Postgres != nil {
		return pgdb.Validate(string(cfg.Postgres.DSN), cfg.Storage != nil, "definitions")
	}
	return nil
}
