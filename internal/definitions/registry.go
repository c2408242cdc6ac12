package definitions // import "github.com/custommetrics/bundle/internal/definitions"

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/collector/extension/xextension/storage"
	"go.uber.org/zap"

	"github.com/custommetrics/bundle/internal/groupcommit"
)

// Registry gives access to the definition collections of every kind and tenant.
type Registry struct {
	backend      Backend
	shared       SharedBackend                        // backend, when several collectors share it; nil otherwise
	versionReads *groupcommit.Committer[*versionRead] // with shared: see readVersions
	// commits group-commits replacements of definitions (without shared:
	// a shared backend's changes are transactions of their own).
	commits      *groupcommit.Committer[*storage.Operation]
	maxPerTenant int
	logger       *zap.Logger

	mu          sync.Mutex
	collections map[string]any // collection prefix -> *Collection[T]

	// version counts committed changes to any collection (see Version).
	version atomic.Uint64
	// tenants is the persisted index of the tenants that have a collection
	// of each kind (see Tenants); loaded lazily per kind.
	tenantsMu sync.Mutex
	tenants   map[Kind]map[string]bool

	// usage counts each tenant's definitions of all kinds (the quota).
	usageMu sync.Mutex
	usage   map[string]*tenantUsage
}

// Option configures a Registry.
type Option func(*Registry)

// WithMaxPerTenant limits the definitions of one tenant, all kinds together,
// to n: a create beyond it fails with ErrQuota. 0 (the default) is no limit.
func WithMaxPerTenant(n int) Option { return func(r *Registry) { r.maxPerTenant = n } }

// WithLogger sets the logger that records the causes of storage failures
// (which ErrUnavailable errors do not show).
func WithLogger(l *zap.Logger) Option { return func(r *Registry) { r.logger = l } }

// NewRegistry returns a Registry persisted through backend.
func NewRegistry(backend Backend, opts ...Option) *Registry {
	r := &Registry{backend: backend, logger: zap.NewNop(), collections: map[string]any{}, usage: map[string]*tenantUsage{}}
	for _, o := range opts {
		o(r)
	}
	if s, ok := backend.(SharedBackend); !ok {
		r.commits = groupcommit.New(r.write, 0)
	} else {
		r.shared = s
		r.versionReads = groupcommit.New(r.readVersions, 0)
		// Other collectors' changes move Version too, so that derived state
		// (the aggregate processor's Embrace definitions) follows them.
		s.OnChange(func() { r.version.Add(1) })
	}
	return r
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

// Kinds lists every kind of definition (Migrate visits them).
var Kinds = []Kind{KindThreatConnectMetric, KindBigFixDocument, KindLaunchDarklyMetric, KindEmbraceMetric}

// CollectionOf returns the collection of kind k for tenant, loading it from the
// backend on first use. All calls with the same (k, tenant) must use the same T.
//
// With a SharedBackend it first asks the backend for the collection's
// version and reloads the collection when another collector changed it, so
// that the answer holds every change committed before the call.
func CollectionOf[T any](ctx context.Context, r *Registry, k Kind, tenant string) (*Collection[T], error) {
	key := collectionPrefix(k, tenant)
	var version uint64
	if r.shared != nil {
		v, err := r.sharedVersion(ctx, key)
		if err != nil {
			return nil, r.unavailable("checking "+string(k)+" definitions for changes", err)
		}
		version = v
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	cur, err := cachedCollection[T](r, key)
	if err != nil || (cur != nil && cur.version >= version) {
		return cur, err
	}
	c := newCollection[T](r, k, tenant)
	c.version = version // read before loading: a change meanwhile makes the next call reload
	if r.shared != nil {
		// No lock of this process is held while a shared backend works: a
		// change holding the database's locks may be waiting for it.
		r.mu.Unlock()
		err = c.load(ctx)
		r.mu.Lock()
		if err != nil {
			return nil, err
		}
		if cur, err := cachedCollection[T](r, key); err != nil || (cur != nil && cur.version >= c.version) {
			return cur, err
		}
	} else if err := c.load(ctx); err != nil {
		return nil, err
	}
	r.collections[key] = c
	return c, nil
}

// cachedCollection returns the collection in memory under key, or nil.
// Callers hold r.mu.
func cachedCollection[T any](r *Registry, key string) (*Collection[T], error) {
	c, ok := r.collections[key]
	if !ok {
		return nil, nil
	}
	typed, ok := c.(*Collection[T])
	if !ok {
		return nil, fmt.Errorf("definitions: collection %q used with two types", key)
	}
	return typed, nil
}

// Provider is implemented by the extension that owns the Registry; components
// find it among host.GetExtensions() by the ID in their configuration.
type Provider interface {
	Registry() *Registry
}

// Version counts the committed changes to every collection of r (creations,
// replacements, deletions), starting at 0. A component that derives state
// from definitions polls it and rereads them when it moved; a change is
// visible to readers before Version moves past it.
func (r *Registry) Version() uint64 { return r.version.Load() }

// Close stops what the registry runs in the background (group commits,
// the shared backend's version reads), writing what is queued; the
// registry must not be used after.
func (r *Registry) Close() {
	if r.commits != nil {
		r.commits.Close()
	}
	if r.versionReads != nil {
		r.versionReads.Close()
	}
}

// write writes the operations of one commit round in one storage batch
// (groupcommit.Write).
func (r *Registry) write(ops []*storage.Operation) error {
	return r.backend.Batch(context.Background(), ops...)
}

// commit writes op in the next commit round and returns once it is stored.
// It waits for the round even when ctx ends: the caller's answer must say
// whether the change was stored.
func (r *Registry) commit(ctx context.Context, what string, op *storage.Operation) error {
	if err := r.commits.Wait(context.WithoutCancel(ctx), r.commits.Add(op)); err != nil {
		return r.unavailable(what, err)
	}
	return nil
}

// batch applies ops in one storage transaction of b.
func (r *Registry) batch(ctx context.Context, b Backend, op string, ops ...*storage.Operation) error {
	if err := b.Batch(ctx, ops...); err != nil {
		return r.unavailable(op, err)
	}
	return nil
}

// unavailable logs the storage's error and returns the ErrUnavailable that
// callers see.
func (r *Registry) unavailable(op string, err error) error {
	r.logger.Warn("Definitions storage failed", zap.String("operation", op), zap.Error(err))
	return &StorageError{Op: op, Err: err}
}

// tenantUsage is the number of definitions of one tenant, all kinds together.
type tenantUsage struct {
	mu     sync.Mutex
	loaded bool
	count  int
}

type usageDoc struct {
	Count int `json:"count"`
}

func usageKey(tenant string) string { return "definitions-usage/" + strconv.Quote(tenant) }

func (u *tenantUsage) setOperation(tenant string, count int) *storage.Operation {
	raw, _ := json.Marshal(usageDoc{Count: count})
	return storage.SetOperation(usageKey(tenant), raw)
}

// lockUsage returns tenant's usage, loaded (through b) and locked. With a
// shared backend it is read anew each time (other collectors change it).
// Lock order: Collection.mu, then tenantUsage.mu, then Registry.tenantsMu.
func (r *Registry) lockUsage(ctx context.Context, b Backend, tenant string) (*tenantUsage, error) {
	if r.shared != nil {
		// The database's lock on the usage record (see inTx) is what
		// serializes changes; a private copy keeps this process's locks out
		// of the database's waits.
		u := &tenantUsage{}
		u.mu.Lock()
		if err := r.readUsage(ctx, b, tenant, u); err != nil {
			u.mu.Unlock()
			return nil, err
		}
		return u, nil
	}
	r.usageMu.Lock()
	u, ok := r.usage[tenant]
	if !ok {
		u = &tenantUsage{}
		r.usage[tenant] = u
	}
	r.usageMu.Unlock()
	u.mu.Lock()
	if !u.loaded {
		if err := r.readUsage(ctx, b, tenant, u); err != nil {
			u.mu.Unlock()
			return nil, err
		}
	}
	return u, nil
}

// readUsage loads u from b.
func (r *Registry) readUsage(ctx context.Context, b Backend, tenant string, u *tenantUsage) error {
	raw, err := b.Get(ctx, usageKey(tenant))
	if err != nil {
		return r.unavailable("loading the tenant's definitions count", err)
	}
	var doc usageDoc
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &doc); err != nil {
			return fmt.Errorf("definitions: %s is corrupt: %w", usageKey(tenant), err)
		}
	}
	u.count, u.loaded = doc.Count, true
	return nil
}

// checkQuota fails with ErrQuota when a tenant at u may not create one more definition.
func (r *Registry) checkQuota(u *tenantUsage) error {
	if r.maxPerTenant > 0 && u.count >= r.maxPerTenant {
		return fmt.Errorf("%w: %d of %d definitions", ErrQuota, u.count, r.maxPerTenant)
	}
	return nil
}

// Usage returns how many definitions tenant holds, all kinds together.
func (r *Registry) Usage(ctx context.Context, tenant string) (int, error) {
	u, err := r.lockUsage(ctx, r.backend, tenant)
	if err != nil {
		return 0, err
	}
	defer u.mu.Unlock()
	return u.count, nil
}

func tenantsKey(k Kind) string { return fmt.Sprintf("definitions-tenants/%s", k) }

// loadTenants returns the tenant index of kind k, read through b (anew each
// time with a shared backend). Callers hold lockTenants().
func (r *Registry) loadTenants(ctx context.Context, b Backend, k Kind) (map[string]bool, error) {
	if r.shared != nil {
		return r.readTenants(ctx, b, k)
	}
	if set, ok := r.tenants[k]; ok {
		return set, nil
	}
	set, err := r.readTenants(ctx, b, k)
	if err != nil {
		return nil, err
	}
	if r.tenants == nil {
		r.tenants = map[Kind]map[string]bool{}
	}
	r.tenants[k] = set
	return set, nil
}

// readTenants reads the tenant index of kind k from b.
func (r *Registry) readTenants(ctx context.Context, b Backend, k Kind) (map[string]bool, error) {
	raw, err := b.Get(ctx, tenantsKey(k))
	if err != nil {
		return nil, r.unavailable("loading the tenants of "+string(k)+" definitions", err)
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
	return set, nil
}

// noteTenant adds tenant to the persisted index of kind k (through b) when it is new.
func (r *Registry) noteTenant(ctx context.Context, b Backend, k Kind, tenant string) error {
	defer r.lockTenants()()
	set, err := r.loadTenants(ctx, b, k)
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
	if err := b.Set(ctx, tenantsKey(k), raw); err != nil {
		return r.unavailable("recording a tenant of "+string(k)+" definitions", err)
	}
	if r.shared == nil {
		set[tenant] = true
	}
	return nil
}

// lockTenants locks the cached tenant index and returns its unlock. With a
// shared backend nothing is cached (see loadTenants) and nothing is locked:
// the database's lock on the index (see inTx) serializes changes.
func (r *Registry) lockTenants() (unlock func()) {
	if r.shared != nil {
		return func() {}
	}
	r.tenantsMu.Lock()
	return r.tenantsMu.Unlock
}

// Tenants returns, sorted, the tenants that have ever stored a definition of
// kind k through this package (their collections may be empty now).
// Collections written before the index existed are not listed until they are
// first loaded (CollectionOf), which migrates them.
func (r *Registry) Tenants(ctx context.Context, k Kind) ([]string, error) {
	defer r.lockTenants()()
	set, err := r.loadTenants(ctx, r.backend, k)
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
