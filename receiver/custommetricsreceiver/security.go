package custommetricsreceiver // import "github.com/custommetrics/bundle/receiver/custommetricsreceiver"

import (
	"fmt"
	"net"
	"strings"

	"go.opentelemetry.io/collector/config/confighttp"
)

// openAPI is an enabled API that has no credentials configured, and the
// setting that would give it some.
type openAPI struct {
	name        string
	credentials string
}

// openAPIs lists the enabled APIs without credentials, in a stable order. The
// LaunchDarkly events endpoint is not listed: without sdk_keys it refuses
// every request.
func (cfg *Config) openAPIs() []openAPI {
	var out []openAPI
	add := func(enabled bool, n int, name, credentials string) {
		if enabled && n == 0 {
			out = append(out, openAPI{name: name, credentials: credentials})
		}
	}
	add(cfg.ThreatConnect.Enabled, len(cfg.ThreatConnect.Tokens)+len(cfg.ThreatConnect.HMACKeys), apiThreatConnect, "threatconnect::tokens or threatconnect::hmac_keys")
	add(cfg.Sleuth.Enabled, len(cfg.Sleuth.APIKeys), apiSleuth, "sleuth::api_keys")
	add(cfg.BigFix.Enabled, len(cfg.BigFix.Users), apiBigFix, "bigfix::users")
	add(cfg.LaunchDarkly.Enabled, len(cfg.LaunchDarkly.AccessTokens), apiLaunchDarkly, "launchdarkly::access_tokens")
	add(cfg.Embrace.Enabled, len(cfg.Embrace.Tokens), apiEmbrace, "embrace::tokens")
	return out
}

// localOnly reports whether the server is reachable from this machine only:
// a Unix socket, or a TCP endpoint whose configured host is a loopback
// address (127.0.0.0/8, ::1) or "localhost". An empty host, 0.0.0.0, :: and
// every other name or address count as reachable from the network.
func localOnly(srv confighttp.ServerConfig) bool {
	if strings.HasPrefix(string(srv.NetAddr.Transport), "unix") { // unix, unixgram, unixpacket
		return true
	}
	host, _, err := net.SplitHostPort(srv.NetAddr.Endpoint)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkExposure refuses to serve an API without credentials on an endpoint
// reachable from the network, unless allow_unauthenticated says so. An auth
// extension (confighttp's auth) authenticates every request, so with one no
// API is open.
func (cfg *Config) checkExposure() error {
	if cfg.AllowUnauthenticated || cfg.ServerConfig.Auth.HasValue() || localOnly(cfg.ServerConfig) {
		return nil
	}
	open := cfg.openAPIs()
	if len(open) == 0 {
		return nil
	}
	names := make([]string, 0, len(open))
	fixes := make([]string, 0, len(open))
	for _, a := range open {
		names = append(names, a.name)
		fixes = append(fixes, a.credentials)
	}
	return fmt.Errorf("endpoint %q is not a loopback address and these APIs have no credentials configured, so anyone who reaches it could write: %s. "+
		"Configure credentials (%s), or disable the API (enabled: false), or set allow_unauthenticated: true to serve it open, or bind endpoint to loopback (e.g. 127.0.0.1:8181)",
		cfg.ServerConfig.NetAddr.Endpoint, strings.Join(names, ", "), strings.Join(fixes, "; "))
}
