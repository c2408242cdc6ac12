package custommetricsreceiver // import "github.com/custommetrics/bundle/receiver/custommetricsreceiver"

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/confighttp"
	"go.opentelemetry.io/collector/config/configopaque"

	ld "github.com/custommetrics/bundle/internal/wire/launchdarkly"

	"github.com/custommetrics/bundle/internal/calendar"
)

// Config defines the configuration of the custommetrics receiver.
type Config struct {
	// ServerConfig is the HTTP server every vendor API is served on. It is a
	// named field: embedding would promote its Unmarshal method and hide ours.
	ServerConfig confighttp.ServerConfig `mapstructure:",squash"`

	// Definitions is the ID of the definitions extension that stores what the
	// APIs create. When unset, the receiver keeps definitions in memory only.
	Definitions *component.ID `mapstructure:"definitions"`

	// AllowUnauthenticated lets an API without credentials be served on an
	// endpoint that is not loopback. Default false: such a receiver refuses
	// to start, since every client that reaches it could write.
	AllowUnauthenticated bool `mapstructure:"allow_unauthenticated"`

	// Limits bound what one request may carry; beyond them it is refused
	// in the API's own error shape before anything is counted or stored.
	Limits LimitsConfig `mapstructure:"limits"`

	ThreatConnect ThreatConnectConfig `mapstructure:"threatconnect"`
	Sleuth        SleuthConfig        `mapstructure:"sleuth"`
	BigFix        BigFixConfig        `mapstructure:"bigfix"`
	LaunchDarkly  LaunchDarklyConfig  `mapstructure:"launchdarkly"`
	Embrace       EmbraceConfig       `mapstructure:"embrace"`

	// prevent unkeyed literal initialization
	_ struct{}
}

// APIConfig is what every API has: a switch and a path prefix.
type APIConfig struct {
	// Enabled serves the API. Default true.
	Enabled bool `mapstructure:"enabled"`
	// PathPrefix is prepended to the API's documented paths.
	PathPrefix string `mapstructure:"path_prefix"`
}

// ThreatConnectConfig configures the ThreatConnect Custom Metrics API (v2).
type ThreatConnectConfig struct {
	APIConfig `mapstructure:",squash"`
	// Tokens are accepted as "Authorization: TC-Token <token>".
	Tokens []ThreatConnectToken `mapstructure:"tokens"`
	// HMACKeys are accepted as "Authorization: TC <access_id>:<signature>" with a Timestamp header.
	HMACKeys []ThreatConnectHMACKey `mapstructure:"hmac_keys"`
	// HMACMaxSkew is how far a signed request's Timestamp may be from the
	// server clock. The signature does not cover the body, so a captured
	// request can be replayed with another body within this window: keep it
	// short and serve over TLS. Default 5m, as ThreatConnect allows.
	HMACMaxSkew time.Duration `mapstructure:"hmac_max_skew"`
	// ReturnValue answers ?returnValue=true with the running aggregate of the
	// value's window, as the aggregate processor in front of which the
	// receiver must run reports it (checked at start, see the README). False
	// refuses such requests with 400 and needs no aggregate processor.
	// Default true.
	ReturnValue bool `mapstructure:"return_value"`
}

// ThreatConnectToken is an API token and what it may touch.
type ThreatConnectToken struct {
	Token  configopaque.String `mapstructure:"token"`
	Access `mapstructure:",squash"`
}

// ThreatConnectHMACKey is an API user's access ID and secret key.
type ThreatConnectHMACKey struct {
	AccessID  string              `mapstructure:"access_id"`
	SecretKey configopaque.String `mapstructure:"secret_key"`
	Access    `mapstructure:",squash"`
}

// Access scopes a credential.
type Access struct {
	// Tenant whose definitions and values the credential reaches ("" is the default tenant).
	Tenant string `mapstructure:"tenant"`
	// ReadOnly credentials may read but not create, delete or post values (403).
	ReadOnly bool `mapstructure:"read_only"`
}

// SleuthConfig configures Sleuth's custom metric impact registration.
type SleuthConfig struct {
	APIConfig `mapstructure:",squash"`
	// APIKeys are accepted as "Authorization: apikey <key>" or as "api_key" in the body.
	APIKeys []SleuthAPIKey `mapstructure:"api_keys"`
	// ImpactSources maps the integer IMPACT_ID of the path to a metric.
	ImpactSources []SleuthImpactSource `mapstructure:"impact_sources"`
	// MinInterval between two registrations for one impact source; faster ones get 429
	// with Retry-After. Default 120s, as Sleuth documents; 0 turns the limit off.
	MinInterval time.Duration `mapstructure:"min_interval"`
}

// SleuthAPIKey is an organisation API key and the tenant it maps to.
type SleuthAPIKey struct {
	Key    configopaque.String `mapstructure:"key"`
	Tenant string              `mapstructure:"tenant"`
}

// SleuthImpactSource declares one impact source.
type SleuthImpactSource struct {
	ID     int64  `mapstructure:"id"`
	Metric string `mapstructure:"metric"`
	Unit   string `mapstructure:"unit"`
	// Tenant owning the source; a key of another tenant gets 404, as for an unknown source.
	Tenant string `mapstructure:"tenant"`
}

// BigFixConfig configures the BigFix deployment metrics API.
type BigFixConfig struct {
	APIConfig `mapstructure:",squash"`
	// Users are HTTP Basic credentials with a BigFix role.
	Users []BigFixUser `mapstructure:"users"`
}

// BigFix roles, as the document names them.
const (
	RoleMasterOperator = "master_operator"
	RoleOperator       = "operator"
)

// BigFixUser is an operator account.
type BigFixUser struct {
	Username string              `mapstructure:"username"`
	Password configopaque.String `mapstructure:"password"`
	// Role is master_operator (read and write) or operator (write only, as documented).
	Role   string `mapstructure:"role"`
	Tenant string `mapstructure:"tenant"`
}

// LaunchDarklyConfig configures LaunchDarkly's metrics API (v2) and the
// analytics-events endpoint its server-side SDKs send to.
type LaunchDarklyConfig struct {
	APIConfig `mapstructure:",squash"`
	// AccessTokens are accepted as "Authorization: <token>", as LaunchDarkly's clients send them.
	AccessTokens []LaunchDarklyAccessToken `mapstructure:"access_tokens"`
	// RateLimitPerMinute caps the metrics-API requests of one access token per
	// calendar minute; more get 429 with Retry-After. 0 (the default) turns it off.
	RateLimitPerMinute int `mapstructure:"rate_limit_per_minute"`
	// Events is the endpoint that SDKs post analytics events to.
	Events LaunchDarklyEventsConfig `mapstructure:"events"`
}

// LaunchDarklyAccessToken is an API access token and what it may touch.
type LaunchDarklyAccessToken struct {
	Token  configopaque.String `mapstructure:"token"`
	Access `mapstructure:",squash"`
	// Projects are the project keys the token may use (403 for others); empty means all.
	Projects []string `mapstructure:"projects"`
}

// LaunchDarklyEventsConfig configures the SDK events endpoint.
type LaunchDarklyEventsConfig struct {
	// Enabled serves the endpoint (when the LaunchDarkly API is enabled). Default true.
	Enabled bool `mapstructure:"enabled"`
	// Path is the SDKs' events base URI path: they post to <path>/bulk and
	// <path>/diagnostic. Default /launchdarkly/events. path_prefix does not apply.
	Path string `mapstructure:"path"`
	// SDKKeys are accepted as "Authorization: <sdk key>"; each belongs to one project.
	SDKKeys []LaunchDarklySDKKey `mapstructure:"sdk_keys"`
	// Interval is the calendar interval the events' values are aggregated
	// in (LaunchDarkly metrics have none of their own). Default hour.
	Interval calendar.Interval `mapstructure:"interval"`
	// ClientSideIDs are the client-side IDs that client-side SDKs (the
	// JavaScript SDK) post their events with, in the path
	// /events/bulk/<client-side ID>; each feeds one project's metrics. An
	// ID not listed gets 404, as from LaunchDarkly.
	ClientSideIDs []LaunchDarklyClientSideID `mapstructure:"client_side_ids"`
}

// LaunchDarklySDKKey is a server-side SDK key and the project whose metrics its events feed.
type LaunchDarklySDKKey struct {
	Key     configopaque.String `mapstructure:"key"`
	Tenant  string              `mapstructure:"tenant"`
	Project string              `mapstructure:"project"`
}

// LaunchDarklyClientSideID is an environment's client-side ID and the project
// whose metrics its events feed. Client-side IDs are not secrets: they ship in
// every web page that runs the SDK, so whoever reads one can post events, as
// to LaunchDarkly itself.
type LaunchDarklyClientSideID struct {
	ID      string `mapstructure:"id"`
	Tenant  string `mapstructure:"tenant"`
	Project string `mapstructure:"project"`
}

// EmbraceConfig configures Embrace's Custom Metrics API (v1).
type EmbraceConfig struct {
	APIConfig `mapstructure:",squash"`
	// Tokens are accepted as "Authorization: Bearer <token>".
	Tokens []EmbraceToken `mapstructure:"tokens"`
	// BaseMetrics are the metrics definitions may derive from, with the
	// attributes they may filter and group on. Default: the document's table.
	BaseMetrics []EmbraceBaseMetric `mapstructure:"base_metrics"`
}

// EmbraceToken is a Custom Metrics API token and the apps it may manage.
type EmbraceToken struct {
	Token  configopaque.String `mapstructure:"token"`
	Access `mapstructure:",squash"`
	// AppIDs the token may manage (403 for others); empty means all.
	AppIDs []string `mapstructure:"app_ids"`
}

// EmbraceBaseMetric is a base metric and its attribute keys.
type EmbraceBaseMetric struct {
	Name       string   `mapstructure:"name"`
	Attributes []string `mapstructure:"attributes"`
}

// LimitsConfig bounds the input of one request, for every API.
type LimitsConfig struct {
	// MaxNameLength bounds metric and definition names, in bytes (400 beyond). Default 256.
	MaxNameLength int `mapstructure:"max_name_length"`
	// MaxKeyLength bounds keys: keyed values' keys, event keys, tags and the
	// attribute keys a definition groups or filters on, in bytes (400 beyond). Default 1024.
	MaxKeyLength int `mapstructure:"max_key_length"`
	// MaxPointsPerRequest bounds the values one request produces (413
	// beyond). Default 10000, the most events a LaunchDarkly SDK flushes at once.
	MaxPointsPerRequest int `mapstructure:"max_points_per_request"`
}

// Validate checks that every limit is positive. The error is one line, which
// confmap prefixes with the section's path ("limits: ...").
func (l LimitsConfig) Validate() error {
	var bad []string
	if l.MaxNameLength <= 0 {
		bad = append(bad, "max_name_length")
	}
	if l.MaxKeyLength <= 0 {
		bad = append(bad, "max_key_length")
	}
	if l.MaxPointsPerRequest <= 0 {
		bad = append(bad, "max_points_per_request")
	}
	if len(bad) == 0 {
		return nil
	}
	return fmt.Errorf("%s must be positive", strings.Join(bad, ", "))
}

// Validate checks the receiver configuration.
func (cfg *Config) Validate() error {
	var errs []error
	if cfg.ServerConfig.NetAddr.Endpoint == "" {
		errs = append(errs, errors.New("endpoint must not be empty"))
	}
	if cfg.ServerConfig.MaxRequestBodySize < 0 {
		errs = append(errs, errors.New("max_request_body_size must not be negative"))
	}
	for name, p := range map[string]APIConfig{"threatconnect": cfg.ThreatConnect.APIConfig, "sleuth": cfg.Sleuth.APIConfig, "bigfix": cfg.BigFix.APIConfig, "launchdarkly": cfg.LaunchDarkly.APIConfig, "embrace": cfg.Embrace.APIConfig} {
		if p.PathPrefix != "" && (!strings.HasPrefix(p.PathPrefix, "/") || strings.HasSuffix(p.PathPrefix, "/")) {
			errs = append(errs, fmt.Errorf("%s::path_prefix %q must start with '/' and not end with '/'", name, p.PathPrefix))
		}
		if !routable(p.PathPrefix) {
			errs = append(errs, fmt.Errorf("%s::path_prefix %q must not contain '{', '}' or white space", name, p.PathPrefix))
		}
	}
	for i, t := range cfg.ThreatConnect.Tokens {
		if t.Token == "" {
			errs = append(errs, fmt.Errorf("threatconnect::tokens[%d]::token must not be empty", i))
		}
	}
	for i, k := range cfg.ThreatConnect.HMACKeys {
		if k.AccessID == "" || k.SecretKey == "" {
			errs = append(errs, fmt.Errorf("threatconnect::hmac_keys[%d] needs access_id and secret_key", i))
		}
		if strings.Contains(k.AccessID, ":") {
			errs = append(errs, fmt.Errorf("threatconnect::hmac_keys[%d]::access_id must not contain ':'", i))
		}
	}
	if cfg.ThreatConnect.HMACMaxSkew <= 0 {
		errs = append(errs, errors.New("threatconnect::hmac_max_skew must be positive"))
	}
	for i, k := range cfg.Sleuth.APIKeys {
		if k.Key == "" {
			errs = append(errs, fmt.Errorf("sleuth::api_keys[%d]::key must not be empty", i))
		}
	}
	seen := map[int64]bool{}
	for i, s := range cfg.Sleuth.ImpactSources {
		if s.Metric == "" {
			errs = append(errs, fmt.Errorf("sleuth::impact_sources[%d]::metric must not be empty", i))
		}
		// Sleuth's clients send no names: its metric names come from here.
		if cfg.Limits.MaxNameLength > 0 && len(s.Metric) > cfg.Limits.MaxNameLength {
			errs = append(errs, fmt.Errorf("sleuth::impact_sources[%d]::metric is longer than limits::max_name_length (%d bytes)", i, cfg.Limits.MaxNameLength))
		}
		if seen[s.ID] {
			errs = append(errs, fmt.Errorf("sleuth::impact_sources[%d]: id %d is declared twice", i, s.ID))
		}
		seen[s.ID] = true
	}
	if cfg.Sleuth.MinInterval < 0 {
		errs = append(errs, errors.New("sleuth::min_interval must not be negative"))
	}
	for i, u := range cfg.BigFix.Users {
		if u.Username == "" || u.Password == "" {
			errs = append(errs, fmt.Errorf("bigfix::users[%d] needs username and password", i))
		}
		if u.Role != RoleMasterOperator && u.Role != RoleOperator {
			errs = append(errs, fmt.Errorf("bigfix::users[%d]::role must be %q or %q", i, RoleMasterOperator, RoleOperator))
		}
	}
	errs = append(errs, cfg.LaunchDarkly.validate()...)
	errs = append(errs, cfg.Embrace.validate()...)
	return errors.Join(errs...)
}

func (c LaunchDarklyConfig) validate() []error {
	var errs []error
	for i, t := range c.AccessTokens {
		if t.Token == "" {
			errs = append(errs, fmt.Errorf("launchdarkly::access_tokens[%d]::token must not be empty", i))
		}
		for _, p := range t.Projects {
			if !ld.KeyPattern.MatchString(p) {
				errs = append(errs, fmt.Errorf("launchdarkly::access_tokens[%d]::projects: %q is not a valid project key", i, p))
			}
		}
	}
	if c.RateLimitPerMinute < 0 {
		errs = append(errs, errors.New("launchdarkly::rate_limit_per_minute must not be negative"))
	}
	if c.Events.Enabled && (!strings.HasPrefix(c.Events.Path, "/") || strings.HasSuffix(c.Events.Path, "/")) {
		errs = append(errs, fmt.Errorf("launchdarkly::events::path %q must start with '/' and not end with '/'", c.Events.Path))
	}
	if c.Events.Enabled && !routable(c.Events.Path) {
		errs = append(errs, fmt.Errorf("launchdarkly::events::path %q must not contain '{', '}' or white space", c.Events.Path))
	}
	seen := map[configopaque.String]bool{}
	if c.Events.Enabled && !c.Events.Interval.Valid() {
		errs = append(errs, errors.New("launchdarkly::events::interval must be one of 5m, hour, day, week, month, year"))
	}
	for i, k := range c.Events.SDKKeys {
		if k.Key == "" {
			errs = append(errs, fmt.Errorf("launchdarkly::events::sdk_keys[%d]::key must not be empty", i))
		}
		if seen[k.Key] {
			errs = append(errs, fmt.Errorf("launchdarkly::events::sdk_keys[%d]: the key is listed twice", i))
		}
		seen[k.Key] = true
		if !ld.KeyPattern.MatchString(k.Project) {
			errs = append(errs, fmt.Errorf("launchdarkly::events::sdk_keys[%d]::project %q is not a valid project key", i, k.Project))
		}
	}
	ids := map[string]bool{}
	for i, c := range c.Events.ClientSideIDs {
		switch {
		case c.ID == "":
			errs = append(errs, fmt.Errorf("launchdarkly::events::client_side_ids[%d]::id must not be empty", i))
		case !ld.KeyPattern.MatchString(c.ID):
			// It is a path segment: /events/bulk/<id>.
			errs = append(errs, fmt.Errorf("launchdarkly::events::client_side_ids[%d]::id %q is invalid: use letters, digits, '.', '_' and '-'", i, c.ID))
		case ids[c.ID]:
			errs = append(errs, fmt.Errorf("launchdarkly::events::client_side_ids[%d]: id %q is listed twice", i, c.ID))
		}
		ids[c.ID] = true
		if !ld.KeyPattern.MatchString(c.Project) {
			errs = append(errs, fmt.Errorf("launchdarkly::events::client_side_ids[%d]::project %q is not a valid project key", i, c.Project))
		}
	}
	return errs
}

// routable reports whether a configured path can start a route: the APIs'
// routes are http.ServeMux patterns, in which '{' and '}' are wildcard syntax
// and a space separates a method, so such a path would make the receiver
// panic at start instead of failing validation.
func routable(path string) bool {
	return !strings.ContainsAny(path, "{} \t\r\n")
}

func (c EmbraceConfig) validate() []error {
	var errs []error
	for i, t := range c.Tokens {
		if t.Token == "" {
			errs = append(errs, fmt.Errorf("embrace::tokens[%d]::token must not be empty", i))
		}
	}
	names := map[string]bool{}
	for i, m := range c.BaseMetrics {
		if m.Name == "" {
			errs = append(errs, fmt.Errorf("embrace::base_metrics[%d]::name must not be empty", i))
		}
		if names[m.Name] {
			errs = append(errs, fmt.Errorf("embrace::base_metrics[%d]: %q is declared twice", i, m.Name))
		}
		names[m.Name] = true
		for j, a := range m.Attributes {
			if a == "" {
				errs = append(errs, fmt.Errorf("embrace::base_metrics[%d]::attributes[%d] must not be empty", i, j))
			}
		}
	}
	return errs
}
