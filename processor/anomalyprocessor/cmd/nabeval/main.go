// Command nabeval streams every NAB-format CSV file under a data folder
// through the anomaly detector with its default configuration and writes one
// NAB result file per series.
//
// Usage:
//
//	nabeval DATA_DIR OUT_DIR
//	nabeval -loco [-floor X] NAB_DIR
//
// Every *.csv file under DATA_DIR (recursively) must have a header and the
// columns timestamp,value, with timestamps such as "2014-07-01 00:00:00". For
// each one, OUT_DIR gets a file at the same relative path with the columns
// timestamp,value,anomaly_score, one row per data row, in order. The result
// can be scored with NAB's scorer (see ../shared/nab/README.md from the
// repository root).
//
// With -loco, nabeval runs leave-one-category-out validation on a labelled
// NAB folder (NAB_DIR/data and NAB_DIR/labels/combined_windows.json): for
// each category, the candidate configuration (sensitivity x cooldown, see
// candidates) with the best NAB standard score on the other categories is
// chosen and scored on the held-out category at its own threshold. It prints
// the five held-out scores, their mean and the pooled scores, and fails when
// the mean is below -floor.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/custommetrics/bundle/processor/anomalyprocessor/internal/detector"
	"github.com/custommetrics/bundle/processor/anomalyprocessor/internal/nab"
)

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "nabeval:", err)
		os.Exit(1)
	}
}

const usage = "usage: nabeval DATA_DIR OUT_DIR | nabeval -loco [-floor X] NAB_DIR"

func run(args []string, log io.Writer) error {
	fl := flag.NewFlagSet("nabeval", flag.ContinueOnError)
	fl.SetOutput(log)
	loco := fl.Bool("loco", false, "leave-one-category-out validation on the labelled NAB folder NAB_DIR")
	floor := fl.Float64("floor", math.Inf(-1), "with -loco: fail when the mean held-out standard score is below this")
	if err := fl.Parse(args); err != nil {
		return fmt.Errorf("%w\n%s", err, usage)
	}
	args = fl.Args()
	if *loco {
		if len(args) != 1 {
			return fmt.Errorf("-loco expects 1 argument, got %d\n%s", len(args), usage)
		}
		return runLOCO(args[0], *floor, log)
	}
	if len(args) != 2 {
		return fmt.Errorf("expected 2 arguments, got %d\n%s", len(args), usage)
	}
	n, err := evaluate(args[0], args[1], detector.DefaultConfig())
	if err != nil {
		return err
	}
	fmt.Fprintf(log, "nabeval: wrote %d result files to %s\n", n, args[1])
	return nil
}

// evaluate processes every CSV file under dataDir and returns how many
// result files it wrote.
func evaluate(dataDir, outDir string, cfg detector.Config) (int, error) {
	if err := cfg.Validate(); err != nil {
		return 0, err
	}
	st, err := os.Stat(dataDir)
	if err != nil {
		return 0, fmt.Errorf("data folder: %w", err)
	}
	if !st.IsDir() {
		return 0, fmt.Errorf("data folder %s is not a directory", dataDir)
	}
	var files []string
	err = filepath.WalkDir(dataDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.EqualFold(filepath.Ext(p), ".csv") {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("listing %s: %w", dataDir, err)
	}
	if len(files) == 0 {
		return 0, fmt.Errorf("no .csv files under %s", dataDir)
	}
	for _, p := range files {
		rel, err := filepath.Rel(dataDir, p)
		if err != nil {
			return 0, err
		}
		dst := filepath.Join(outDir, rel)
		if err := processFile(p, dst, cfg); err != nil {
			return 0, err
		}
	}
	return len(files), nil
}

// processFile scores one series and writes its result file.
func processFile(src, dst string, cfg detector.Config) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := out.Close(); err == nil && cerr != nil {
			err = cerr
		}
		if err != nil {
			os.Remove(dst)
		}
	}()
	w := bufio.NewWriter(out)
	if err := score(in, w, cfg, src); err != nil {
		return err
	}
	return w.Flush()
}

// score reads a NAB CSV from r and writes the result CSV to w; name is used in
// error messages.
func score(r io.Reader, w io.Writer, cfg detector.Config, name string) error {
	var d detector.Detector
	d.Config = cfg
	if _, err := io.WriteString(w, "timestamp,value,anomaly_score\n"); err != nil {
		return err
	}
	buf := make([]byte, 0, 128)
	return nab.ReadCSV(r, name, func(tsText, valText string, ts time.Time, v float64) error {
		res := d.Update(ts, v)
		buf = append(buf[:0], tsText...)
		buf = append(buf, ',')
		buf = append(buf, valText...)
		buf = append(buf, ',')
		buf = strconv.AppendFloat(buf, res.Score, 'g', -1, 64)
		buf = append(buf, '\n')
		_, err := w.Write(buf)
		return err
	})
}
