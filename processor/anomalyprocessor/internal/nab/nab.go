// Package nab loads the labelled NAB corpus (data/<category>/<file>.csv and
// labels/combined_windows.json) and scores per-row anomaly scores the way
// NAB's scorer does at a fixed threshold, for any subset of the files. It
// exists so that the detector's parameters can be chosen and checked by
// leave-one-category-out validation (Rotate) without running NAB's Python
// scorer once per candidate; TestMatchesScorePy checks it against
// ../shared/nab/score.py.
package nab

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Profile is one of NAB's scoring profiles (weights of a true positive, a
// missed window and a false positive).
type Profile struct {
	Name       string
	TP, FN, FP float64
}

// Profiles are NAB's three profiles: standard, reward low FP, reward low FN.
var Profiles = [3]Profile{
	{"standard", 1, 1, 0.11},
	{"lowFP", 1, 1, 0.22},
	{"lowFN", 1, 2, 0.11},
}

const probationFraction = 0.15

// File is one labelled series.
type File struct {
	Rel      string // <category>/<file>.csv
	Category string
	Times    []int64   // unix seconds
	Values   []float64 // one per row
	start    int       // first scored row (after the probationary period)
	window   []int32   // per row: window number within the file, -1 outside
	reward   []float64 // per row: NAB's unweighted sigmoid reward
	nWindows int       // labelled windows
	scorable int       // windows with at least one scored row
}

// Corpus is a set of labelled files, sorted by Rel.
type Corpus struct {
	Files []*File
}

// Categories returns the distinct categories, sorted.
func (c *Corpus) Categories() []string {
	var out []string
	for _, f := range c.Files {
		if len(out) == 0 || out[len(out)-1] != f.Category {
			out = append(out, f.Category)
		}
	}
	return out
}

// Load reads dir/data/**/*.csv and dir/labels/combined_windows.json (NAB's
// layout); every file listed in the labels must exist.
func Load(dir string) (*Corpus, error) {
	b, err := os.ReadFile(filepath.Join(dir, "labels", "combined_windows.json"))
	if err != nil {
		return nil, err
	}
	var labels map[string][][2]string
	if err := json.Unmarshal(b, &labels); err != nil {
		return nil, fmt.Errorf("labels: %w", err)
	}
	if len(labels) == 0 {
		return nil, errors.New("labels: no files")
	}
	c := &Corpus{}
	for rel, wins := range labels {
		f, err := readFile(filepath.Join(dir, "data", filepath.FromSlash(rel)))
		if err != nil {
			return nil, err
		}
		f.Rel = rel
		f.Category, _, _ = strings.Cut(rel, "/")
		if err := f.label(wins); err != nil {
			return nil, fmt.Errorf("%s: %w", rel, err)
		}
		c.Files = append(c.Files, f)
	}
	sort.Slice(c.Files, func(i, j int) bool { return c.Files[i].Rel < c.Files[j].Rel })
	return c, nil
}

// ReadDir reads every *.csv file under dir (recursively) without labels.
func ReadDir(dir string) (*Corpus, error) {
	c := &Corpus{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.EqualFold(filepath.Ext(p), ".csv") {
			return err
		}
		f, err := readFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		f.Rel = filepath.ToSlash(rel)
		f.Category, _, _ = strings.Cut(f.Rel, "/")
		c.Files = append(c.Files, f)
		return nil
	})
	return c, err
}

func readFile(path string) (*File, error) {
	in, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	f := &File{}
	err = ReadCSV(in, path, func(_, _ string, ts time.Time, v float64) error {
		f.Times = append(f.Times, ts.Unix())
		f.Values = append(f.Values, v)
		return nil
	})
	return f, err
}

// ReadCSV reads a NAB data file from r: a header naming the columns
// timestamp and value (in any order, among others), then one row per line.
// It calls row for each data row with the timestamp and value as written and
// as parsed; name is used in error messages. A file without data rows is an
// error.
func ReadCSV(r io.Reader, name string, row func(tsText, valText string, ts time.Time, v float64) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	line, rows := 0, 0
	tsCol, valCol := -1, -1
	for sc.Scan() {
		line++
		text := strings.TrimRight(sc.Text(), "\r")
		if line == 1 {
			text = strings.TrimPrefix(text, "\ufeff")
			for i, h := range strings.Split(text, ",") {
				switch strings.ToLower(strings.TrimSpace(h)) {
				case "timestamp":
					tsCol = i
				case "value":
					valCol = i
				}
			}
			if tsCol < 0 || valCol < 0 {
				return fmt.Errorf("%s:1: header %q must name the columns timestamp and value", name, text)
			}
			continue
		}
		if strings.TrimSpace(text) == "" {
			continue
		}
		cells := strings.Split(text, ",")
		if len(cells) <= max(tsCol, valCol) {
			return fmt.Errorf("%s:%d: expected at least %d columns, got %d", name, line, max(tsCol, valCol)+1, len(cells))
		}
		tsText, valText := strings.TrimSpace(cells[tsCol]), strings.TrimSpace(cells[valCol])
		ts, err := ParseTime(tsText)
		if err != nil {
			return fmt.Errorf("%s:%d: %w", name, line, err)
		}
		v, err := strconv.ParseFloat(valText, 64)
		if err != nil {
			return fmt.Errorf("%s:%d: value %q is not a number", name, line, valText)
		}
		if err := row(tsText, valText, ts, v); err != nil {
			return err
		}
		rows++
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s:%d: %w", name, line+1, err)
	}
	if line == 0 {
		return fmt.Errorf("%s: empty file (expected a header timestamp,value)", name)
	}
	if rows == 0 {
		return fmt.Errorf("%s: no data rows", name)
	}
	return nil
}

var timeLayouts = []string{
	"2006-01-02 15:04:05",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04:05Z07:00",
	"2006-01-02T15:04:05.999999999Z07:00",
	"2006-01-02T15:04:05",
	"2006-01-02 15:04",
	"2006-01-02",
}

// ParseTime parses NAB's timestamps ("2014-07-01 00:00:00", optionally with
// fractional seconds) and a few ISO 8601 variants.
func ParseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, errors.New("timestamp " + strconv.Quote(s) + " is not of the form 2006-01-02 15:04:05")
}

// sigmoid is NAB's scaled sigmoid reward.
func sigmoid(y float64) float64 {
	if y > 3 {
		return -1
	}
	return 2/(1+math.Exp(5*y)) - 1
}

var maxTP = sigmoid(-1)

// label computes the per-row windows and rewards exactly as NAB's scorer.
func (f *File) label(wins [][2]string) error {
	rows := len(f.Times)
	pos := make(map[int64]int, rows)
	for i, t := range f.Times {
		if _, ok := pos[t]; !ok {
			pos[t] = i
		}
	}
	type win struct{ start, end int64 }
	pending := make([]win, 0, len(wins))
	for _, w := range wins {
		a, err := ParseTime(w[0])
		if err != nil {
			return err
		}
		b, err := ParseTime(w[1])
		if err != nil {
			return err
		}
		for _, t := range []int64{a.Unix(), b.Unix()} {
			if _, ok := pos[t]; !ok {
				return fmt.Errorf("window boundary %s is not a timestamp of the data file", time.Unix(t, 0).UTC())
			}
		}
		pending = append(pending, win{a.Unix(), b.Unix()})
	}
	f.nWindows = len(wins)
	f.window = make([]int32, rows)
	f.reward = make([]float64, rows)
	inside, local := -1, 0
	var inEnd int64
	var inLast int
	var inWidth float64
	prevLast, prevWidth := -1, 0.0
	for i, t := range f.Times {
		if len(pending) > 0 && t == pending[0].start {
			w := pending[0]
			pending = pending[1:]
			inside, inEnd, inLast = local, w.end, pos[w.end]
			inWidth = float64(inLast - pos[w.start] + 1)
			local++
		}
		switch {
		case inside >= 0:
			f.window[i] = int32(inside)
			f.reward[i] = sigmoid(-float64(inLast-i+1) / inWidth)
		case prevLast < 0:
			f.window[i] = -1
			f.reward[i] = -1
		default:
			f.window[i] = -1
			if span := prevWidth - 1; span > 0 {
				f.reward[i] = sigmoid(math.Abs(float64(prevLast-i)) / span)
			} else {
				f.reward[i] = -1
			}
		}
		if inside >= 0 && t == inEnd {
			prevLast, prevWidth = i, inWidth
			inside = -1
		}
	}
	cut := math.Min(math.Floor(probationFraction*float64(rows)), probationFraction*5000)
	f.start = int(math.Ceil(cut))
	seen := map[int32]bool{}
	for i := f.start; i < rows; i++ {
		if w := f.window[i]; w >= 0 {
			seen[w] = true
		}
	}
	f.scorable = len(seen)
	return nil
}

// Windows returns the number of labelled windows of f.
func (f *File) Windows() int { return f.nWindows }

// Result is the score of one file at one threshold.
type Result struct {
	Raw    float64 // NAB's raw score
	TP, FP int     // detections inside / outside windows
}

// Score returns f's raw score for scores (one per row) at threshold with
// profile p: detections are rows with score >= threshold after the
// probationary period.
func (f *File) Score(scores []float64, threshold float64, p Profile) Result {
	var best [64]float64
	bs := best[:0]
	if f.nWindows > len(best) {
		bs = make([]float64, 0, f.nWindows)
	}
	for i := 0; i < f.nWindows; i++ {
		bs = append(bs, math.Inf(-1))
	}
	var r Result
	for i := f.start; i < len(f.Times); i++ {
		if !(scores[i] >= threshold) {
			continue
		}
		if w := f.window[i]; w < 0 {
			r.FP++
			r.Raw += f.reward[i] * p.FP
		} else {
			r.TP++
			if v := f.reward[i] * p.TP / maxTP; v > bs[w] {
				bs[w] = v
			}
		}
	}
	seenW := make([]bool, f.nWindows)
	for i := f.start; i < len(f.Times); i++ {
		if w := f.window[i]; w >= 0 {
			seenW[w] = true
		}
	}
	for w, b := range bs {
		if !seenW[w] {
			continue // a window without scored rows does not count
		}
		if math.IsInf(b, -1) {
			b = -p.FN
		}
		r.Raw += b
	}
	return r
}

// Normalised returns NAB's normalised score of files (scores[i] belongs to
// files[i]) at threshold: 100*(raw-null)/(perfect-null), with null the raw
// score of a detector that never fires and perfect A_tp per labelled window.
// For files without any window (where NAB's normalisation is undefined) it
// returns 100 + 100*raw/((A_tp+A_fn)*len(files)): each file counts like one
// window, so a file with one full false positive under the standard profile
// loses 5.5/len(files) points.
func Normalised(files []*File, scores [][]float64, threshold float64, p Profile) float64 {
	var raw, null, perfect float64
	for i, f := range files {
		raw += f.Score(scores[i], threshold, p).Raw
		null -= p.FN * float64(f.scorable)
		perfect += p.TP * float64(f.nWindows)
	}
	if perfect == null {
		return 100 + 100*raw/((p.TP+p.FN)*float64(len(files)))
	}
	return 100 * (raw - null) / (perfect - null)
}
