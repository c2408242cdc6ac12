package nab

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// nabDir is ../shared/nab from the repository root.
const nabDir = "../../../../../shared/nab"

func loadOrSkip(t *testing.T) *Corpus {
	t.Helper()
	if _, err := os.Stat(filepath.Join(nabDir, "labels")); err != nil {
		t.Skip("NAB corpus not available:", err)
	}
	c, err := Load(nabDir)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// pseudo returns deterministic scores in [0,1) for f.
func pseudo(f *File, seed uint64) []float64 {
	out := make([]float64, len(f.Values))
	x := seed
	for i := range out {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		// mostly low scores, a few high ones
		u := float64(x>>11) / (1 << 53)
		out[i] = math.Pow(u, 200)
	}
	return out
}

// TestMatchesScorePy scores the same result files with this package and
// with NAB's Python scorer at a fixed threshold: every file's raw score and
// counts, and the normalised scores, must agree.
func TestMatchesScorePy(t *testing.T) {
	c := loadOrSkip(t)
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 is not installed")
	}
	res := t.TempDir()
	scores := make([][]float64, len(c.Files))
	for i, f := range c.Files {
		scores[i] = pseudo(f, uint64(i)+1)
		var b strings.Builder
		b.WriteString("timestamp,value,anomaly_score\n")
		for j := range f.Values {
			fmt.Fprintf(&b, "x,%v,%v\n", f.Values[j], scores[i][j])
		}
		p := filepath.Join(res, filepath.FromSlash(f.Rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const thr = 0.5
	js := filepath.Join(t.TempDir(), "out.json")
	cmd := exec.Command("python3", "score.py", "--data", "data", "--labels", "labels/combined_windows.json",
		"--results", res, "--threshold", "0.5", "--json", js)
	cmd.Dir = nabDir
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("score.py: %v\n%s", err, b)
	}
	var rep struct {
		Profiles map[string]struct {
			Score   float64
			PerFile []struct {
				File   string
				Raw    float64
				TP, FP int
			} `json:"per_file"`
		}
	}
	b, err := os.ReadFile(js)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	names := map[string]string{"standard": "standard", "lowFP": "reward_low_FP_rate", "lowFN": "reward_low_FN_rate"}
	for _, p := range Profiles {
		want := rep.Profiles[names[p.Name]]
		if got := Normalised(c.Files, scores, thr, p); math.Abs(got-want.Score) > 1e-9 {
			t.Errorf("%s: normalised %v, score.py %v", p.Name, got, want.Score)
		}
		for i, f := range c.Files {
			w := want.PerFile[i]
			if w.File != f.Rel {
				t.Fatalf("file order: %s vs %s", w.File, f.Rel)
			}
			if got := f.Score(scores[i], thr, p); math.Abs(got.Raw-w.Raw) > 1e-9 || got.TP != w.TP || got.FP != w.FP {
				t.Errorf("%s %s: %+v, score.py raw %v TP %d FP %d", p.Name, f.Rel, got, w.Raw, w.TP, w.FP)
			}
		}
	}
}

func TestRotate(t *testing.T) {
	c := loadOrSkip(t)
	if got := len(c.Categories()); got != 5 {
		t.Fatalf("%d categories", got)
	}
	never := Candidate{Name: "never", Threshold: 2, Scores: make([][]float64, len(c.Files))}
	noisy := Candidate{Name: "noisy", Threshold: 0.5, Scores: make([][]float64, len(c.Files))}
	for i, f := range c.Files {
		never.Scores[i] = make([]float64, len(f.Values))
		noisy.Scores[i] = pseudo(f, uint64(i)+7)
	}
	rot := Rotate(c, []Candidate{never})
	for _, f := range rot.Folds {
		want := 0.0
		if f.HeldOut == "artificialNoAnomaly" {
			want = 100 // no windows, no false alarms
		}
		if f.Score != want || f.Chosen != 0 {
			t.Errorf("never firing: %+v", f)
		}
	}
	if rot.Pooled[0] != 0 {
		t.Errorf("pooled %v", rot.Pooled)
	}
	rot = Rotate(c, []Candidate{noisy, never})
	for _, f := range rot.Folds {
		if f.Chosen != 1 && f.Train < 0 {
			t.Errorf("chose a candidate worse than never firing: %+v", f)
		}
	}
}
