package custommetricsexporter // import "github.com/custommetrics/bundle/exporter/custommetricsexporter"

import (
	"context"
	"encoding/json"
	"fmt"
)

// The forwarders' knowledge of the vendors' state, as JSON documents in the
// configured storage extension: "tc/<metric>/<key>/<window start>" for a
// ThreatConnect window, "bigfix/<tag>" for a BigFix document. Without
// storage these functions do nothing and the state lives in memory only.

// loadState reads the document under key into v; false when there is none.
func (e *customMetricsExporter) loadState(ctx context.Context, key string, v any) (bool, error) {
	if e.state == nil {
		return false, nil
	}
	raw, err := e.state.Get(ctx, key)
	if err != nil {
		return false, fmt.Errorf("reading forwarder state %q: %w", key, err)
	}
	if len(raw) == 0 {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		// A corrupt document is as good as none: the forwarder starts over
		// for that window or tag, as without storage.
		e.logger.Warn("Ignoring corrupt forwarder state")
		return false, nil
	}
	return true, nil
}

// saveState writes v under key.
func (e *customMetricsExporter) saveState(ctx context.Context, key string, v any) error {
	if e.state == nil {
		return nil
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := e.state.Set(ctx, key, raw); err != nil {
		return fmt.Errorf("writing forwarder state %q: %w", key, err)
	}
	return nil
}

// deleteState removes the documents under keys.
func (e *customMetricsExporter) deleteState(ctx context.Context, keys ...string) error {
	if e.state == nil {
		return nil
	}
	for _, k := range keys {
		if err := e.state.Delete(ctx, k); err != nil {
			return fmt.Errorf("deleting forwarder state %q: %w", k, err)
		}
	}
	return nil
}
