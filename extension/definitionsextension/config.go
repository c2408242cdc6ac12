package definitionsextension // import "github.com/custommetrics/bundle/extension/definitionsextension"

import (
	"errors"

	"go.opentelemetry.io/collector/component"
)

// Config defines the configuration of the definitions extension.
type Config struct {
	// Storage is the ID of a storage extension (e.g. file_storage) that
	// persists the definitions. When unset, definitions live in memory only
	// and are lost on restart (a warning is logged at start).
	Storage *component.ID `mapstructure:"storage"`

	// MaxDefinitionsPerTenant limits the definitions one tenant holds, all
	// kinds together (ThreatConnect metrics, BigFix documents, LaunchDarkly
	// metrics, Embrace metrics). A create beyond it is refused
	// (definitions.ErrQuota); 0 means no limit.
	MaxDefinitionsPerTenant int `mapstructure:"max_definitions_per_tenant"`

	// prevent unkeyed literal initialization
	_ struct{}
}

// Validate checks the extension configuration.
func (cfg *Config) Validate() error {
	if cfg.MaxDefinitionsPerTenant < 0 {
		return errors.New("max_definitions_per_tenant must be 0 (no limit) or positive")
	}
	return nil
}
