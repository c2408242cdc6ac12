package definitions

import (
	"context"
	"errors"
)

// SharedBackend is a Backend that several collectors use at once
// (internal/pgdefinitions keeps one in PostgreSQL). The registry then keeps
// every collector's answers equal to one collector's:
//
//   - CollectionOf asks for the collection's Version and reloads the
//     collection when another collector changed it, so a read holds every
//     change committed before it;
//   - each change (Create, Put, Delete) runs in one Update holding the locks
//     of the collection, the tenant's usage and the kind's tenant index, on
//     a copy of the collection brought up to date inside the transaction: of
//     concurrent creates of one key, on any collectors, exactly one succeeds
//     and the others get ErrExists; quotas hold across collectors.
type SharedBackend interface {
	Backend
	// Versions returns, for each name, the number of committed Updates that
	// held its lock (0 when none did).
	Versions(ctx context.Context, names []string) ([]uint64, error)
	// Update runs fn in one transaction holding the locks of names, with the
	// Backend that reads and writes inside it and the locks' versions before
	// the change. When fn returns nil the transaction commits and each lock's
	// version grows by 1; it returns the new versions. When fn fails,
	// nothing is written and Update returns fn's error unchanged; other
	// errors are the backend's own.
	Update(ctx context.Context, names []string, fn func(tx Backend, versions []uint64) error) ([]uint64, error)
	// OnChange registers fn, called (asynchronously) after any collector
	// committed an Update.
	OnChange(fn func())
}

// versionRead is one CollectionOf's question for a collection's version.
type versionRead struct {
	name string
	v    uint64
}

// readVersions answers the version reads of one round with one query: the
// concurrent requests of a busy collector share it, and each read still
// starts after its caller asked, so it sees every change committed before.
func (r *Registry) readVersions(reads []*versionRead) error {
	names := make([]string, 0, len(reads))
	at := make(map[string]int, len(reads))
	for _, rd := range reads {
		if _, ok := at[rd.name]; !ok {
			at[rd.name] = len(names)
			names = append(names, rd.name)
		}
	}
	vs, err := r.shared.Versions(context.Background(), names)
	if err != nil {
		return err
	}
	for _, rd := range reads {
		rd.v = vs[at[rd.name]]
	}
	return nil
}

// sharedVersion returns the shared backend's version of collection key.
func (r *Registry) sharedVersion(ctx context.Context, key string) (uint64, error) {
	rd := &versionRead{name: key}
	if err := r.versionReads.Wait(ctx, r.versionReads.Add(rd)); err != nil {
		return 0, err
	}
	return rd.v, nil
}

// changeError marks an error of the change itself (ErrExists, ErrQuota, a
// builder's error), which inTx returns as it is.
type changeError struct{ err error }

func (e *changeError) Error() string { return e.err.Error() }
func (e *changeError) Unwrap() error { return e.err }

// inTx makes one change of c's collection on a shared backend. change runs
// on a private copy of the collection that reads and writes inside the
// transaction; the copy becomes the registry's collection once the
// transaction has committed, so a failed change leaves nothing in memory.
func (c *Collection[T]) inTx(ctx context.Context, change func(cp *Collection[T]) (T, error)) (T, error) {
	r := c.reg
	key := collectionPrefix(c.kind, c.tenant)
	var out T
	var next *Collection[T]
	versions, err := r.shared.Update(ctx, []string{key, usageKey(c.tenant), tenantsKey(c.kind)},
		func(tx Backend, before []uint64) error {
			r.mu.Lock()
			cur, err := cachedCollection[T](r, key)
			r.mu.Unlock()
			if err != nil {
				return &changeError{err}
			}
			var cp *Collection[T]
			if cur != nil && cur.version == before[0] {
				cp = cur.clone()
				cp.b = tx
			} else {
				cp = newCollection[T](r, c.kind, c.tenant)
				cp.b = tx
				if err := cp.load(ctx); err != nil {
					return err
				}
			}
			if out, err = change(cp); err != nil {
				return &changeError{err}
			}
			next = cp
			return nil
		})
	if err != nil {
		var zero T
		if ce := (*changeError)(nil); errors.As(err, &ce) {
			return zero, ce.err
		}
		if errors.Is(err, ErrUnavailable) {
			return zero, err
		}
		return zero, r.unavailable("changing "+string(c.kind)+" definitions", err)
	}
	next.b, next.version = r.backend, versions[0]
	r.mu.Lock()
	if cur, _ := cachedCollection[T](r, key); cur == nil || cur.version < next.version {
		r.collections[key] = next
	}
	r.mu.Unlock()
	return out, nil
}

// clone returns a copy of c that shares no mutable state with it.
func (c *Collection[T]) clone() *Collection[T] {
	c.mu.RLock()
	defer c.mu.RUnlock()
	cp := &Collection[T]{reg: c.reg, kind: c.kind, tenant: c.tenant, b: c.b, version: c.version, meta: c.meta,
		order: make([]*entry[T], 0, len(c.index)), index: make(map[string]*entry[T], len(c.index))}
	for _, e := range c.order {
		if e.dead {
			continue
		}
		ne := *e
		cp.order = append(cp.order, &ne)
		cp.index[ne.key] = &ne
	}
	return cp
}
