package jsonpatch

import (
	"encoding/json"
	"testing"
)

func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		`[{"op":"replace","path":"/name","value":"my-updated-metric"}]`,
		`[{"op":"add","path":"/tags/-","value":"a"},{"op":"remove","path":"/description"}]`,
		`[{"op":"move","from":"/a","path":"/b"},{"op":"copy","from":"/b","path":"/c"},{"op":"test","path":"/c","value":null}]`,
		`[{"op":"add","path":"/~01","value":1e400}]`,
		`[]`, `{}`, `[1]`, `[{"op":"add","path":"/a"}]`,
	} {
		f.Add([]byte(seed), []byte(`{"name":"m","tags":["x"],"urls":[{"kind":"substring","substring":"foo"}],"a":1}`))
	}
	f.Fuzz(func(t *testing.T, patch, doc []byte) {
		p, err := Parse(patch)
		if err != nil {
			return
		}
		for _, op := range p {
			q, err := ParsePointer(op.Path.String())
			if err != nil || q.String() != op.Path.String() {
				t.Fatalf("pointer %q does not round-trip", op.Path.String())
			}
		}
		d, err := Decode(doc)
		if err != nil {
			return
		}
		before, _ := json.Marshal(d)
		out, err := p.Apply(d)
		after, _ := json.Marshal(d)
		if string(before) != string(after) {
			t.Fatalf("Apply modified its input")
		}
		if err == nil {
			if _, err := json.Marshal(out); err != nil {
				t.Fatalf("result does not encode: %v", err)
			}
		}
	})
}
