//go:generate go tool -modfile=../../internal/tools/go.mod mdatagen metadata.yaml

// Package definitionsextension holds the definitions registry that the
// custommetrics receiver writes and the processors read, persisted through a
// Collector storage extension so that definitions survive a restart.
package definitionsextension // import "github.com/custommetrics/bundle/extension/definitionsextension"
