// Package threatconnect holds the wire format of ThreatConnect's Custom Metrics
// API (v2) and its request signing, shared by the receiver (which serves the
// API and verifies signatures) and the exporter (which calls it and signs).
package threatconnect // import "github.com/custommetrics/bundle/internal/wire/threatconnect"
