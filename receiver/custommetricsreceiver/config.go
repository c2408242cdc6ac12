package custommetricsreceiver // import "github.com/custommetrics/bundle/receiver/custommetricsreceiver"

import (
	"errors"

	"go.opentelemetry.io/collector/config/confighttp"
)

// Config defines the configuration of the custommetrics receiver.
type Config struct {
	// ServerConfig is the HTTP server every vendor API is served on.
	confighttp.ServerConfig `mapstructure:",squash"`

	// prevent unkeyed literal initialization
	_ struct{}
}

// Validate checks the receiver configuration.
func (cfg *Config) Validate() error {
	if cfg.NetAddr.Endpoint == "" {
		return errors.New("endpoint must not be empty")
	}
	if cfg.MaxRequestBodySize < 0 {
		return errors.New("max_request_body_size must not be negative")
	}
	return nil
}
