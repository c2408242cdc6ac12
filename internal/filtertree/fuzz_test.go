package filtertree

import (
	"encoding/json"
	"testing"
)

func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		`{"op":"and","children":[{"field_op":"eq","key":"os_version","val":"12"}]}`,
		`{}`,
		`{"op":"or","children":[{"field_op":"in","key":"app_version","val":["1","2"]},{"op":"and","children":[]}]}`,
		`{"field_op":"gte","key":"os_version","val":12.5}`,
		`{"op":"and","children":[{"field_op":"contains","key":"k","val":"~"}]}`,
		`null`, `[]`, `{"op":"and"}`,
	} {
		f.Add([]byte(seed), "12.1", "2")
	}
	f.Fuzz(func(t *testing.T, data []byte, osVersion, appVersion string) {
		flt, err := Parse(data, Options{})
		if err != nil {
			return
		}
		attrs := map[string]string{"os_version": osVersion, "app_version": appVersion, "k": osVersion}
		got := flt.Match(attrs)
		// The JSON form parses back into a filter that decides the same way.
		b, err := json.Marshal(flt)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		again, err := Parse(b, Options{})
		if err != nil {
			t.Fatalf("re-parse of %s: %v", b, err)
		}
		if again.Match(attrs) != got {
			t.Fatalf("re-parsed filter %s decides differently", b)
		}
		b2, _ := json.Marshal(again)
		if string(b) != string(b2) {
			t.Fatalf("JSON form not stable: %s vs %s", b, b2)
		}
	})
}
