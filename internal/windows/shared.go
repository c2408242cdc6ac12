package windows // import "github.com/custommetrics/bundle/internal/windows"

import (
	"errors"
	"fmt"

	"github.com/custommetrics/bundle/internal/aggregation"
	"github.com/custommetrics/bundle/internal/pgwindows"
)

// Cluster mode: the states live in a shared store (internal/pgwindows) and a
// Set's windows only cache identities. A batch then goes to the store as
// deltas (Deltas) instead of Apply, and due windows come back from the store
// with their identity (Claimed).

// Deltas returns the batch's values as one delta per window (values in batch
// order), and beside each the window it belongs to (Figure without State).
// Call it after Reserve; nothing in memory changes.
func (b *Batch) Deltas() ([]pgwindows.Delta, []Figure) {
	base := b.s.nextSeqs(b.points)
	var deltas []pgwindows.Delta
	var wins []Figure
	idx := make(map[*window]int, len(b.refs))
	none := aggregation.State{}
	for i := range b.refs {
		r := &b.refs[i]
		w := r.w
		j, ok := idx[w]
		if !ok {
			j = len(deltas)
			idx[w] = j
			sh := &b.s.shards[w.shard]
			sh.mu.Lock()
			k := sh.keyOf(w)
			sh.mu.Unlock()
			deltas = append(deltas, pgwindows.Delta{
				Series: seriesHash(k.d, k.attrs), Identity: encodeRecord(&k, &none, 0),
				Interval: k.iv, Start: k.start, End: k.end, Fn: k.d.Fn,
			})
			wins = append(wins, Figure{Desc: w.d, Interval: w.iv, Start: w.start})
		}
		deltas[j].State.Add(w.d.Fn, r.v, r.wt, r.ts, base+uint64(r.pt)+1)
	}
	return deltas, wins
}

// Claimed returns the snapshot of a window that a shared store handed out
// for emission, its identity decoded and checked against its key.
func (s *Set) Claimed(c pgwindows.Claimed, kind Kind) (Snap, error) {
	r, err := decodeRecord(c.Identity)
	if err != nil {
		return Snap{}, fmt.Errorf("aggregate processor: a shared window's identity is corrupt: %w", err)
	}
	b := s.Batch(0)
	defer b.Release()
	d, err := s.descOf(b, &r)
	if err != nil {
		return Snap{}, fmt.Errorf("aggregate processor: a shared window's identity is corrupt: %w", err)
	}
	if d.Fn != c.Fn || r.iv != c.Interval || r.start != c.Start {
		return Snap{}, errors.New("aggregate processor: a shared window's identity does not match its key")
	}
	if _, ok := spanOf(c.Start, c.End); !ok {
		return Snap{}, errors.New("aggregate processor: a shared window's end is not whole seconds after its start")
	}
	return Snap{Desc: d, Interval: c.Interval, Start: c.Start, End: c.End, Attrs: r.attrs, Acc: c.State, Kind: kind}, nil
}
