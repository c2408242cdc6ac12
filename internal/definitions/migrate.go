package definitions // import "github.com/custommetrics/bundle/internal/definitions"

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"go.opentelemetry.io/collector/extension/xextension/storage"
	"go.uber.org/zap"
)

// legacyDocument is a whole collection as the previous layout stored it
// under legacyKey: Items[i] is the definition under Keys[i], in creation order.
type legacyDocument struct {
	NextID int64             `json:"nextId"`
	Items  []json.RawMessage `json:"items"`
	Keys   []string          `json:"keys"`
}

// Migrate moves every collection that the previous layout stored (one record
// per collection) into the current layout (one record per definition), for
// every kind and every tenant of the tenant index plus the default tenant,
// and returns how many definitions it moved. Each collection moves in one
// storage transaction that also deletes its old record, so a collection is
// migrated once, and a failure leaves it as it was (to be migrated by the
// next Migrate, or when the collection is first loaded).
func (r *Registry) Migrate(ctx context.Context) (int, error) {
	total := 0
	for _, k := range Kinds {
		tenants, err := r.Tenants(ctx, k)
		if err != nil {
			return total, err
		}
		if !slices.Contains(tenants, "") {
			tenants = append(tenants, "")
		}
		for _, t := range tenants {
			r.mu.Lock()
			_, loaded := r.collections[collectionPrefix(k, t)]
			n := 0
			if !loaded {
				_, _, n, err = r.migrate(ctx, r.backend, k, t)
			}
			r.mu.Unlock()
			if err != nil {
				return total, err
			}
			total += n
		}
	}
	return total, nil
}

// migrate returns the meta of collection (k, tenant) and whether it is
// stored, after moving it from the previous layout when only that one holds
// it; n is the number of definitions moved. Callers hold r.mu and have not
// loaded the collection. It reads and writes through b.
func (r *Registry) migrate(ctx context.Context, b Backend, k Kind, tenant string) (m meta, ok bool, n int, err error) {
	getMeta, getLegacy := storage.GetOperation(metaKey(k, tenant)), storage.GetOperation(legacyKey(k, tenant))
	if err := r.batch(ctx, b, "loading "+string(k)+" definitions", getMeta, getLegacy); err != nil {
		return meta{}, false, 0, err
	}
	if getMeta.Value != nil {
		if err := json.Unmarshal(getMeta.Value, &m); err != nil || m.NextSeq == 0 {
			return meta{}, false, 0, fmt.Errorf("definitions: %s is corrupt", getMeta.Key)
		}
		if getLegacy.Value != nil {
			r.logger.Warn("Definitions stored in both the previous and the current layout; the previous one is ignored",
				zap.String("kind", string(k)), zap.String("tenant", tenant))
		}
		return m, true, 0, nil
	}
	if getLegacy.Value == nil {
		return meta{NextSeq: 1}, false, 0, nil
	}

	var old legacyDocument
	if err := json.Unmarshal(getLegacy.Value, &old); err != nil {
		return meta{}, false, 0, fmt.Errorf("definitions: decoding %s: %w", getLegacy.Key, err)
	}
	if len(old.Items) != len(old.Keys) {
		return meta{}, false, 0, fmt.Errorf("definitions: %s is corrupt: %d items, %d keys", getLegacy.Key, len(old.Items), len(old.Keys))
	}
	// Collections written before the tenant index existed join it now.
	if err := r.noteTenant(ctx, b, k, tenant); err != nil {
		return meta{}, false, 0, err
	}
	u, err := r.lockUsage(ctx, b, tenant)
	if err != nil {
		return meta{}, false, 0, err
	}
	defer u.mu.Unlock()

	// The previous layout resolved a key stored twice to its last item.
	last := make(map[string]int, len(old.Keys))
	for i, key := range old.Keys {
		last[key] = i
	}
	ops := make([]*storage.Operation, 0, len(last)+3)
	for i, item := range old.Items {
		if last[old.Keys[i]] != i {
			continue
		}
		raw, err := json.Marshal(record[json.RawMessage]{Key: old.Keys[i], Item: item})
		if err != nil {
			return meta{}, false, 0, fmt.Errorf("definitions: encoding %s: %w", getLegacy.Key, err)
		}
		n++
		ops = append(ops, storage.SetOperation(itemKey(k, tenant, uint64(n)), raw))
	}
	m = meta{NextID: old.NextID, NextSeq: uint64(n) + 1}
	metaRaw, _ := json.Marshal(m)
	ops = append(ops,
		storage.SetOperation(metaKey(k, tenant), metaRaw),
		u.setOperation(tenant, u.count+n),
		storage.DeleteOperation(legacyKey(k, tenant)),
	)
	if err := r.batch(ctx, b, "migrating "+string(k)+" definitions", ops...); err != nil {
		return meta{}, false, 0, err
	}
	u.count += n
	r.logger.Info("Definitions migrated to one record per definition",
		zap.String("kind", string(k)), zap.String("tenant", tenant), zap.Int("definitions", n))
	return m, true, n, nil
}
