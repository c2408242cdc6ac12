package aggregateprocessor // import "github.com/custommetrics/bundle/processor/aggregateprocessor"

// Config defines the configuration of the aggregate processor.
type Config struct {
	// prevent unkeyed literal initialization
	_ struct{}
}

// Validate checks the processor configuration.
func (cfg *Config) Validate() error {
	return nil
}
