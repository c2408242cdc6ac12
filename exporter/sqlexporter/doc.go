//go:generate go tool -modfile=../../internal/tools/go.mod mdatagen metadata.yaml

// Package sqlexporter implements the sqlexporter component.
package sqlexporter // import "github.com/custommetrics/bundle/exporter/sqlexporter"
