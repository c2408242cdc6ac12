package detector

// Experiment harness used to choose the internal constants (see DETECTOR.md).
// It only runs when NAB_EXPERIMENT is set, e.g.
//
//	NAB_EXPERIMENT='alphaLevel=0.05;alphaLevel=0.2' go test -run TestExperiment -v
//
// Each ';'-separated variant overrides fields of tune (comma-separated
// name=value pairs), streams the NAB files through the detector with every
// candidate configuration of nabeval -loco, and prints the
// leave-one-category-out held-out scores (their mean first) and the default
// configuration's three NAB scores on all files. With NAB_SYNTH=DIR it also
// prints the default configuration's standard score on each category of the
// NAB-like folder DIR (testdata/synthnab.py writes a synthetic one).

import (
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unsafe"

	"github.com/custommetrics/bundle/processor/anomalyprocessor/internal/nab"
)

const nabDir = "../../../../../shared/nab"

func TestExperiment(t *testing.T) {
	spec, ok := os.LookupEnv("NAB_EXPERIMENT")
	if !ok {
		t.Skip("set NAB_EXPERIMENT to run")
	}
	c, err := nab.Load(nabDir)
	if err != nil {
		t.Fatal(err)
	}
	var syn *nab.Corpus
	if dir := os.Getenv("NAB_SYNTH"); dir != "" {
		if syn, err = nab.Load(dir); err != nil {
			t.Fatal(err)
		}
	}
	base := tune
	defer func() { tune = base }()
	for _, variant := range splitVariants(spec) {
		tune = base
		if err := applyTune(&tune, variant); err != nil {
			t.Fatal(err)
		}
		if syn != nil {
			synthScores(syn, variant)
		}
		cands := experimentCandidates(c)
		rot := nab.Rotate(c, cands)
		folds := ""
		for _, f := range rot.Folds {
			folds += fmt.Sprintf(" %6.2f", f.Score)
		}
		d := cands[0]
		fmt.Printf("%-50s LOCO %6.2f [%s ] pooled %6.2f | all %6.2f %6.2f %6.2f\n", variant, rot.Mean, folds, rot.Pooled[0],
			nab.Normalised(c.Files, d.Scores, d.Threshold, nab.Profiles[0]),
			nab.Normalised(c.Files, d.Scores, d.Threshold, nab.Profiles[1]),
			nab.Normalised(c.Files, d.Scores, d.Threshold, nab.Profiles[2]))
		if os.Getenv("NAB_VERBOSE") != "" {
			for i, f := range c.Files {
				r := f.Score(d.Scores[i], d.Threshold, nab.Profiles[0])
				fmt.Printf("    %-60s win %d TP %4d FP %3d raw %7.3f\n", f.Rel, f.Windows(), r.TP, r.FP, r.Raw)
			}
		}
	}
}

// synthScores prints the default configuration's NAB standard score on each
// category of a synthetic corpus (NAB_SYNTH, a folder like NAB's, e.g. written
// by testdata/synthnab.py).
func synthScores(c *nab.Corpus, variant string) {
	cfg := DefaultConfig()
	out := fmt.Sprintf("%-50s synth", variant)
	for _, cat := range c.Categories() {
		var files []*nab.File
		var scores [][]float64
		for _, f := range c.Files {
			if f.Category != cat {
				continue
			}
			var s State
			sc := make([]float64, len(f.Values))
			for j, v := range f.Values {
				sc[j] = s.Update(&cfg, f.Times[j], v).Score
			}
			files, scores = append(files, f), append(scores, sc)
			if os.Getenv("NAB_VERBOSE") != "" {
				r := f.Score(sc, cfg.Threshold(), nab.Profiles[0])
				fmt.Printf("    %-40s win %d TP %4d FP %3d raw %7.3f\n", f.Rel, f.Windows(), r.TP, r.FP, r.Raw)
			}
		}
		out += fmt.Sprintf(" %s %6.2f", cat, nab.Normalised(files, scores, cfg.Threshold(), nab.Profiles[0]))
	}
	fmt.Println(out)
}

// experimentCandidates mirrors nabeval's candidates (the default first).
func experimentCandidates(c *nab.Corpus) []nab.Candidate {
	var cands []nab.Candidate
	var wg sync.WaitGroup
	for _, sens := range []float64{0.5, 0.4, 0.45, 0.55, 0.6} {
		for _, cool := range []int{50, 25, 100} {
			cfg := DefaultConfig()
			cfg.Sensitivity, cfg.Cooldown = sens, cool
			cands = append(cands, nab.Candidate{Threshold: cfg.Threshold(), Scores: make([][]float64, len(c.Files))})
		}
	}
	for k := range cands {
		cfg := DefaultConfig()
		cfg.Sensitivity, cfg.Cooldown = 1-cands[k].Threshold, []int{50, 25, 100}[k%3]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i, f := range c.Files {
				var s State
				sc := make([]float64, len(f.Values))
				for j, v := range f.Values {
					sc[j] = s.Update(&cfg, f.Times[j], v).Score
				}
				cands[k].Scores[i] = sc
			}
		}()
	}
	wg.Wait()
	return cands
}

func splitVariants(spec string) []string { return strings.Split(spec, ";") }

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
		case reflect.Bool:
			f.SetBool(val == "true" || val == "1")
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
