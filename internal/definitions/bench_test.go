package definitions

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// BenchmarkCreate creates definitions in a collection that already holds 10
// or 10,000: the cost of a create should not depend on the collection's
// size. storage=file_storage is a real file_storage (bbolt, default
// settings), as in the default configuration; storage=memory isolates the
// registry's own cost (bbolt adds O(log n) pages per transaction).
//
//	go test -run '^$' -bench BenchmarkCreate -benchtime 2000x -count 5 ./internal/definitions/
func BenchmarkCreate(b *testing.B) {
	for _, backend := range []string{"file_storage", "memory"} {
		for _, existing := range []int{10, 10_000} {
			b.Run(fmt.Sprintf("storage=%s/existing=%d", backend, existing), func(b *testing.B) {
				ctx := context.Background()
				var be Backend = &MemoryBackend{}
				if backend == "file_storage" {
					be, _ = fileStorage(b, b.TempDir())
				}
				c, err := CollectionOf[item](ctx, NewRegistry(be), KindThreatConnectMetric, "t")
				require.NoError(b, err)
				for i := range existing {
					_, err := createItem(ctx, c, fmt.Sprintf("existing-%06d", i))
					require.NoError(b, err)
				}
				b.ReportAllocs()
				b.ResetTimer()
				for i := range b.N {
					if _, err := createItem(ctx, c, fmt.Sprintf("bench-%09d", i)); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
