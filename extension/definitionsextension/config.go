package definitionsextension // import "github.com/custommetrics/bundle/extension/definitionsextension"

import "go.opentelemetry.io/collector/component"

// Config defines the configuration of the definitions extension.
type Config struct {
	// Storage is the ID of a storage extension (e.g. file_storage) that
	// persists the definitions. When unset, definitions live in memory only
	// and are lost on restart (a warning is logged at start).
	Storage *component.ID `mapstructure:"storage"`

	// prevent unkeyed literal initialization
	_ struct{}
}

// Validate checks the extension configuration.
func (cfg *Config) Validate() error {
	return nil
}
