// Package bigfix holds the wire format of HCL BigFix's deployment metrics REST
// API (/work/shared/api/004_eb19efa8c4cd9830.txt, "Deployment Metrics"):
// documents of three fields, tag, metrics ("a collection of metric") and
// lastChanged, where a POST's body, "whatever JSON parseable string", becomes
// the metrics field. It also reads the numeric values out of that collection,
// which the receiver turns into metrics.
package bigfix // import "github.com/custommetrics/bundle/internal/wire/bigfix"

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"

	"github.com/custommetrics/bundle/internal/wire/number"
)

// DocumentsPath is the path of the documents; a document's is
// DocumentsPath + "/" + tag.
const DocumentsPath = "/api/deploymentmetrics"

// PlatformTag is reserved for the server's own figures: it cannot be
// updated through the API.
const PlatformTag = "platform"

// TimeLayout is the lastChanged format of the document's examples ("12 Jan 2018 12:00").
const TimeLayout = "02 Jan 2006 15:04"

// Document is a deployment metrics document.
type Document struct {
	Tag         string          `json:"tag"`
	Metrics     json.RawMessage `json:"metrics"`
	LastChanged string          `json:"lastChanged"`
}

// Metrics turns a POST body into the metrics field: "a collection of metric".
// Any JSON is accepted, as documented, and compacted; an array is kept as the
// collection and anything else becomes its only member.
func Metrics(body []byte) (json.RawMessage, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return nil, errors.New("the body must be JSON")
	}
	if !json.Valid(trimmed) {
		return nil, errors.New("the body is not valid JSON")
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, trimmed); err != nil {
		return nil, err
	}
	if trimmed[0] == '[' {
		return compact.Bytes(), nil
	}
	return json.RawMessage("[" + compact.String() + "]"), nil
}

// Leaf is one numeric value of a metrics collection.
type Leaf struct {
	// Name is "<tag>.<path>", the path joining object keys and array indexes
	// within the member with dots.
	Name string
	// Member is the index of the collection member the value is in.
	Member int
	// Value is always finite.
	Value float64
}

// Leaves lists every numeric leaf (numbers and numeric strings) of the
// metrics collection, as returned by Metrics, named "<tag>.<path>" and keyed
// by the member's index in the collection. A name is the same whether the
// collection has one member or many: a dashboard of "<tag>.<path>" keeps
// working when a second deployment appears. Object keys are visited in
// sorted order.
// A JSON number beyond ±1.8e308 is an error; a string that is not a number
// in JSON's grammar (internal/wire/number) is text, not a metric.
func Leaves(metrics json.RawMessage, tag string) ([]Leaf, error) {
	var root []any
	dec := json.NewDecoder(bytes.NewReader(metrics))
	dec.UseNumber()
	if err := dec.Decode(&root); err != nil {
		return nil, err
	}
	var out []Leaf
	var bad error
	var walk func(member int, prefix string, v any)
	walk = func(member int, prefix string, v any) {
		switch x := v.(type) {
		case map[string]any:
			keys := make([]string, 0, len(x))
			for k := range x {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				walk(member, prefix+"."+k, x[k])
			}
		case []any:
			for i, e := range x {
				walk(member, prefix+"."+strconv.Itoa(i), e)
			}
		case json.Number:
			f, err := number.Parse(x.String())
			if err != nil {
				bad = fmt.Errorf("%s: %w", prefix, err)
				return
			}
			out = append(out, Leaf{prefix, member, f})
		case string:
			if f, err := number.Parse(x); err == nil {
				out = append(out, Leaf{prefix, member, f})
			}
		}
	}
	for i, m := range root {
		walk(i, tag, m)
	}
	return out, bad
}
