package launchdarkly

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/custommetrics/bundle/internal/calendar"
)

// Event kinds the receiver turns into values; every other kind (index,
// identify, feature, debug, summary, ...) is accepted and ignored.
const (
	EventCustom   = "custom"
	EventPageview = "pageview"
	EventClick    = "click"
)

// Event is one analytics event of interest from an SDK's /bulk payload.
type Event struct {
	Kind string `json:"kind"`
	// CreationDate is unix milliseconds; 0 when absent.
	CreationDate float64 `json:"creationDate"`
	// Key is the event key (custom) or the metric key (pageview/click, as the JavaScript SDK sends them).
	Key         string   `json:"key"`
	MetricValue *float64 `json:"metricValue"`
	// Context (current SDKs) or ContextKeys (older ones) say who acted.
	Context     json.RawMessage   `json:"context"`
	ContextKeys map[string]string `json:"contextKeys"`
	URL         string            `json:"url"`
	Selector    string            `json:"selector"`
}

// MaxEvents bounds one payload.
const MaxEvents = 10000

// ParseEvents reads a /bulk payload (a JSON array of events) and returns the
// custom, pageview and click events. Events of other kinds are skipped
// without looking further; an event of interest that is malformed fails the
// whole payload, so nothing of it is counted.
func ParseEvents(body []byte) ([]Event, error) {
	var raws []json.RawMessage
	if err := json.Unmarshal(body, &raws); err != nil {
		return nil, fmt.Errorf("an events payload must be a JSON array: %v", err)
	}
	if len(raws) > MaxEvents {
		return nil, fmt.Errorf("at most %d events per payload", MaxEvents)
	}
	var out []Event
	for i, raw := range raws {
		var head struct {
			Kind string `json:"kind"`
		}
		if err := json.Unmarshal(raw, &head); err != nil {
			return nil, fmt.Errorf("event %d: not an object with a kind: %v", i, err)
		}
		if head.Kind != EventCustom && head.Kind != EventPageview && head.Kind != EventClick {
			continue
		}
		var e Event
		if err := json.Unmarshal(raw, &e); err != nil {
			return nil, fmt.Errorf("event %d (%s): %v", i, head.Kind, err)
		}
		if err := e.validate(); err != nil {
			return nil, fmt.Errorf("event %d (%s): %v", i, head.Kind, err)
		}
		out = append(out, e)
	}
	return out, nil
}

func (e Event) validate() error {
	// Unix milliseconds; 0 is "absent". Beyond the supported range the
	// nanoseconds of OTLP would overflow (1e15 ms is the year 33658).
	if e.CreationDate < 0 || e.CreationDate > 0 && (e.CreationDate >= float64(calendar.MaxTime.UnixMilli()) || math.IsNaN(e.CreationDate)) {
		return fmt.Errorf("creationDate is out of range: unix milliseconds before %d (%s) are supported", calendar.MaxTime.UnixMilli(), calendar.MaxTime.Format(time.DateOnly))
	}
	if t := bytes.TrimSpace(e.Context); len(t) > 0 && t[0] != '{' && string(t) != "null" {
		return errors.New("context must be an object")
	}
	switch e.Kind {
	case EventCustom:
		if e.Key == "" {
			return errors.New("key is required")
		}
	case EventPageview, EventClick:
		if e.URL == "" && e.Key == "" {
			return errors.New("url or key is required")
		}
	}
	return nil
}
