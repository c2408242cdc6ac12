//go:generate go tool -modfile=../../internal/tools/go.mod mdatagen metadata.yaml

// Package anomalyprocessor implements the anomalyprocessor component.
package anomalyprocessor // import "github.com/custommetrics/bundle/processor/anomalyprocessor"
