// Package jsonpatch parses and applies JSON Patch documents (RFC 6902) with
// JSON Pointers (RFC 6901). A patch is validated as a whole before it is
// applied, and Apply works on a copy: a patch applies completely or not at all.
//
// Documents are the values encoding/json produces when decoding into any with
// UseNumber: map[string]any, []any, string, json.Number, bool and nil.
package jsonpatch // import "github.com/custommetrics/bundle/internal/jsonpatch"

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Operation names.
const (
	OpAdd     = "add"
	OpRemove  = "remove"
	OpReplace = "replace"
	OpMove    = "move"
	OpCopy    = "copy"
	OpTest    = "test"
)

// Limits keep a hostile patch from costing more than a small one.
const (
	MaxOperations = 1000
	maxDepth      = 64
)

// Operation is one JSON Patch operation.
type Operation struct {
	Op    string  `json:"op"`
	Path  Pointer `json:"path"`
	From  Pointer `json:"from,omitempty"`
	Value any     `json:"value,omitempty"`
	// HasValue tells an explicit "value": null from a missing value.
	HasValue bool `json:"-"`
}

// Patch is a validated list of operations.
type Patch []Operation

// ErrTestFailed is returned (wrapped) by Apply when a test operation does not hold.
var ErrTestFailed = errors.New("test operation failed")

// Error is a patch that cannot be parsed or applied; Index is the operation at fault (-1: the whole patch).
type Error struct {
	Index int
	Err   error
}

func (e *Error) Error() string {
	if e.Index < 0 {
		return e.Err.Error()
	}
	return fmt.Sprintf("operation %d: %v", e.Index, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Pointer is a parsed JSON Pointer; the empty pointer is the whole document.
type Pointer []string

// ParsePointer parses a JSON Pointer (RFC 6901).
func ParsePointer(s string) (Pointer, error) {
	if s == "" {
		return Pointer{}, nil
	}
	if s[0] != '/' {
		return nil, fmt.Errorf("invalid JSON pointer %q: must be empty or start with '/'", s)
	}
	parts := strings.Split(s[1:], "/")
	for i, p := range parts {
		if strings.Contains(p, "~") {
			for j := 0; j < len(p); j++ {
				if p[j] == '~' && (j+1 == len(p) || (p[j+1] != '0' && p[j+1] != '1')) {
					return nil, fmt.Errorf("invalid JSON pointer %q: '~' must be followed by '0' or '1'", s)
				}
			}
			p = strings.ReplaceAll(strings.ReplaceAll(p, "~1", "/"), "~0", "~")
		}
		parts[i] = p
	}
	if len(parts) > maxDepth {
		return nil, fmt.Errorf("invalid JSON pointer: deeper than %d", maxDepth)
	}
	return Pointer(parts), nil
}

// String formats the pointer back into RFC 6901 syntax.
func (p Pointer) String() string {
	var b strings.Builder
	for _, t := range p {
		b.WriteByte('/')
		b.WriteString(strings.ReplaceAll(strings.ReplaceAll(t, "~", "~0"), "/", "~1"))
	}
	return b.String()
}

// MarshalJSON writes the pointer as its string.
func (p Pointer) MarshalJSON() ([]byte, error) { return json.Marshal(p.String()) }

// IsPrefixOf reports whether p is q or an ancestor of q.
func (p Pointer) IsPrefixOf(q Pointer) bool {
	if len(p) > len(q) {
		return false
	}
	for i := range p {
		if p[i] != q[i] {
			return false
		}
	}
	return true
}

type rawOperation struct {
	Op    *string         `json:"op"`
	Path  *string         `json:"path"`
	From  *string         `json:"from"`
	Value json.RawMessage `json:"value"`
}

// Parse reads a JSON Patch document: a JSON array of operations. Every
// operation is checked (known op, valid pointers, a value where one is
// required); the first fault is returned as an *Error.
func Parse(data []byte) (Patch, error) {
	var raws []json.RawMessage
	if err := json.Unmarshal(data, &raws); err != nil {
		return nil, &Error{Index: -1, Err: fmt.Errorf("a JSON Patch must be a JSON array of operations: %v", err)}
	}
	return ParseOperations(raws)
}

// ParseOperations checks operations already split out of a JSON array.
func ParseOperations(raws []json.RawMessage) (Patch, error) {
	if len(raws) > MaxOperations {
		return nil, &Error{Index: -1, Err: fmt.Errorf("a patch may hold at most %d operations", MaxOperations)}
	}
	patch := make(Patch, 0, len(raws))
	for i, raw := range raws {
		op, err := parseOperation(raw)
		if err != nil {
			return nil, &Error{Index: i, Err: err}
		}
		patch = append(patch, op)
	}
	return patch, nil
}

func parseOperation(raw json.RawMessage) (Operation, error) {
	var r rawOperation
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&r); err != nil {
		return Operation{}, fmt.Errorf("not a JSON object with op, path, from and value: %v", err)
	}
	if bytes.TrimSpace(raw)[0] != '{' {
		return Operation{}, errors.New("an operation must be a JSON object")
	}
	if r.Op == nil {
		return Operation{}, errors.New(`"op" is required`)
	}
	if r.Path == nil {
		return Operation{}, errors.New(`"path" is required`)
	}
	var op Operation
	op.Op = *r.Op
	var err error
	if op.Path, err = ParsePointer(*r.Path); err != nil {
		return Operation{}, err
	}
	switch op.Op {
	case OpAdd, OpReplace, OpTest:
		if r.Value == nil {
			return Operation{}, fmt.Errorf(`"value" is required for %q`, op.Op)
		}
		if op.Value, err = decodeValue(r.Value); err != nil {
			return Operation{}, fmt.Errorf(`invalid "value": %v`, err)
		}
		op.HasValue = true
	case OpRemove:
	case OpMove, OpCopy:
		if r.From == nil {
			return Operation{}, fmt.Errorf(`"from" is required for %q`, op.Op)
		}
		if op.From, err = ParsePointer(*r.From); err != nil {
			return Operation{}, err
		}
		if op.Op == OpMove && op.From.IsPrefixOf(op.Path) && len(op.From) < len(op.Path) {
			return Operation{}, errors.New(`"move" cannot move a value into one of its own children`)
		}
	default:
		return Operation{}, fmt.Errorf("unknown op %q (add, remove, replace, move, copy, test)", op.Op)
	}
	return op, nil
}

// decodeValue decodes one JSON value with numbers kept as json.Number.
func decodeValue(raw []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data after the value")
	}
	return v, nil
}

// Decode decodes a JSON document the way Apply expects it (numbers as json.Number).
func Decode(data []byte) (any, error) { return decodeValue(data) }

// Apply applies the patch to a copy of doc and returns the result; doc is
// never modified. On error nothing is returned: the patch applies atomically.
// A failing test operation yields an error wrapping ErrTestFailed.
func (p Patch) Apply(doc any) (any, error) {
	out := DeepCopy(doc)
	for i, op := range p {
		var err error
		switch op.Op {
		case OpAdd:
			out, err = add(out, op.Path, DeepCopy(op.Value))
		case OpRemove:
			out, _, err = remove(out, op.Path)
		case OpReplace:
			if _, err = get(out, op.Path); err == nil {
				out, _, _ = remove(out, op.Path)
				out, err = add(out, op.Path, DeepCopy(op.Value))
			}
		case OpMove:
			var v any
			if out, v, err = remove(out, op.From); err == nil {
				out, err = add(out, op.Path, v)
			}
		case OpCopy:
			var v any
			if v, err = get(out, op.From); err == nil {
				out, err = add(out, op.Path, DeepCopy(v))
			}
		case OpTest:
			var v any
			if v, err = get(out, op.Path); err == nil && !Equal(v, op.Value) {
				err = fmt.Errorf("%w: the value at %q is not the expected one", ErrTestFailed, op.Path.String())
			} else if err != nil {
				err = fmt.Errorf("%w: %v", ErrTestFailed, err)
			}
		default:
			err = fmt.Errorf("unknown op %q", op.Op)
		}
		if err != nil {
			return nil, &Error{Index: i, Err: err}
		}
	}
	return out, nil
}

func arrayIndex(tok string, n int, allowEnd bool) (int, error) {
	if allowEnd && tok == "-" {
		return n, nil
	}
	if tok == "" || (len(tok) > 1 && tok[0] == '0') || strings.TrimLeft(tok, "0123456789") != "" {
		return 0, fmt.Errorf("invalid array index %q", tok)
	}
	i, err := strconv.Atoi(tok)
	if err != nil {
		return 0, fmt.Errorf("invalid array index %q", tok)
	}
	max := n - 1
	if allowEnd {
		max = n
	}
	if i > max {
		return 0, fmt.Errorf("array index %d out of bounds", i)
	}
	return i, nil
}

func get(doc any, p Pointer) (any, error) {
	cur := doc
	for i, tok := range p {
		switch c := cur.(type) {
		case map[string]any:
			v, ok := c[tok]
			if !ok {
				return nil, fmt.Errorf("path %q does not exist", p[:i+1].String())
			}
			cur = v
		case []any:
			idx, err := arrayIndex(tok, len(c), false)
			if err != nil {
				return nil, fmt.Errorf("path %q: %v", p[:i+1].String(), err)
			}
			cur = c[idx]
		default:
			return nil, fmt.Errorf("path %q does not exist", p[:i+1].String())
		}
	}
	return cur, nil
}

// add sets v at p and returns the (possibly new) root.
func add(doc any, p Pointer, v any) (any, error) {
	if len(p) == 0 {
		return v, nil
	}
	parent, err := get(doc, p[:len(p)-1])
	if err != nil {
		return nil, err
	}
	last := p[len(p)-1]
	switch c := parent.(type) {
	case map[string]any:
		c[last] = v
		return doc, nil
	case []any:
		idx, err := arrayIndex(last, len(c), true)
		if err != nil {
			return nil, fmt.Errorf("path %q: %v", p.String(), err)
		}
		grown := make([]any, 0, len(c)+1)
		grown = append(append(append(grown, c[:idx]...), v), c[idx:]...)
		return set(doc, p[:len(p)-1], grown)
	default:
		return nil, fmt.Errorf("path %q: parent is not an object or array", p.String())
	}
}

// remove deletes the value at p and returns the new root and the removed value.
func remove(doc any, p Pointer) (any, any, error) {
	if len(p) == 0 {
		return nil, nil, errors.New("cannot remove the whole document")
	}
	parent, err := get(doc, p[:len(p)-1])
	if err != nil {
		return nil, nil, err
	}
	last := p[len(p)-1]
	switch c := parent.(type) {
	case map[string]any:
		v, ok := c[last]
		if !ok {
			return nil, nil, fmt.Errorf("path %q does not exist", p.String())
		}
		delete(c, last)
		return doc, v, nil
	case []any:
		idx, err := arrayIndex(last, len(c), false)
		if err != nil {
			return nil, nil, fmt.Errorf("path %q: %v", p.String(), err)
		}
		v := c[idx]
		shrunk := append(append(make([]any, 0, len(c)-1), c[:idx]...), c[idx+1:]...)
		root, err := set(doc, p[:len(p)-1], shrunk)
		return root, v, err
	default:
		return nil, nil, fmt.Errorf("path %q does not exist", p.String())
	}
}

// set replaces the value at an existing location p (used for arrays, which change identity).
func set(doc any, p Pointer, v any) (any, error) {
	if len(p) == 0 {
		return v, nil
	}
	parent, err := get(doc, p[:len(p)-1])
	if err != nil {
		return nil, err
	}
	last := p[len(p)-1]
	switch c := parent.(type) {
	case map[string]any:
		c[last] = v
	case []any:
		idx, err := arrayIndex(last, len(c), false)
		if err != nil {
			return nil, err
		}
		c[idx] = v
	}
	return doc, nil
}

// DeepCopy copies a decoded JSON document.
func DeepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = DeepCopy(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = DeepCopy(e)
		}
		return out
	}
	return v
}

// Equal compares two decoded JSON values as RFC 6902's test does: numbers by
// value (1 equals 1.0), objects regardless of member order, arrays in order.
func Equal(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, e := range x {
			f, ok := y[k]
			if !ok || !Equal(e, f) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !Equal(x[i], y[i]) {
				return false
			}
		}
		return true
	case json.Number, float64, int, int64:
		xf, ok1 := toFloat(x)
		yf, ok2 := toFloat(b)
		if ok1 && ok2 {
			return xf == yf
		}
		xn, okx := x.(json.Number)
		yn, oky := b.(json.Number)
		return okx && oky && xn == yn // out of float range: compare as written
	case string:
		y, ok := b.(string)
		return ok && x == y
	case bool:
		y, ok := b.(bool)
		return ok && x == y
	case nil:
		return b == nil
	}
	return false
}

func toFloat(v any) (float64, bool) {
	switch n := v.(type) {
	case json.Number:
		f, err := strconv.ParseFloat(string(n), 64)
		return f, err == nil
	case float64:
		return n, true
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	}
	return 0, false
}
