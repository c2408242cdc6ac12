// Package filtertree is the filter model of Embrace-style derived metrics: a
// tree of "and"/"or" nodes whose leaves compare one attribute with a value
// ({"field_op":"eq","key":"os_version","val":"12"}). The receiver parses and
// validates trees when definitions are created; the aggregate processor
// evaluates them against data point attributes with Match.
//
// JSON form:
//
//	{}                                                   no filter: everything matches
//	{"op":"and","children":[<node>, ...]}               all children match ("and" of none: true)
//	{"op":"or","children":[<node>, ...]}                any child matches ("or" of none: false)
//	{"field_op":"eq","key":"os_version","val":"12"}     a leaf
//
// Leaf operators: eq, neq, gt, gte, lt, lte, in, contains. "val" is a string
// (numbers are accepted and kept as written); for "in" it is an array of them.
// A point that lacks the leaf's attribute matches no leaf, "neq" included.
// gt/gte/lt/lte compare as versions (see Compare): dot-separated parts,
// numeric parts by value ("12.10" > "12.9", "10" > "9"), other parts as text.
package filtertree // import "github.com/custommetrics/bundle/internal/filtertree"

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"go.opentelemetry.io/collector/pdata/pcommon"
)

// Node operators and leaf operators.
const (
	OpAnd = "and"
	OpOr  = "or"

	FieldEq       = "eq"
	FieldNeq      = "neq"
	FieldGt       = "gt"
	FieldGte      = "gte"
	FieldLt       = "lt"
	FieldLte      = "lte"
	FieldIn       = "in"
	FieldContains = "contains"
)

// FieldOps lists the leaf operators.
var FieldOps = []string{FieldEq, FieldNeq, FieldGt, FieldGte, FieldLt, FieldLte, FieldIn, FieldContains}

// Limits on a tree's size.
const (
	MaxDepth = 16
	MaxNodes = 256
)

// Filter is a parsed filter tree. The zero value (and a nil *Filter) matches everything.
type Filter struct {
	root *Node
}

// Node is an inner node (Op set) or a leaf (FieldOp set).
type Node struct {
	Op       string
	Children []*Node

	FieldOp string
	Key     string
	// Vals are the leaf's values as text (one, or several for "in").
	Vals []string
	// raw keeps "val" as written, so a definition echoes what was sent.
	raw json.RawMessage
}

// Options restrict what a tree may use.
type Options struct {
	// AllowedKeys, when non-nil, are the only attribute keys leaves may name.
	AllowedKeys map[string]bool
}

// Parse parses a filter tree from JSON. Empty input, null and {} are the empty filter.
func Parse(data []byte, opts Options) (*Filter, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 || string(trimmed) == "null" {
		return &Filter{}, nil
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("filters: invalid JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("filters: trailing data after the JSON value")
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("filters: must be a JSON object")
	}
	if len(obj) == 0 {
		return &Filter{}, nil
	}
	count := 0
	root, err := parseNode(obj, "filters", 1, &count, opts)
	if err != nil {
		return nil, err
	}
	return &Filter{root: root}, nil
}

func parseNode(obj map[string]any, where string, depth int, count *int, opts Options) (*Node, error) {
	*count++
	if *count > MaxNodes {
		return nil, fmt.Errorf("filters: more than %d nodes", MaxNodes)
	}
	if depth > MaxDepth {
		return nil, fmt.Errorf("filters: deeper than %d levels", MaxDepth)
	}
	_, isInner := obj["op"]
	_, isLeaf := obj["field_op"]
	switch {
	case isInner && isLeaf:
		return nil, fmt.Errorf("%s: a node has either \"op\" (and/or with children) or \"field_op\" (a leaf), not both", where)
	case isInner:
		for k := range obj {
			if k != "op" && k != "children" {
				return nil, fmt.Errorf("%s: unknown member %q in an and/or node", where, k)
			}
		}
		op, _ := obj["op"].(string)
		if op != OpAnd && op != OpOr {
			return nil, fmt.Errorf("%s.op: must be \"and\" or \"or\"", where)
		}
		n := &Node{Op: op, Children: []*Node{}}
		rawChildren, present := obj["children"]
		if !present {
			return nil, fmt.Errorf("%s.children: required with \"op\"", where)
		}
		children, ok := rawChildren.([]any)
		if !ok {
			return nil, fmt.Errorf("%s.children: must be an array", where)
		}
		for i, c := range children {
			co, ok := c.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("%s.children[%d]: must be an object", where, i)
			}
			child, err := parseNode(co, fmt.Sprintf("%s.children[%d]", where, i), depth+1, count, opts)
			if err != nil {
				return nil, err
			}
			n.Children = append(n.Children, child)
		}
		return n, nil
	case isLeaf:
		for k := range obj {
			if k != "field_op" && k != "key" && k != "val" {
				return nil, fmt.Errorf("%s: unknown member %q in a leaf", where, k)
			}
		}
		n := &Node{}
		n.FieldOp, _ = obj["field_op"].(string)
		if !validFieldOp(n.FieldOp) {
			return nil, fmt.Errorf("%s.field_op: must be one of %s", where, strings.Join(FieldOps, ", "))
		}
		key, ok := obj["key"].(string)
		if !ok || key == "" {
			return nil, fmt.Errorf("%s.key: a non-empty string is required", where)
		}
		if opts.AllowedKeys != nil && !opts.AllowedKeys[key] {
			return nil, fmt.Errorf("%s.key: %q cannot be filtered on", where, key)
		}
		n.Key = key
		val, present := obj["val"]
		if !present {
			return nil, fmt.Errorf("%s.val: required", where)
		}
		var err error
		if n.Vals, err = leafValues(val, n.FieldOp == FieldIn); err != nil {
			return nil, fmt.Errorf("%s.val: %v", where, err)
		}
		n.raw, _ = json.Marshal(val)
		return n, nil
	default:
		return nil, fmt.Errorf("%s: a node needs \"op\" (and/or) or \"field_op\" (a leaf)", where)
	}
}

func validFieldOp(op string) bool {
	for _, f := range FieldOps {
		if f == op {
			return true
		}
	}
	return false
}

func scalar(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		return x.String(), true
	}
	return "", false
}

func leafValues(val any, list bool) ([]string, error) {
	if !list {
		s, ok := scalar(val)
		if !ok {
			return nil, errors.New("must be a string or a number")
		}
		return []string{s}, nil
	}
	arr, ok := val.([]any)
	if !ok {
		// A single value is a list of one.
		s, ok := scalar(val)
		if !ok {
			return nil, errors.New(`must be an array of strings or numbers for "in"`)
		}
		return []string{s}, nil
	}
	out := make([]string, 0, len(arr))
	for _, e := range arr {
		s, ok := scalar(e)
		if !ok {
			return nil, errors.New(`must be an array of strings or numbers for "in"`)
		}
		out = append(out, s)
	}
	return out, nil
}

// IsEmpty reports whether the filter matches everything because it has no tree.
func (f *Filter) IsEmpty() bool { return f == nil || f.root == nil }

// Root returns the tree's root, nil for the empty filter.
func (f *Filter) Root() *Node {
	if f == nil {
		return nil
	}
	return f.root
}

// Keys returns the attribute keys the tree's leaves name, each once, in tree order.
func (f *Filter) Keys() []string {
	var keys []string
	seen := map[string]bool{}
	var walk func(n *Node)
	walk = func(n *Node) {
		if n == nil {
			return
		}
		if n.FieldOp != "" && !seen[n.Key] {
			seen[n.Key] = true
			keys = append(keys, n.Key)
		}
		for _, c := range n.Children {
			walk(c)
		}
	}
	walk(f.Root())
	return keys
}

// MarshalJSON writes the tree in its JSON form ({} for the empty filter).
func (f Filter) MarshalJSON() ([]byte, error) {
	if f.root == nil {
		return []byte("{}"), nil
	}
	return json.Marshal(f.root)
}

// UnmarshalJSON parses a tree with no key restrictions (for stored definitions).
func (f *Filter) UnmarshalJSON(data []byte) error {
	parsed, err := Parse(data, Options{})
	if err != nil {
		return err
	}
	*f = *parsed
	return nil
}

// MarshalJSON writes a node in its JSON form.
func (n *Node) MarshalJSON() ([]byte, error) {
	if n.FieldOp != "" {
		raw := n.raw
		if raw == nil {
			if len(n.Vals) == 1 && n.FieldOp != FieldIn {
				raw, _ = json.Marshal(n.Vals[0])
			} else {
				raw, _ = json.Marshal(n.Vals)
			}
		}
		return json.Marshal(struct {
			FieldOp string          `json:"field_op"`
			Key     string          `json:"key"`
			Val     json.RawMessage `json:"val"`
		}{n.FieldOp, n.Key, raw})
	}
	return json.Marshal(struct {
		Op       string  `json:"op"`
		Children []*Node `json:"children"`
	}{n.Op, n.Children})
}

// Match evaluates the filter against a point's attributes.
func (f *Filter) Match(attrs map[string]string) bool {
	if f.IsEmpty() {
		return true
	}
	return f.root.eval(func(k string) (string, bool) {
		v, ok := attrs[k]
		return v, ok
	})
}

// MatchMap evaluates the filter against pdata attributes (values as their string form).
func (f *Filter) MatchMap(attrs pcommon.Map) bool {
	if f.IsEmpty() {
		return true
	}
	return f.root.eval(func(k string) (string, bool) {
		v, ok := attrs.Get(k)
		if !ok {
			return "", false
		}
		return v.AsString(), true
	})
}

func (n *Node) eval(get func(string) (string, bool)) bool {
	switch n.Op {
	case OpAnd:
		for _, c := range n.Children {
			if !c.eval(get) {
				return false
			}
		}
		return true
	case OpOr:
		for _, c := range n.Children {
			if c.eval(get) {
				return true
			}
		}
		return false
	}
	v, ok := get(n.Key)
	if !ok {
		return false
	}
	switch n.FieldOp {
	case FieldEq:
		return v == n.Vals[0]
	case FieldNeq:
		return v != n.Vals[0]
	case FieldIn:
		for _, want := range n.Vals {
			if v == want {
				return true
			}
		}
		return false
	case FieldContains:
		return strings.Contains(v, n.Vals[0])
	case FieldGt:
		return Compare(v, n.Vals[0]) > 0
	case FieldGte:
		return Compare(v, n.Vals[0]) >= 0
	case FieldLt:
		return Compare(v, n.Vals[0]) < 0
	case FieldLte:
		return Compare(v, n.Vals[0]) <= 0
	}
	return false
}

// Compare orders two attribute values as versions: dot-separated parts,
// compared in turn, numerically when both parts are numbers ("12.10" > "12.9",
// "10" > "9"), otherwise as text (numbers sort before text); a value that is a
// prefix of the other sorts first ("12" < "12.0.1"). It returns -1, 0 or +1.
func Compare(a, b string) int {
	if a == b {
		return 0
	}
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(pa) || i < len(pb); i++ {
		if i >= len(pa) {
			return -1
		}
		if i >= len(pb) {
			return 1
		}
		if c := comparePart(pa[i], pb[i]); c != 0 {
			return c
		}
	}
	return 0
}

func comparePart(a, b string) int {
	na, errA := strconv.ParseFloat(a, 64)
	nb, errB := strconv.ParseFloat(b, 64)
	switch {
	case errA == nil && errB == nil:
		switch {
		case na < nb:
			return -1
		case na > nb:
			return 1
		}
		return 0
	case errA == nil: // numbers before text
		return -1
	case errB == nil:
		return 1
	}
	return strings.Compare(a, b)
}
