//go:generate go tool -modfile=../../internal/tools/go.mod mdatagen metadata.yaml

// Package custommetricsreceiver implements the custommetricsreceiver component.
package custommetricsreceiver // import "github.com/custommetrics/bundle/receiver/custommetricsreceiver"
