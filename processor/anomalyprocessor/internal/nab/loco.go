package nab

import "math"

// Candidate is one parameter setting under validation: its name, its flag
// threshold, and the per-row scores it gave every file of the corpus
// (Scores[i] belongs to Corpus.Files[i]).
type Candidate struct {
	Name      string
	Threshold float64
	Scores    [][]float64
}

// Fold is one round of leave-one-category-out validation.
type Fold struct {
	HeldOut string  // the category scored
	Chosen  int     // index of the candidate chosen on the other categories
	Train   float64 // its standard score on the other categories (normalised together)
	Score   float64 // its standard score on the held-out category (normalised on its own)
}

// Rotation is the outcome of leave-one-category-out validation.
type Rotation struct {
	Folds []Fold
	// Mean is the mean of the folds' held-out scores.
	Mean float64
	// Pooled are the three profiles' scores of the whole corpus, each file
	// scored by the candidate chosen without its category (normalised
	// together, comparable with a plain NAB run).
	Pooled [3]float64
}

// Rotate runs leave-one-category-out validation: for every category, the
// candidate with the best standard score on the other categories is chosen
// (the first one on ties), and scored on the held-out category.
func Rotate(c *Corpus, cands []Candidate) Rotation {
	var rot Rotation
	chosenFor := map[string]int{}
	for _, held := range c.Categories() {
		var train, test []*File
		var trainIdx, testIdx []int
		for i, f := range c.Files {
			if f.Category == held {
				test, testIdx = append(test, f), append(testIdx, i)
			} else {
				train, trainIdx = append(train, f), append(trainIdx, i)
			}
		}
		fold := Fold{HeldOut: held, Chosen: -1, Train: math.Inf(-1)}
		for k, cand := range cands {
			s := Normalised(train, pick(cand.Scores, trainIdx), cand.Threshold, Profiles[0])
			if s > fold.Train {
				fold.Chosen, fold.Train = k, s
			}
		}
		cand := cands[fold.Chosen]
		fold.Score = Normalised(test, pick(cand.Scores, testIdx), cand.Threshold, Profiles[0])
		chosenFor[held] = fold.Chosen
		rot.Folds = append(rot.Folds, fold)
		rot.Mean += fold.Score
	}
	rot.Mean /= float64(len(rot.Folds))
	for pi, p := range Profiles {
		var raw, null, perfect float64
		for i, f := range c.Files {
			cand := cands[chosenFor[f.Category]]
			raw += f.Score(cand.Scores[i], cand.Threshold, p).Raw
			null -= p.FN * float64(f.scorable)
			perfect += p.TP * float64(f.nWindows)
		}
		rot.Pooled[pi] = 100 * (raw - null) / (perfect - null)
	}
	return rot
}

func pick(scores [][]float64, idx []int) [][]float64 {
	out := make([][]float64, len(idx))
	for i, k := range idx {
		out[i] = scores[k]
	}
	return out
}
