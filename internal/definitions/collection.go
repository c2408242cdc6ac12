package definitions // import "github.com/custommetrics/bundle/internal/definitions"

// Storage layout. Every definition has its own key, so that a change writes
// only what it changes: its cost does not depend on how many definitions the
// collection holds. <kind> is a Kind; <tenant> is the tenant quoted with
// strconv.Quote (tenants are user-chosen strings: quoting keeps "a/b" from
// colliding with nesting); <seq> is a slot number in 20 decimal digits
// (zero-padded, so that key order is slot order and a create appends at the
// end of the storage's B+tree instead of splitting pages in the middle).
//
//	key                                          value (JSON)
//	definitions/v2/<kind>/<tenant>/meta          {"nextId":N,"nextSeq":S}
//	definitions/v2/<kind>/<tenant>/item/<seq>    {"key":"<key>","item":<definition>}
//	    e.g. definitions/v2/threatconnect.metric/"acme"/item/00000000000000000042
//	definitions-usage/<tenant>                   {"count":C}   definitions of every kind
//	definitions-tenants/<kind>                   ["<tenant>",...]   sorted
//	definitions/<kind>/<tenant>                  previous layout (whole collection);
//	                                             migrated, then deleted
//
// A collection's definitions occupy slots numbered from 1 in creation order;
// a slot is never reused, so slot order is creation order. Deleting leaves a
// hole (no key):
//
//	  slot:   1       2       3       4       5      nextSeq = 6
//	        +-------+-------+-------+-------+-------+ - - - - +
//	        |  "a"  | (hole)|  "c"  |  "d"  |  "e"  |  next   |
//	        +-------+-------+-------+-------+-------+ - - - - +
//	  meta: {"nextId": 7, "nextSeq": 6}  (an ID is never reused either)
//
// Each change is one Backend.Batch (one storage transaction); replacements
// of existing keys share one per group-commit round (see replace):
//
//	Create (and Put of a new key)  Set item/<nextSeq>, Set meta, Set usage
//	Put of an existing key         Set item/<seq>
//	Delete                         Delete item/<seq>, Set usage
//
// Loading reads meta, then slots 1..nextSeq-1 in batches of Get operations.
// The usage record counts a tenant's definitions of all kinds for the quota;
// it changes in the same transaction as the definitions it counts.

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"sync"

	"go.opentelemetry.io/collector/extension/xextension/storage"
)

func collectionPrefix(k Kind, tenant string) string {
	return "definitions/v2/" + string(k) + "/" + strconv.Quote(tenant) + "/"
}

func metaKey(k Kind, tenant string) string { return collectionPrefix(k, tenant) + "meta" }

func itemKey(k Kind, tenant string, seq uint64) string {
	return fmt.Sprintf("%sitem/%020d", collectionPrefix(k, tenant), seq)
}

// legacyKey is where the previous layout kept a whole collection.
func legacyKey(k Kind, tenant string) string {
	return fmt.Sprintf("definitions/%s/%q", k, tenant)
}

// loadBatch is how many slots one Get batch reads while loading (file_storage
// runs each batch as one bbolt transaction).
const loadBatch = 1024

type meta struct {
	// NextID numbers definitions for APIs that expose integer IDs; never reused.
	NextID int64 `json:"nextId"`
	// NextSeq is the slot of the next definition; slots start at 1.
	NextSeq uint64 `json:"nextSeq"`
}

type record[T any] struct {
	Key  string `json:"key"`
	Item T      `json:"item"`
}

type entry[T any] struct {
	key  string
	seq  uint64
	item T
	dead bool
	// writing, while a replacement of item is being committed outside the
	// collection's lock (see replace), is closed when that commit ends: other
	// changes of the entry wait for it, so they apply in order.
	writing chan struct{}
}

// Collection is an ordered set of definitions of one kind for one tenant.
type Collection[T any] struct {
	reg    *Registry
	kind   Kind
	tenant string
	// b is where the collection reads and writes: the registry's backend,
	// or the transaction of a change on a shared backend (see inTx).
	b Backend
	// version is the shared backend's version of the collection that this
	// copy reflects (0 without a shared backend).
	version uint64

	mu    sync.RWMutex
	meta  meta
	order []*entry[T] // creation order; deleted entries stay (dead) until compacted
	dead  int
	index map[string]*entry[T]
}

func newCollection[T any](r *Registry, k Kind, tenant string) *Collection[T] {
	return &Collection[T]{reg: r, kind: k, tenant: tenant, b: r.backend, meta: meta{NextSeq: 1}, index: map[string]*entry[T]{}}
}

// load reads the collection from the backend, migrating the previous layout first.
func (c *Collection[T]) load(ctx context.Context) error {
	m, ok, _, err := c.reg.migrate(ctx, c.b, c.kind, c.tenant)
	if err != nil || !ok {
		return err
	}
	c.meta = m
	ops := make([]*storage.Operation, 0, loadBatch)
	for from := uint64(1); from < m.NextSeq; from += loadBatch {
		ops = ops[:0]
		for seq := from; seq < min(from+loadBatch, m.NextSeq); seq++ {
			ops = append(ops, storage.GetOperation(itemKey(c.kind, c.tenant, seq)))
		}
		if err := c.b.Batch(ctx, ops...); err != nil {
			return c.reg.unavailable("loading "+string(c.kind)+" definitions", err)
		}
		for i, op := range ops {
			if op.Value == nil {
				continue // deleted
			}
			var rec record[T]
			if err := json.Unmarshal(op.Value, &rec); err != nil {
				return fmt.Errorf("definitions: %s is corrupt: %w", op.Key, err)
			}
			if _, dup := c.index[rec.Key]; dup {
				return fmt.Errorf("definitions: %s is corrupt: key %q stored twice", op.Key, rec.Key)
			}
			e := &entry[T]{key: rec.Key, seq: from + uint64(i), item: rec.Item}
			c.order = append(c.order, e)
			c.index[rec.Key] = e
		}
	}
	return nil
}

// List returns all definitions in creation order.
func (c *Collection[T]) List() []T {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]T, 0, len(c.index))
	for _, e := range c.order {
		if !e.dead {
			out = append(out, e.item)
		}
	}
	return out
}

// Len returns the number of definitions.
func (c *Collection[T]) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.index)
}

// Get returns the definition stored under key.
func (c *Collection[T]) Get(key string) (T, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	e, ok := c.index[key]
	if !ok {
		var zero T
		return zero, false
	}
	return e.item, true
}

// Find returns the first definition, in creation order, for which match is true.
func (c *Collection[T]) Find(match func(T) bool) (T, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, e := range c.order {
		if !e.dead && match(e.item) {
			return e.item, true
		}
	}
	var zero T
	return zero, false
}

// Keys returns the keys of all definitions, sorted.
func (c *Collection[T]) Keys() []string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	keys := make([]string, 0, len(c.index))
	for k := range c.index {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Create stores the definition that build returns under key; build receives a
// fresh ID. It fails with ErrExists when key is taken and with ErrQuota when
// the tenant is at its quota, in both cases without calling build.
func (c *Collection[T]) Create(ctx context.Context, key string, build func(id int64) (T, error)) (T, error) {
	if c.reg.shared != nil {
		return c.inTx(ctx, func(cp *Collection[T]) (T, error) { return cp.create(ctx, key, build) })
	}
	return c.create(ctx, key, build)
}

func (c *Collection[T]) create(ctx context.Context, key string, build func(id int64) (T, error)) (T, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var zero T
	if _, ok := c.index[key]; ok {
		return zero, ErrExists
	}
	u, err := c.reg.lockUsage(ctx, c.b, c.tenant)
	if err != nil {
		return zero, err
	}
	defer u.mu.Unlock()
	if err := c.reg.checkQuota(u); err != nil {
		return zero, err
	}
	item, err := build(c.meta.NextID + 1)
	if err != nil {
		return zero, err
	}
	if err := c.insert(ctx, u, key, item); err != nil {
		return zero, err
	}
	return item, nil
}

// Put creates or replaces the definition under key with what update returns;
// update receives the current definition (and whether there was one). A Put
// that would create a definition fails with ErrQuota when the tenant is at
// its quota.
func (c *Collection[T]) Put(ctx context.Context, key string, update func(cur T, exists bool) (T, error)) (T, error) {
	if c.reg.shared != nil {
		return c.inTx(ctx, func(cp *Collection[T]) (T, error) { return cp.put(ctx, key, update) })
	}
	return c.put(ctx, key, update)
}

func (c *Collection[T]) put(ctx context.Context, key string, update func(cur T, exists bool) (T, error)) (T, error) {
	var zero T
	c.mu.Lock()
	e, exists, err := c.settled(ctx, key)
	if err != nil {
		return zero, err // settled released the lock
	}
	if exists && c.reg.commits != nil {
		return c.replace(ctx, e, update) // releases c.mu
	}
	defer c.mu.Unlock()
	var cur T
	if exists {
		cur = e.item
	}
	item, err := update(cur, exists)
	if err != nil {
		return zero, err
	}
	if exists {
		raw, err := json.Marshal(record[T]{Key: key, Item: item})
		if err != nil {
			return zero, fmt.Errorf("definitions: encoding a %s definition: %w", c.kind, err)
		}
		if err := c.reg.batch(ctx, c.b, "replacing a "+string(c.kind)+" definition",
			storage.SetOperation(itemKey(c.kind, c.tenant, e.seq), raw)); err != nil {
			return zero, err
		}
		e.item = item
		c.reg.version.Add(1)
		return item, nil
	}
	u, err := c.reg.lockUsage(ctx, c.b, c.tenant)
	if err != nil {
		return zero, err
	}
	defer u.mu.Unlock()
	if err := c.reg.checkQuota(u); err != nil {
		return zero, err
	}
	if err := c.insert(ctx, u, key, item); err != nil {
		return zero, err
	}
	return item, nil
}

// settled returns the entry under key once no replacement of it is being
// committed. Caller holds c.mu; on error it is released.
func (c *Collection[T]) settled(ctx context.Context, key string) (*entry[T], bool, error) {
	for {
		e, ok := c.index[key]
		if !ok || e.writing == nil {
			return e, ok, nil
		}
		ch := e.writing
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
		c.mu.Lock()
	}
}

// replace replaces an existing definition through the registry's group
// commit: concurrent replacements of different definitions (a BigFix
// document per tag and post) share one storage transaction instead of
// taking turns under the collection's lock. The entry is marked writing
// meanwhile, so that later changes of it wait and apply in order; readers
// see the old definition until the new one is stored. Caller holds c.mu,
// e is settled; replace releases c.mu.
func (c *Collection[T]) replace(ctx context.Context, e *entry[T], update func(cur T, exists bool) (T, error)) (T, error) {
	var zero T
	item, err := update(e.item, true)
	if err != nil {
		c.mu.Unlock()
		return zero, err
	}
	raw, err := json.Marshal(record[T]{Key: e.key, Item: item})
	if err != nil {
		c.mu.Unlock()
		return zero, fmt.Errorf("definitions: encoding a %s definition: %w", c.kind, err)
	}
	done := make(chan struct{})
	e.writing = done
	c.mu.Unlock()

	err = c.reg.commit(ctx, "replacing a "+string(c.kind)+" definition", storage.SetOperation(itemKey(c.kind, c.tenant, e.seq), raw))
	c.mu.Lock()
	if err == nil {
		e.item = item
		c.reg.version.Add(1)
	}
	e.writing = nil
	close(done)
	c.mu.Unlock()
	if err != nil {
		return zero, err
	}
	return item, nil
}

// insert persists a new definition in the next slot and only then makes it
// visible. Callers hold c.mu and u.mu.
func (c *Collection[T]) insert(ctx context.Context, u *tenantUsage, key string, item T) error {
	next := meta{NextID: c.meta.NextID + 1, NextSeq: c.meta.NextSeq + 1}
	seq := c.meta.NextSeq
	raw, err := json.Marshal(record[T]{Key: key, Item: item})
	if err != nil {
		return fmt.Errorf("definitions: encoding a %s definition: %w", c.kind, err)
	}
	metaRaw, _ := json.Marshal(next)
	// Record the tenant before its first definition, so that a failed
	// index write changes nothing and Tenants never misses a collection.
	if err := c.reg.noteTenant(ctx, c.b, c.kind, c.tenant); err != nil {
		return err
	}
	if err := c.reg.batch(ctx, c.b, "creating a "+string(c.kind)+" definition",
		storage.SetOperation(itemKey(c.kind, c.tenant, seq), raw),
		storage.SetOperation(metaKey(c.kind, c.tenant), metaRaw),
		u.setOperation(c.tenant, u.count+1),
	); err != nil {
		return err
	}
	c.meta = next
	e := &entry[T]{key: key, seq: seq, item: item}
	c.order = append(c.order, e)
	c.index[key] = e
	u.count++
	c.reg.version.Add(1)
	return nil
}

// Delete removes the definition under key and returns it.
func (c *Collection[T]) Delete(ctx context.Context, key string) (T, error) {
	return c.DeleteIf(ctx, key, nil)
}

// DeleteIf removes the definition under key, if check (when not nil) accepts
// it, and returns it; check's error is returned as it is, and nothing is
// deleted.
func (c *Collection[T]) DeleteIf(ctx context.Context, key string, check func(cur T) error) (T, error) {
	if c.reg.shared != nil {
		return c.inTx(ctx, func(cp *Collection[T]) (T, error) { return cp.delete(ctx, key, check) })
	}
	return c.delete(ctx, key, check)
}

func (c *Collection[T]) delete(ctx context.Context, key string, check func(cur T) error) (T, error) {
	var zero T
	c.mu.Lock()
	e, ok, err := c.settled(ctx, key)
	if err != nil {
		return zero, err
	}
	defer c.mu.Unlock()
	if !ok {
		return zero, ErrNotFound
	}
	if check != nil {
		if err := check(e.item); err != nil {
			return zero, err
		}
	}
	u, err := c.reg.lockUsage(ctx, c.b, c.tenant)
	if err != nil {
		return zero, err
	}
	defer u.mu.Unlock()
	if err := c.reg.batch(ctx, c.b, "deleting a "+string(c.kind)+" definition",
		storage.DeleteOperation(itemKey(c.kind, c.tenant, e.seq)),
		u.setOperation(c.tenant, max(u.count-1, 0)),
	); err != nil {
		return zero, err
	}
	u.count = max(u.count-1, 0)
	delete(c.index, key)
	e.dead = true
	c.dead++
	if c.dead > 64 && c.dead > len(c.order)/2 {
		live := c.order[:0]
		for _, e := range c.order {
			if !e.dead {
				live = append(live, e)
			}
		}
		clear(c.order[len(live):])
		c.order, c.dead = live, 0
	}
	c.reg.version.Add(1)
	return e.item, nil
}
