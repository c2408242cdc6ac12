//go:generate go tool -modfile=../../internal/tools/go.mod mdatagen metadata.yaml

// Package custommetricsexporter implements the custommetricsexporter component.
package custommetricsexporter // import "github.com/custommetrics/bundle/exporter/custommetricsexporter"
