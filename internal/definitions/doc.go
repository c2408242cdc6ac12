// Package definitions holds the bundle's state that users create through the
// receiver's APIs — ThreatConnect metric configs, BigFix deployment-metrics
// documents, LaunchDarkly metrics and Embrace derived-metric definitions — and the
// Registry that stores them durably and serves them to every component.
//
// A Registry keeps each (kind, tenant) collection in memory and writes it
// through to a Backend (a Collector storage client) as one document per
// collection, under the collection's lock. A mutation is therefore atomic: it
// is visible only once persisted, and a failed write leaves the previous state
// in memory and in storage. Creating the same key twice at once yields exactly
// one success. Collections are small (definitions, not values), so rewriting a
// whole collection per change costs little and needs no index. Two additions
// serve readers of every tenant (the aggregate processor's Embrace derived
// metrics): a persisted list of the tenants that have a collection of each
// kind (Tenants, ListAll), written before a tenant's first definition, and a
// change counter (Version) that moves after every committed change.
package definitions // import "github.com/custommetrics/bundle/internal/definitions"
