package custommetricsexporter // import "github.com/custommetrics/bundle/exporter/custommetricsexporter"

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"go.opentelemetry.io/collector/component"

	"go.opentelemetry.io/collector/config/confighttp"
	"go.opentelemetry.io/collector/config/configopaque"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/config/configretry"
	"go.opentelemetry.io/collector/exporter/exporterhelper"

	"github.com/custommetrics/bundle/internal/otelmap"
	"github.com/custommetrics/bundle/internal/wire/bigfix"
	tc "github.com/custommetrics/bundle/internal/wire/threatconnect"
)

// Config defines the configuration of the custommetrics exporter.
type Config struct {
	// ClientConfig holds the HTTP client settings shared by every API
	// (timeout per request, tls, headers, proxy_url, compression, keep-alive, ...).
	// It is a named field: embedding would promote its Unmarshal method, which
	// decodes the client settings only, and the API sections would be lost.
	// Its endpoint must stay empty: each API section has its own.
	ClientConfig confighttp.ClientConfig                                  `mapstructure:",squash"`
	QueueConfig  configoptional.Optional[exporterhelper.QueueBatchConfig] `mapstructure:"sending_queue"`
	RetryConfig  configretry.BackOffConfig                                `mapstructure:"retry_on_failure"`

	ThreatConnect *ThreatConnectConfig `mapstructure:"threatconnect"`
	Sleuth        *SleuthConfig        `mapstructure:"sleuth"`
	BigFix        *BigFixConfig        `mapstructure:"bigfix"`

	// Storage is the ID of a storage extension (e.g. file_storage) that keeps
	// what the forwarders know of the vendors' state across restarts (posts
	// per ThreatConnect Average window, BigFix documents). Unset: in memory.
	Storage *component.ID `mapstructure:"storage"`

	// prevent unkeyed literal initialization
	_ struct{}
}

// Match selects OpenTelemetry metrics by name: exactly one of Name (exact)
// and Regexp (RE2, anchored: it must match the whole name).
type Match struct {
	Name   string `mapstructure:"name"`
	Regexp string `mapstructure:"regexp"`

	re *regexp.Regexp
}

func (m *Match) compile() error {
	switch {
	case m.Name != "" && m.Regexp != "":
		return errors.New("set name or regexp, not both")
	case m.Name == "" && m.Regexp == "":
		return errors.New("name or regexp is required")
	case m.Regexp != "":
		re, err := regexp.Compile(`^(?:` + m.Regexp + `)$`)
		if err != nil {
			return fmt.Errorf("regexp: %w", err)
		}
		m.re = re
	}
	return nil
}

func (m *Match) matches(name string) bool {
	if m.re != nil {
		return m.re.MatchString(name)
	}
	return m.Name == name
}

// ThreatConnectConfig forwards to ThreatConnect's Custom Metrics API (v2).
type ThreatConnectConfig struct {
	// Endpoint is the base URL, e.g. https://companyabc.threatconnect.com.
	Endpoint string `mapstructure:"endpoint"`
	// APIPath is the API's base path; default /api (so .../api/v2/customMetrics).
	APIPath string `mapstructure:"api_path"`
	// Token authenticates with "Authorization: TC-Token <token>".
	Token configopaque.String `mapstructure:"token"`
	// AccessID and SecretKey authenticate with ThreatConnect's HMAC signature.
	AccessID  string              `mapstructure:"access_id"`
	SecretKey configopaque.String `mapstructure:"secret_key"`
	// Metrics map OpenTelemetry metrics to ThreatConnect metrics; the first match wins.
	Metrics []ThreatConnectMetric `mapstructure:"metrics"`
}

// ThreatConnectMetric maps matching OpenTelemetry metrics to one ThreatConnect metric.
type ThreatConnectMetric struct {
	Match `mapstructure:",squash"`
	// Metric is the ThreatConnect metric's name; default: the OpenTelemetry metric's name.
	Metric string `mapstructure:"metric"`
	// KeyAttribute is the data point attribute whose value is the key of a
	// keyed metric (sent as "name"); default custommetrics.key.
	KeyAttribute string `mapstructure:"key_attribute"`
}

// SleuthConfig forwards to Sleuth's impact registration API.
type SleuthConfig struct {
	// Endpoint is the base URL, e.g. https://app.sleuth.io.
	Endpoint string `mapstructure:"endpoint"`
	// APIKey is sent as "Authorization: apikey <key>".
	APIKey configopaque.String `mapstructure:"api_key"`
	// Impacts map OpenTelemetry metrics to impact sources; the first match wins.
	Impacts []SleuthImpact `mapstructure:"impacts"`
}

// SleuthImpact maps matching OpenTelemetry metrics to one impact source.
type SleuthImpact struct {
	Match    `mapstructure:",squash"`
	ImpactID int64 `mapstructure:"impact_id"`
}

// BigFixConfig forwards to BigFix's deployment metrics REST API.
type BigFixConfig struct {
	// Endpoint is the base URL, e.g. https://bigfix.example.com:52311.
	Endpoint string `mapstructure:"endpoint"`
	// Username and Password authenticate with HTTP Basic (an operator may write).
	Username string              `mapstructure:"username"`
	Password configopaque.String `mapstructure:"password"`
	// Tags map OpenTelemetry metrics to members of a tag's document; the first match wins.
	Tags []BigFixTag `mapstructure:"tags"`
}

// BigFixTag maps matching OpenTelemetry metrics to a member of one tag's document.
type BigFixTag struct {
	Match `mapstructure:",squash"`
	Tag   string `mapstructure:"tag"`
	// Field is the document member; default: the OpenTelemetry metric's name.
	Field string `mapstructure:"field"`
	// KeyAttribute, when set, nests values by that attribute: {"<field>": {"<key>": v}}.
	KeyAttribute string `mapstructure:"key_attribute"`
}

// Validate checks the exporter configuration.
func (cfg *Config) Validate() error {
	var errs []error
	if cfg.ClientConfig.Endpoint != "" {
		errs = append(errs, errors.New("endpoint: set the endpoint in each API section (threatconnect, sleuth, bigfix), not at the top level"))
	}
	if cfg.ThreatConnect == nil && cfg.Sleuth == nil && cfg.BigFix == nil {
		errs = append(errs, errors.New("configure at least one of threatconnect, sleuth, bigfix"))
	}
	if cfg.QueueConfig.HasValue() && cfg.QueueConfig.Get().NumConsumers > 1 {
		errs = append(errs, fmt.Errorf("sending_queue::num_consumers must be 1, got %d: window figures are forwarded as "+
			"differences to the last forwarded figure and restatements must reach the vendor in emission order",
			cfg.QueueConfig.Get().NumConsumers))
	}
	if c := cfg.ThreatConnect; c != nil {
		errs = append(errs, prefixed("threatconnect", c.validate())...)
	}
	if c := cfg.Sleuth; c != nil {
		errs = append(errs, prefixed("sleuth", c.validate())...)
	}
	if c := cfg.BigFix; c != nil {
		errs = append(errs, prefixed("bigfix", c.validate())...)
	}
	return errors.Join(errs...)
}

func prefixed(p string, errs []error) []error {
	for i, err := range errs {
		errs[i] = fmt.Errorf("%s::%w", p, err)
	}
	return errs
}

func validEndpoint(e string) error {
	if e == "" {
		return errors.New("endpoint is required")
	}
	u, err := url.Parse(e)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("endpoint %q must be an http or https URL", e)
	}
	return nil
}

func (c *ThreatConnectConfig) validate() []error {
	var errs []error
	if err := validEndpoint(c.Endpoint); err != nil {
		errs = append(errs, err)
	}
	if c.APIPath != "" && !strings.HasPrefix(c.APIPath, "/") {
		errs = append(errs, fmt.Errorf("api_path %q must start with /", c.APIPath))
	}
	hmacSet := c.AccessID != "" || c.SecretKey != ""
	switch {
	case c.Token != "" && hmacSet:
		errs = append(errs, errors.New("set token or access_id and secret_key, not both"))
	case c.Token == "" && !hmacSet:
		errs = append(errs, errors.New("token or access_id and secret_key are required"))
	case hmacSet && (c.AccessID == "" || c.SecretKey == ""):
		errs = append(errs, errors.New("access_id and secret_key go together"))
	}
	if len(c.Metrics) == 0 {
		errs = append(errs, errors.New("metrics: at least one mapping is required"))
	}
	for i := range c.Metrics {
		m := &c.Metrics[i]
		if err := m.compile(); err != nil {
			errs = append(errs, fmt.Errorf("metrics[%d]: %w", i, err))
		}
		if m.Metric == "" && m.Name == "" {
			errs = append(errs, fmt.Errorf("metrics[%d]: metric (the ThreatConnect name) is required with regexp", i))
		}
		if m.Metric != "" {
			if err := tc.ValidName(m.Metric); err != nil {
				errs = append(errs, fmt.Errorf("metrics[%d]: metric: %w", i, err))
			}
		}
	}
	return errs
}

func (c *SleuthConfig) validate() []error {
	var errs []error
	if err := validEndpoint(c.Endpoint); err != nil {
		errs = append(errs, err)
	}
	if c.APIKey == "" {
		errs = append(errs, errors.New("api_key is required"))
	}
	if len(c.Impacts) == 0 {
		errs = append(errs, errors.New("impacts: at least one mapping is required"))
	}
	for i := range c.Impacts {
		m := &c.Impacts[i]
		if err := m.compile(); err != nil {
			errs = append(errs, fmt.Errorf("impacts[%d]: %w", i, err))
		}
		if m.ImpactID <= 0 {
			errs = append(errs, fmt.Errorf("impacts[%d]: impact_id must be a positive integer", i))
		}
	}
	return errs
}

func (c *BigFixConfig) validate() []error {
	var errs []error
	if err := validEndpoint(c.Endpoint); err != nil {
		errs = append(errs, err)
	}
	if c.Username == "" || c.Password == "" {
		errs = append(errs, errors.New("username and password are required"))
	}
	if len(c.Tags) == 0 {
		errs = append(errs, errors.New("tags: at least one mapping is required"))
	}
	for i := range c.Tags {
		m := &c.Tags[i]
		if err := m.compile(); err != nil {
			errs = append(errs, fmt.Errorf("tags[%d]: %w", i, err))
		}
		switch {
		case m.Tag == "":
			errs = append(errs, fmt.Errorf("tags[%d]: tag is required", i))
		case m.Tag == bigfix.PlatformTag:
			errs = append(errs, fmt.Errorf("tags[%d]: tag \"platform\" is reserved by BigFix", i))
		case strings.ContainsAny(m.Tag, "/?#"):
			errs = append(errs, fmt.Errorf("tags[%d]: tag must not contain '/', '?' or '#'", i))
		}
		if m.Field == "" && m.Name == "" {
			errs = append(errs, fmt.Errorf("tags[%d]: field is required with regexp", i))
		}
	}
	return errs
}

// defaults fills what the configuration left out; called after Validate.
func (cfg *Config) defaults() {
	if c := cfg.ThreatConnect; c != nil {
		if c.APIPath == "" {
			c.APIPath = "/api"
		}
		for i := range c.Metrics {
			if c.Metrics[i].KeyAttribute == "" {
				c.Metrics[i].KeyAttribute = otelmap.AttrKey
			}
		}
	}
}
