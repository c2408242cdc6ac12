package main

import (
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/custommetrics/bundle/processor/anomalyprocessor/internal/detector"
	"github.com/custommetrics/bundle/processor/anomalyprocessor/internal/nab"
)

// candidates are the configurations leave-one-category-out validation
// chooses from: the default configuration with sensitivity 0.4 to 0.6 (flag
// threshold 0.6 to 0.4) and cooldown 25, 50 or 100 values. These are the
// parameters a user tunes; the detector's internal constants are fixed.
func candidates() []detector.Config {
	var out []detector.Config
	for _, sens := range []float64{0.5, 0.4, 0.45, 0.55, 0.6} {
		for _, cool := range []int{50, 25, 100} {
			c := detector.DefaultConfig()
			c.Sensitivity, c.Cooldown = sens, cool
			out = append(out, c)
		}
	}
	return out
}

// scoreCorpus returns the scores cfg gives every row of every file.
func scoreCorpus(c *nab.Corpus, cfg detector.Config) [][]float64 {
	out := make([][]float64, len(c.Files))
	for i, f := range c.Files {
		var s detector.State
		sc := make([]float64, len(f.Values))
		for j, v := range f.Values {
			sc[j] = s.Update(&cfg, f.Times[j], v).Score
		}
		out[i] = sc
	}
	return out
}

// locoCandidates scores the corpus with every candidate configuration.
func locoCandidates(c *nab.Corpus) []nab.Candidate {
	cfgs := candidates()
	cands := make([]nab.Candidate, len(cfgs))
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for k, cfg := range cfgs {
		cands[k] = nab.Candidate{
			Name:      fmt.Sprintf("sensitivity=%.2f cooldown=%d", cfg.Sensitivity, cfg.Cooldown),
			Threshold: cfg.Threshold(),
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			cands[k].Scores = scoreCorpus(c, cfg)
			<-sem
		}()
	}
	wg.Wait()
	return cands
}

func runLOCO(dir string, floor float64, w io.Writer) error {
	c, err := nab.Load(dir)
	if err != nil {
		return err
	}
	cands := locoCandidates(c)
	rot := nab.Rotate(c, cands)
	fmt.Fprintf(w, "leave-one-category-out: %d files, %d candidates (NAB standard profile, fixed threshold = 1-sensitivity)\n", len(c.Files), len(cands))
	fmt.Fprintf(w, "%-24s %-32s %9s %9s\n", "held-out category", "chosen on the other four", "train", "held-out")
	for _, f := range rot.Folds {
		fmt.Fprintf(w, "%-24s %-32s %9.2f %9.2f\n", f.HeldOut, cands[f.Chosen].Name, f.Train, f.Score)
	}
	fmt.Fprintf(w, "mean held-out standard score %.2f\n", rot.Mean)
	fmt.Fprintf(w, "pooled held-out (all files, each by its fold's choice): standard=%.2f lowFP=%.2f lowFN=%.2f\n",
		rot.Pooled[0], rot.Pooled[1], rot.Pooled[2])
	def := cands[0]
	var all [3]float64
	for i, p := range nab.Profiles {
		all[i] = nab.Normalised(c.Files, def.Scores, def.Threshold, p)
	}
	fmt.Fprintf(w, "defaults (%s) on all files: standard=%.2f lowFP=%.2f lowFN=%.2f\n", def.Name, all[0], all[1], all[2])
	if rot.Mean < floor {
		return fmt.Errorf("mean held-out score %.2f is below the floor %.2f", rot.Mean, floor)
	}
	return nil
}
