package definitions // import "github.com/custommetrics/bundle/internal/definitions"

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
)

// Errors returned by collection operations; handlers map them to each API's status codes.
var (
	ErrNotFound = errors.New("definition not found")
	ErrExists   = errors.New("definition already exists")
)

// Backend persists opaque documents by key. A Collector storage.Client satisfies it.
type Backend interface {
	Get(ctx context.Context, key string) ([]byte, error)
	Set(ctx context.Context, key string, value []byte) error
}

// MemoryBackend is a Backend that keeps documents in memory: state does not
// survive a restart. It is used when no storage extension is configured.
type MemoryBackend struct {
	mu   sync.Mutex
	docs map[string][]byte
}

// Get implements Backend.
func (m *MemoryBackend) Get(_ context.Context, key string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.docs[key], nil
}

// Set implements Backend.
func (m *MemoryBackend) Set(_ context.Context, key string, value []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.docs == nil {
		m.docs = map[string][]byte{}
	}
	m.docs[key] = append([]byte(nil), value...)
	return nil
}

// Registry gives access to the definition collections of every kind and tenant.
type Registry struct {
	backend Backend

	mu          sync.Mutex
	collections map[string]any // storage key -> *Collection[T]

	// version counts committed changes to any collection (see Version).
	version atomic.Uint64
	// tenants is the persisted index of the tenants that have a collection
	// of each kind (see Tenants); loaded lazily per kind.
	tenantsMu sync.Mutex
	tenants   map[Kind]map[string]bool
}

// NewRegistry returns a Registry persisted through backend.
func NewRegistry(backend Backend) *Registry {
	return &Registry{backend: backend, collections: map[string]any{}}
}

// Kind names one type of definition; it is part of the storage key, so it must never change.
type Kind string

// Kinds of definitions.
const (
	KindThreatConnectMetric Kind = "threatconnect.metric"
	KindBigFixDocument      Kind = "bigfix.document"
	// KindLaunchDarklyMetric holds launchdarkly.Metric values keyed "<projectKey>/<metricKey>".
	KindLaunchDarklyMetric Kind = "launchdarkly.metric"
	// KindEmbraceMetric holds embrace.CustomMetric values keyed "<app_id>/<name>".
	KindEmbraceMetric Kind = "embrace.metric"
)

// CollectionOf returns the collection of kind k for tenant, loading it from the
// backend on first use. All calls with the same (k, tenant) must use the same T.
func CollectionOf[T any](ctx context.Context, r *Registry, k Kind, tenant string) (*Collection[T], error) {
	key := storageKey(k, tenant)
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.collections[key]; ok {
		typed, ok := c.(*Collection[T])
		if !ok {
			return nil, fmt.Errorf("definitions: collection %q used with two types", key)
		}
		return typed, nil
	}
	c := &Collection[T]{backend: r.backend, key: key, reg: r, kind: k, tenant: tenant}
	if err := c.load(ctx); err != nil {
		return nil, err
	}
	r.collections[key] = c
	return c, nil
}

func storageKey(k Kind, tenant string) string {
	// Tenants are user-chosen strings; quoting keeps "a/b" from colliding with nesting.
	return fmt.Sprintf("definitions/%s/%q", k, tenant)
}

// Collection is an ordered set of definitions of one kind for one tenant.
type Collection[T any] struct {
	backend Backend
	key     string
	reg     *Registry
	kind    Kind
	tenant  string

	mu    sync.RWMutex
	doc   document[T]
	index map[string]int // key -> position in doc.Items
}

type document[T any] struct {
	// NextID numbers definitions for APIs that expose integer IDs; never reused.
	NextID int64    `json:"nextId"`
	Items  []T      `json:"items"`
	Keys   []string `json:"keys"`
}

func (c *Collection[T]) load(ctx context.Context) error {
	raw, err := c.backend.Get(ctx, c.key)
	if err != nil {
		return fmt.Errorf("definitions: loading %s: %w", c.key, err)
	}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &c.doc); err != nil {
			return fmt.Errorf("definitions: decoding %s: %w", c.key, err)
		}
		if len(c.doc.Items) != len(c.doc.Keys) {
			return fmt.Errorf("definitions: %s is corrupt: %d items, %d keys", c.key, len(c.doc.Items), len(c.doc.Keys))
		}
	}
	c.reindex()
	return nil
}

func (c *Collection[T]) reindex() {
	c.index = make(map[string]int, len(c.doc.Keys))
	for i, k := range c.doc.Keys {
		c.index[k] = i
	}
}

// List returns all definitions in creation order.
func (c *Collection[T]) List() []T {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return append([]T(nil), c.doc.Items...)
}

// Len returns the number of definitions.
func (c *Collection[T]) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.doc.Items)
}

// Get returns the definition stored under key.
func (c *Collection[T]) Get(key string) (T, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	i, ok := c.index[key]
	if !ok {
		var zero T
		return zero, false
	}
	return c.doc.Items[i], true
}

// Find returns the first definition for which match is true.
func (c *Collection[T]) Find(match func(T) bool) (T, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, it := range c.doc.Items {
		if match(it) {
			return it, true
		}
	}
	var zero T
	return zero, false
}

// Create stores the definition that build returns under key; build receives a
// fresh ID. It fails with ErrExists when key is taken, without calling build.
func (c *Collection[T]) Create(ctx context.Context, key string, build func(id int64) (T, error)) (T, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var zero T
	if _, ok := c.index[key]; ok {
		return zero, ErrExists
	}
	next := c.doc
	next.NextID++
	item, err := build(next.NextID)
	if err != nil {
		return zero, err
	}
	next.Items = append(append([]T(nil), c.doc.Items...), item)
	next.Keys = append(append([]string(nil), c.doc.Keys...), key)
	if err := c.commit(ctx, next); err != nil {
		return zero, err
	}
	return item, nil
}

// Put creates or replaces the definition under key with what update returns;
// update receives the current definition (and whether there was one).
func (c *Collection[T]) Put(ctx context.Context, key string, update func(cur T, exists bool) (T, error)) (T, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var zero T
	next := c.doc
	next.Items = append([]T(nil), c.doc.Items...)
	i, exists := c.index[key]
	var cur T
	if exists {
		cur = c.doc.Items[i]
	}
	item, err := update(cur, exists)
	if err != nil {
		return zero, err
	}
	if exists {
		next.Items[i] = item
	} else {
		next.NextID++
		next.Items = append(next.Items, item)
		next.Keys = append(append([]string(nil), c.doc.Keys...), key)
	}
	if err := c.commit(ctx, next); err != nil {
		return zero, err
	}
	return item, nil
}

// Delete removes the definition under key and returns it.
func (c *Collection[T]) Delete(ctx context.Context, key string) (T, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var zero T
	i, ok := c.index[key]
	if !ok {
		return zero, ErrNotFound
	}
	removed := c.doc.Items[i]
	next := c.doc
	next.Items = append(append([]T(nil), c.doc.Items[:i]...), c.doc.Items[i+1:]...)
	next.Keys = append(append([]string(nil), c.doc.Keys[:i]...), c.doc.Keys[i+1:]...)
	if err := c.commit(ctx, next); err != nil {
		return zero, err
	}
	return removed, nil
}

// commit persists next and only then makes it the visible state. Callers hold c.mu.
func (c *Collection[T]) commit(ctx context.Context, next document[T]) error {
	raw, err := json.Marshal(next)
	if err != nil {
		return fmt.Errorf("definitions: encoding %s: %w", c.key, err)
	}
	if c.reg != nil {
		// Record the tenant before its first definition, so that a failed
		// index write changes nothing and Tenants never misses a collection.
		if err := c.reg.noteTenant(ctx, c.kind, c.tenant); err != nil {
			return err
		}
	}
	if err := c.backend.Set(ctx, c.key, raw); err != nil {
		return fmt.Errorf("definitions: persisting %s: %w", c.key, err)
	}
	c.doc = next
	c.reindex()
	if c.reg != nil {
		c.reg.version.Add(1)
	}
	return nil
}

// Keys returns the keys of all definitions, sorted.
func (c *Collection[T]) Keys() []string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	keys := append([]string(nil), c.doc.Keys...)
	sort.Strings(keys)
	return keys
}

// Provider is implemented by the extension that owns the Registry; components
// find it among host.GetExtensions() by the ID in their configuration.
type Provider interface {
	Registry() *Registry
}

// Backend returns the storage the registry persists through, for state that
// lives beside the definitions (e.g. the running aggregates behind
// ThreatConnect's returnValue).
func (r *Registry) Backend() Backend { return r.backend }

// Version counts the committed changes to every collection of r (creations,
// replacements, deletions), starting at 0. A component that derives state
// from definitions polls it and rereads them when it moved; a change is
// visible to readers before Version moves past it.
func (r *Registry) Version() uint64 { return r.version.Load() }

func tenantsKey(k Kind) string { return fmt.Sprintf("definitions-tenants/%s", k) }

// loadTenants returns the tenant index of kind k. Callers hold r.tenantsMu.
func (r *Registry) loadTenants(ctx context.Context, k Kind) (map[string]bool, error) {
	if r.tenants == nil {
		r.tenants = map[Kind]map[string]bool{}
	}
	if set, ok := r.tenants[k]; ok {
		return set, nil
	}
	raw, err := r.backend.Get(ctx, tenantsKey(k))
	if err != nil {
		return nil, fmt.Errorf("definitions: loading %s: %w", tenantsKey(k), err)
	}
	var list []string
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &list); err != nil {
			return nil, fmt.Errorf("definitions: decoding %s: %w", tenantsKey(k), err)
		}
	}
	set := make(map[string]bool, len(list))
	for _, t := range list {
		set[t] = true
	}
	r.tenants[k] = set
	return set, nil
}

// noteTenant adds tenant to the persisted index of kind k when it is new.
func (r *Registry) noteTenant(ctx context.Context, k Kind, tenant string) error {
	r.tenantsMu.Lock()
	defer r.tenantsMu.Unlock()
	set, err := r.loadTenants(ctx, k)
	if err != nil {
		return err
	}
	if set[tenant] {
		return nil
	}
	list := make([]string, 0, len(set)+1)
	for t := range set {
		list = append(list, t)
	}
	list = append(list, tenant)
	sort.Strings(list)
	raw, err := json.Marshal(list)
	if err != nil {
		return fmt.Errorf("definitions: encoding %s: %w", tenantsKey(k), err)
	}
	if err := r.backend.Set(ctx, tenantsKey(k), raw); err != nil {
		return fmt.Errorf("definitions: persisting %s: %w", tenantsKey(k), err)
	}
	set[tenant] = true
	return nil
}

// Tenants returns, sorted, the tenants that have ever stored a definition of
// kind k through this package (their collections may be empty now).
// Collections written before the index existed are not listed until their
// next change.
func (r *Registry) Tenants(ctx context.Context, k Kind) ([]string, error) {
	r.tenantsMu.Lock()
	defer r.tenantsMu.Unlock()
	set, err := r.loadTenants(ctx, k)
	if err != nil {
		return nil, err
	}
	list := make([]string, 0, len(set))
	for t := range set {
		list = append(list, t)
	}
	sort.Strings(list)
	return list, nil
}

// ListAll returns every definition of kind k of every tenant (see Tenants),
// by tenant, each in creation order.
func ListAll[T any](ctx context.Context, r *Registry, k Kind) (map[string][]T, error) {
	tenants, err := r.Tenants(ctx, k)
	if err != nil {
		return nil, err
	}
	out := make(map[string][]T, len(tenants))
	for _, t := range tenants {
		c, err := CollectionOf[T](ctx, r, k, t)
		if err != nil {
			return nil, err
		}
		if items := c.List(); len(items) > 0 {
			out[t] = items
		}
	}
	return out, nil
}
