package anomalyprocessor // import "github.com/custommetrics/bundle/processor/anomalyprocessor"

// Config defines the configuration of the anomaly processor.
type Config struct {
	// prevent unkeyed literal initialization
	_ struct{}
}

// Validate checks the processor configuration.
func (cfg *Config) Validate() error {
	return nil
}
