package jsonpatch

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func apply(t *testing.T, doc, patch string) (string, error) {
	t.Helper()
	d, err := Decode([]byte(doc))
	require.NoError(t, err)
	p, err := Parse([]byte(patch))
	if err != nil {
		return "", err
	}
	out, err := p.Apply(d)
	if err != nil {
		return "", err
	}
	b, err := json.Marshal(out)
	require.NoError(t, err)
	return string(b), nil
}

// The examples of RFC 6902, Appendix A.
func TestRFC6902Examples(t *testing.T) {
	tests := []struct{ name, doc, patch, want, err string }{
		{"A.1 add object member", `{"foo":"bar"}`, `[{"op":"add","path":"/baz","value":"qux"}]`, `{"baz":"qux","foo":"bar"}`, ""},
		{"A.2 add array element", `{"foo":["bar","baz"]}`, `[{"op":"add","path":"/foo/1","value":"qux"}]`, `{"foo":["bar","qux","baz"]}`, ""},
		{"A.3 remove object member", `{"baz":"qux","foo":"bar"}`, `[{"op":"remove","path":"/baz"}]`, `{"foo":"bar"}`, ""},
		{"A.4 remove array element", `{"foo":["bar","qux","baz"]}`, `[{"op":"remove","path":"/foo/1"}]`, `{"foo":["bar","baz"]}`, ""},
		{"A.5 replace", `{"baz":"qux","foo":"bar"}`, `[{"op":"replace","path":"/baz","value":"boo"}]`, `{"baz":"boo","foo":"bar"}`, ""},
		{"A.6 move value", `{"foo":{"bar":"baz","waldo":"fred"},"qux":{"corge":"grault"}}`, `[{"op":"move","from":"/foo/waldo","path":"/qux/thud"}]`, `{"foo":{"bar":"baz"},"qux":{"corge":"grault","thud":"fred"}}`, ""},
		{"A.7 move array element", `{"foo":["all","grass","cows","eat"]}`, `[{"op":"move","from":"/foo/1","path":"/foo/3"}]`, `{"foo":["all","cows","eat","grass"]}`, ""},
		{"A.8 test success", `{"baz":"qux","foo":["a",2,"c"]}`, `[{"op":"test","path":"/baz","value":"qux"},{"op":"test","path":"/foo/1","value":2}]`, `{"baz":"qux","foo":["a",2,"c"]}`, ""},
		{"A.9 test error", `{"baz":"qux"}`, `[{"op":"test","path":"/baz","value":"bar"}]`, "", "test operation failed"},
		{"A.10 add nested member", `{"foo":"bar"}`, `[{"op":"add","path":"/child","value":{"grandchild":{}}}]`, `{"child":{"grandchild":{}},"foo":"bar"}`, ""},
		{"A.11 ignore unrecognized elements", `{"foo":"bar"}`, `[{"op":"add","path":"/baz","value":"qux","xyz":123}]`, `{"baz":"qux","foo":"bar"}`, ""},
		{"A.12 add to nonexistent target", `{"foo":"bar"}`, `[{"op":"add","path":"/baz/bat","value":"qux"}]`, "", "does not exist"},
		{"A.14 ~ escape ordering", `{"/":9,"~1":10}`, `[{"op":"test","path":"/~01","value":10}]`, `{"/":9,"~1":10}`, ""},
		{"A.15 comparing strings and numbers", `{"/":9,"~1":10}`, `[{"op":"test","path":"/~01","value":"10"}]`, "", "test operation failed"},
		{"A.16 add array value", `{"foo":["bar"]}`, `[{"op":"add","path":"/foo/-","value":["abc","def"]}]`, `{"foo":["bar",["abc","def"]]}`, ""},
		{"numbers compare by value", `{"n":1}`, `[{"op":"test","path":"/n","value":1.0}]`, `{"n":1}`, ""},
		{"copy", `{"a":{"b":1}}`, `[{"op":"copy","from":"/a","path":"/c"}]`, `{"a":{"b":1},"c":{"b":1}}`, ""},
		{"replace missing", `{"a":1}`, `[{"op":"replace","path":"/b","value":2}]`, "", "does not exist"},
		{"remove out of bounds", `{"a":[1]}`, `[{"op":"remove","path":"/a/1"}]`, "", "out of bounds"},
		{"leading zero index", `{"a":[1,2]}`, `[{"op":"remove","path":"/a/01"}]`, "", "invalid array index"},
		{"replace root", `{"a":1}`, `[{"op":"replace","path":"","value":{"b":2}}]`, `{"b":2}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := apply(t, tt.doc, tt.patch)
			if tt.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.err)
				return
			}
			require.NoError(t, err)
			assert.JSONEq(t, tt.want, got)
		})
	}
}

func TestParseRefusesBadOperations(t *testing.T) {
	for patch, msg := range map[string]string{
		`{"op":"add"}`:                              "JSON array",
		`[{"path":"/a","value":1}]`:                 `"op" is required`,
		`[{"op":"add","value":1}]`:                  `"path" is required`,
		`[{"op":"add","path":"/a"}]`:                `"value" is required`,
		`[{"op":"move","path":"/a"}]`:               `"from" is required`,
		`[{"op":"jump","path":"/a"}]`:               "unknown op",
		`[{"op":"add","path":"a","value":1}]`:       "must be empty or start with '/'",
		`[{"op":"add","path":"/a~2","value":1}]`:    "'~' must be followed",
		`[{"op":"move","from":"/a","path":"/a/b"}]`: "its own children",
		`[1]`: "operation 0",
		`[{"op":"test","path":"/a","value":1}, "x"]`:    "operation 1",
		`[{"op":"add","path":"/a","value":1} trailing]`: "JSON array",
	} {
		_, err := Parse([]byte(patch))
		require.Error(t, err, patch)
		assert.Contains(t, err.Error(), msg, patch)
		var pe *Error
		assert.True(t, errors.As(err, &pe))
	}
}

func TestApplyIsAtomicAndLeavesInputAlone(t *testing.T) {
	doc, err := Decode([]byte(`{"name":"a","tags":["x"]}`))
	require.NoError(t, err)
	p, err := Parse([]byte(`[{"op":"replace","path":"/name","value":"b"},{"op":"add","path":"/tags/-","value":"y"},{"op":"test","path":"/name","value":"a"}]`))
	require.NoError(t, err)
	_, err = p.Apply(doc)
	require.ErrorIs(t, err, ErrTestFailed)
	b, _ := json.Marshal(doc)
	assert.JSONEq(t, `{"name":"a","tags":["x"]}`, string(b), "a failed patch changes nothing")

	p, err = Parse([]byte(`[{"op":"replace","path":"/name","value":"b"},{"op":"add","path":"/tags/-","value":"y"}]`))
	require.NoError(t, err)
	out, err := p.Apply(doc)
	require.NoError(t, err)
	b, _ = json.Marshal(out)
	assert.JSONEq(t, `{"name":"b","tags":["x","y"]}`, string(b))
	b, _ = json.Marshal(doc)
	assert.JSONEq(t, `{"name":"a","tags":["x"]}`, string(b), "Apply works on a copy")
}

func TestPointerRoundTrip(t *testing.T) {
	for _, s := range []string{"", "/", "/a/b", "/~0~1", "/a~1b/0", "/ "} {
		p, err := ParsePointer(s)
		require.NoError(t, err)
		assert.Equal(t, s, p.String())
	}
}
