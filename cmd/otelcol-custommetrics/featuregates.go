package main

import "go.opentelemetry.io/collector/featuregate"

// The distribution runs health_check in its component-status mode (the
// contrib gate extension.healthcheck.useComponentStatus, off upstream by
// default), so that a failure a component reports through componentstatus,
// such as a full disk under the aggregate processor's storage, turns the
// health endpoint unhealthy (503) until the component recovers. The flag
// --feature-gates=-extension.healthcheck.useComponentStatus turns it off.
func init() {
	if err := featuregate.GlobalRegistry().Set("extension.healthcheck.useComponentStatus", true); err != nil {
		panic(err)
	}
}
