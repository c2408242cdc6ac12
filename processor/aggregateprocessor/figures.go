package aggregateprocessor // import "github.com/custommetrics/bundle/processor/aggregateprocessor"

import (
	"context"

	"github.com/custommetrics/bundle/internal/figures"
)

// answerProbe answers a receiver's start-up probe (internal/figures): this
// processor fills figures slots synchronously, which is what the receiver
// checks before it promises returnValue. It reports whether ctx carried a
// probe; its empty batch then goes no further.
func answerProbe(ctx context.Context) bool {
	s := figures.FromContext(ctx)
	if s == nil || !s.Probe() {
		return false
	}
	s.Answer()
	return true
}
