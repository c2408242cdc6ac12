// Package definitions holds the bundle's state that users create through the
// receiver's APIs — ThreatConnect metric configs, BigFix deployment-metrics
// documents, LaunchDarkly metrics and Embrace derived-metric definitions — and the
// Registry that stores them durably and serves them to every component.
//
// A Registry keeps each (kind, tenant) collection in memory and writes it
// through to a Backend (a Collector storage client) one record per
// definition (the key layout is drawn in collection.go), so that a change
// costs the same whatever the collection's size. Each change is one storage
// transaction (Backend.Batch) made under the collection's lock, and becomes
// visible only once persisted: a failed write leaves the previous state in
// memory and in storage, and creating the same key twice at once yields
// exactly one success. Storage failures are ErrUnavailable (retry later);
// a tenant over its quota of definitions (all kinds together) gets ErrQuota.
// Two additions serve readers of every tenant (the aggregate processor's
// Embrace derived metrics): a persisted list of the tenants that have a
// collection of each kind (Tenants, ListAll), written before a tenant's first
// definition, and a change counter (Version) that moves after every
// committed change. Migrate moves what the previous layout stored (one record
// per collection) into the current one.
package definitions // import "github.com/custommetrics/bundle/internal/definitions"
