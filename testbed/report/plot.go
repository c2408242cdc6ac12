// Package report writes the testbed's Markdown report and its PNG plots
// (drawn with the standard library's image packages).
package report

import (
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"strconv"
	"unicode"
)

// Series is one line of a plot.
type Series struct {
	Name   string
	X, Y   []float64
	Dashed bool
}

// Plot is a line chart.
type Plot struct {
	Title, XLabel, YLabel string
	Series                []Series
	Width, Height         int
}

var palette = []color.RGBA{
	{31, 119, 180, 255}, {214, 39, 40, 255}, {44, 160, 44, 255}, {255, 127, 14, 255},
	{148, 103, 189, 255}, {140, 86, 75, 255}, {23, 190, 207, 255}, {127, 127, 127, 255},
}

const scale = 2 // font pixel size

type canvas struct{ *image.RGBA }

func (c canvas) dot(x, y int, col color.RGBA, w int) {
	for dx := -w / 2; dx <= w/2; dx++ {
		for dy := -w / 2; dy <= w/2; dy++ {
			c.SetRGBA(x+dx, y+dy, col)
		}
	}
}

func (c canvas) line(x0, y0, x1, y1 int, col color.RGBA, w int, dashed bool) {
	dx, dy := math.Abs(float64(x1-x0)), math.Abs(float64(y1-y0))
	n := int(math.Max(dx, dy))
	for i := 0; i <= n; i++ {
		if dashed && (i/6)%2 == 1 {
			continue
		}
		t := 0.0
		if n > 0 {
			t = float64(i) / float64(n)
		}
		c.dot(x0+int(math.Round(t*float64(x1-x0))), y0+int(math.Round(t*float64(y1-y0))), col, w)
	}
}

// text draws s with its top-left corner at (x, y); returns its width.
func (c canvas) text(x, y int, s string, col color.RGBA) int {
	cx := x
	for _, r := range s {
		g, ok := glyphs[unicode.ToUpper(r)]
		if !ok {
			g = glyphs[' ']
		}
		for row := 0; row < 5; row++ {
			for colIdx := 0; colIdx < 3; colIdx++ {
				if g[row][colIdx] == '#' {
					for sx := 0; sx < scale; sx++ {
						for sy := 0; sy < scale; sy++ {
							c.SetRGBA(cx+colIdx*scale+sx, y+row*scale+sy, col)
						}
					}
				}
			}
		}
		cx += 4 * scale
	}
	return cx - x
}

func textWidth(s string) int { return len([]rune(s)) * 4 * scale }

// niceMax rounds v up to 1, 2 or 5 times a power of ten.
func niceMax(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

// Fmt formats an axis value compactly (12k, 1.5M, 0.25).
func Fmt(v float64) string {
	switch a := math.Abs(v); {
	case a >= 1e6:
		return strconv.FormatFloat(v/1e6, 'g', 3, 64) + "M"
	case a >= 1e3:
		return strconv.FormatFloat(v/1e3, 'g', 3, 64) + "k"
	default:
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
}

// Encode draws the plot as a PNG.
func (p *Plot) Encode(w io.Writer) error {
	W, H := p.Width, p.Height
	if W == 0 {
		W, H = 800, 500
	}
	img := canvas{image.NewRGBA(image.Rect(0, 0, W, H))}
	black, grey := color.RGBA{0, 0, 0, 255}, color.RGBA{220, 220, 220, 255}
	for i := range img.Pix {
		img.Pix[i] = 255
	}
	left, right, top, bottom := 80, W-30, 40, H-60
	var xmax, ymax float64
	for _, s := range p.Series {
		for i := range s.X {
			xmax = math.Max(xmax, s.X[i])
			ymax = math.Max(ymax, s.Y[i])
		}
	}
	xmax, ymax = niceMax(xmax), niceMax(ymax)
	px := func(x float64) int { return left + int(x/xmax*float64(right-left)) }
	py := func(y float64) int { return bottom - int(y/ymax*float64(bottom-top)) }
	for i := 0; i <= 5; i++ {
		xv, yv := xmax*float64(i)/5, ymax*float64(i)/5
		img.line(px(xv), top, px(xv), bottom, grey, 1, false)
		img.line(left, py(yv), right, py(yv), grey, 1, false)
		l := Fmt(xv)
		img.text(px(xv)-textWidth(l)/2, bottom+8, l, black)
		l = Fmt(yv)
		img.text(left-8-textWidth(l), py(yv)-5, l, black)
	}
	img.line(left, bottom, right, bottom, black, 1, false)
	img.line(left, top, left, bottom, black, 1, false)
	img.text((W-textWidth(p.Title))/2, 12, p.Title, black)
	img.text((left+right-textWidth(p.XLabel))/2, bottom+30, p.XLabel, black)
	img.text(8, top-24, p.YLabel, black)
	ly := top + 8
	for i, s := range p.Series {
		col := palette[i%len(palette)]
		for j := range s.X {
			if j > 0 {
				img.line(px(s.X[j-1]), py(s.Y[j-1]), px(s.X[j]), py(s.Y[j]), col, 2, s.Dashed)
			}
			img.dot(px(s.X[j]), py(s.Y[j]), col, 6)
		}
		img.line(left+16, ly+5, left+40, ly+5, col, 3, s.Dashed)
		img.text(left+48, ly, s.Name, black)
		ly += 16
	}
	return png.Encode(w, img.RGBA)
}
