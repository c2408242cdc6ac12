package detector

// Experiment harness used to choose the internal constants (see DETECTOR.md).
// It only runs when NAB_EXPERIMENT is set, e.g.
//
//	NAB_EXPERIMENT='alphaLevel=0.05;alphaLevel=0.2' go test -run TestExperiment -v
//
// Each ';'-separated variant overrides fields of tune (comma-separated
// name=value pairs), streams the NAB data through the detector and prints the
// scorer's summary line (and, with NAB_FILES_FROM, the score of that subset).

import (
	"bufio"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"
)

const nabDir = "../../../../../shared/nab"

func TestExperiment(t *testing.T) {
	spec, ok := os.LookupEnv("NAB_EXPERIMENT")
	if !ok {
		t.Skip("set NAB_EXPERIMENT to run")
	}
	base := tune
	defer func() { tune = base }()
	for _, variant := range strings.Split(spec, ";") {
		tune = base
		if err := applyTune(&tune, variant); err != nil {
			t.Fatal(err)
		}
		out := t.TempDir()
		if o := os.Getenv("NAB_OUT"); o != "" {
			out = o
		}
		if err := runNAB(filepath.Join(nabDir, "data"), out); err != nil {
			t.Fatal(err)
		}
		line := scoreNAB(t, out, "")
		extra := ""
		if ff := os.Getenv("NAB_FILES_FROM"); ff != "" {
			for _, f := range strings.Split(ff, ":") {
				extra += " | " + filepath.Base(f) + ": " + scoreNAB(t, out, f)
			}
		}
		fmt.Printf("%-60s %s%s\n", variant, line, extra)
	}
}

func scoreNAB(t *testing.T, out, filesFrom string) string {
	args := []string{"score.py", "--data", "data", "--labels", "labels/combined_windows.json", "--results", out}
	if filesFrom != "" {
		args = append(args, "--files-from", filesFrom)
	}
	if j := os.Getenv("NAB_JSON"); j != "" && filesFrom == "" {
		args = append(args, "--json", j)
	}
	cmd := exec.Command("python3", args...)
	cmd.Dir = nabDir
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("score.py: %v\n%s", err, b)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if os.Getenv("NAB_VERBOSE") != "" {
		return strings.Join(lines, "\n")
	}
	return lines[len(lines)-1]
}

func applyTune(tn *tuning, spec string) error {
	v := reflect.ValueOf(tn).Elem()
	for _, kv := range strings.Split(spec, ",") {
		kv = strings.TrimSpace(kv)
		if kv == "" {
			continue
		}
		k, val, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("bad override %q", kv)
		}
		f := v.FieldByName(k)
		if !f.IsValid() {
			return fmt.Errorf("no tuning field %q", k)
		}
		f = reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem()
		switch f.Kind() {
		case reflect.Int:
			n, err := strconv.Atoi(val)
			if err != nil {
				return err
			}
			f.SetInt(int64(n))
		case reflect.Float64:
			x, err := strconv.ParseFloat(val, 64)
			if err != nil {
				return err
			}
			f.SetFloat(x)
		}
	}
	return nil
}

func runNAB(dataDir, outDir string) error {
	return filepath.WalkDir(dataDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".csv") {
			return err
		}
		rel, _ := filepath.Rel(dataDir, p)
		dst := filepath.Join(outDir, rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.Create(dst)
		if err != nil {
			return err
		}
		defer out.Close()
		w := bufio.NewWriter(out)
		defer w.Flush()
		cfg := DefaultConfig()
		var s State
		sc := bufio.NewScanner(in)
		first := true
		for sc.Scan() {
			if first {
				first = false
				fmt.Fprintln(w, "timestamp,value,anomaly_score")
				continue
			}
			ts, val, _ := strings.Cut(sc.Text(), ",")
			tm, err := time.Parse("2006-01-02 15:04:05", ts)
			if err != nil {
				return err
			}
			x, err := strconv.ParseFloat(val, 64)
			if err != nil {
				return err
			}
			r := s.Update(&cfg, tm.Unix(), x)
			fmt.Fprintf(w, "%s,%s,%g\n", ts, val, r.Score)
		}
		return sc.Err()
	})
}
