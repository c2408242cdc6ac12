//go:generate go tool -modfile=../../internal/tools/go.mod mdatagen metadata.yaml

// Package aggregateprocessor implements the aggregateprocessor component.
package aggregateprocessor // import "github.com/custommetrics/bundle/processor/aggregateprocessor"
