package report

import (
	"bytes"
	"image/png"
	"testing"
)

func TestPlotEncodes(t *testing.T) {
	p := &Plot{Title: "Throughput", XLabel: "offered", YLabel: "req/s", Series: []Series{
		{Name: "a", X: []float64{1000, 2000, 5000}, Y: []float64{1000, 1900, 3000}},
		{Name: "b p99", X: []float64{1000, 5000}, Y: []float64{2, 8}, Dashed: true},
	}}
	var buf bytes.Buffer
	if err := p.Encode(&buf); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 800 || b.Dy() != 500 {
		t.Fatalf("size %v", b)
	}
	if Fmt(12500) != "12.5k" || Fmt(2e6) != "2M" || Fmt(0.25) != "0.25" {
		t.Fatal(Fmt(12500), Fmt(2e6), Fmt(0.25))
	}
}
