// Package storageclient opens a client of a Collector storage extension named
// in a component's configuration, with the errors a user can act on.
package storageclient // import "github.com/custommetrics/bundle/internal/storageclient"

import (
	"context"
	"fmt"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension/xextension/storage"
)

// Open returns the client that storage extension storageID gives the component
// self of the given kind.
func Open(ctx context.Context, host component.Host, storageID component.ID, kind component.Kind, self component.ID) (storage.Client, error) {
	ext, ok := host.GetExtensions()[storageID]
	if !ok {
		return nil, fmt.Errorf("storage extension %q not found (is it listed in service::extensions?)", storageID)
	}
	se, ok := ext.(storage.Extension)
	if !ok {
		return nil, fmt.Errorf("extension %q is not a storage extension", storageID)
	}
	client, err := se.GetClient(ctx, kind, self, "")
	if err != nil {
		return nil, fmt.Errorf("opening storage %q: %w", storageID, err)
	}
	return client, nil
}
