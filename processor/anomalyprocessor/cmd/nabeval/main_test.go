package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/custommetrics/bundle/processor/anomalyprocessor/internal/detector"
)

// nabDir is the repository root's ../shared/nab, relative to this package.
const nabDir = "../../../../../shared/nab"

func TestNABScore(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 is not installed")
	}
	out := t.TempDir()
	if err := run([]string{filepath.Join(nabDir, "data"), out}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("python3", "score.py", "--data", "data", "--labels", "labels/combined_windows.json", "--results", out)
	cmd.Dir = nabDir
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("score.py: %v\n%s", err, b)
	}
	m := regexp.MustCompile(`NAB standard=(\S+) lowFP=(\S+) lowFN=(\S+)`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no summary line in:\n%s", b)
	}
	std, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s", m[0])
	if std < 60 {
		t.Errorf("NAB standard score %.2f < 60", std)
	}
}

func TestOutputFormat(t *testing.T) {
	data, out := t.TempDir(), t.TempDir()
	var in strings.Builder
	in.WriteString("timestamp,value\n")
	for i := 0; i < 500; i++ {
		v := 10.0
		if i == 450 {
			v = 1000
		}
		in.WriteString("2014-07-01 " + strconv.Itoa(i/60%24/10) + strconv.Itoa(i/60%24%10) + ":" + strconv.Itoa(i%60/10) + strconv.Itoa(i%10) + ":00," + strconv.FormatFloat(v+float64(i%3), 'g', -1, 64) + "\n")
	}
	if err := os.MkdirAll(filepath.Join(data, "cat"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "cat", "s.csv"), []byte(in.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run([]string{data, out}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(out, "cat", "s.csv"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if lines[0] != "timestamp,value,anomaly_score" || len(lines) != 501 {
		t.Fatalf("header %q, %d lines", lines[0], len(lines))
	}
	inLines := strings.Split(strings.TrimSpace(in.String()), "\n")
	for i := 1; i < len(lines); i++ {
		cells := strings.Split(lines[i], ",")
		if len(cells) != 3 || cells[0]+","+cells[1] != inLines[i] {
			t.Fatalf("line %d: %q for input %q", i, lines[i], inLines[i])
		}
		s, err := strconv.ParseFloat(cells[2], 64)
		if err != nil || s < 0 || s > 1 {
			t.Fatalf("line %d: bad score %q", i, cells[2])
		}
		if i == 451 && s < detector.DefaultConfig().Threshold() {
			t.Errorf("spike scored %v", s)
		}
	}
}

func TestBadInput(t *testing.T) {
	cases := map[string]struct{ content, want string }{
		"header":    {"time,val\n2014-07-01 00:00:00,1\n", "header"},
		"timestamp": {"timestamp,value\n2014-07-01 00:00:00,1\nyesterday,2\n", ":3: timestamp \"yesterday\""},
		"value":     {"timestamp,value\n2014-07-01 00:00:00,abc\n", ":2: value \"abc\" is not a number"},
		"columns":   {"timestamp,value\n2014-07-01 00:00:00\n", ":2: expected at least 2 columns"},
		"empty":     {"", "empty file"},
		"no rows":   {"timestamp,value\n", "no data rows"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			data := t.TempDir()
			if err := os.WriteFile(filepath.Join(data, "x.csv"), []byte(c.content), 0o644); err != nil {
				t.Fatal(err)
			}
			err := run([]string{data, t.TempDir()}, &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want it to contain %q", err, c.want)
			}
		})
	}
	if err := run([]string{"only-one"}, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "usage") {
		t.Errorf("one argument: %v", err)
	}
	if err := run([]string{filepath.Join(t.TempDir(), "missing"), t.TempDir()}, &bytes.Buffer{}); err == nil {
		t.Error("missing data folder accepted")
	}
	if err := run([]string{t.TempDir(), t.TempDir()}, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "no .csv files") {
		t.Errorf("empty folder: %v", err)
	}
}

// TestLeaveOneCategoryOut runs the -loco mode on the shared NAB files: the
// mean held-out standard score must stay above the floor that DETECTOR.md
// documents (and .ci/run checks).
func TestLeaveOneCategoryOut(t *testing.T) {
	if _, err := os.Stat(filepath.Join(nabDir, "labels")); err != nil {
		t.Skip("NAB corpus not available:", err)
	}
	var log bytes.Buffer
	err := run([]string{"-loco", "-floor", strconv.FormatFloat(locoFloor, 'f', -1, 64), nabDir}, &log)
	t.Logf("\n%s", log.String())
	if err != nil {
		t.Fatal(err)
	}
	if err := run([]string{"-loco", "-floor", "101", nabDir}, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "below the floor") {
		t.Errorf("floor 101: %v", err)
	}
}

// locoFloor is the floor of the mean held-out score (measured 79.75, see DETECTOR.md).
const locoFloor = 79
