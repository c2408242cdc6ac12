package definitions

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// BenchmarkCreate creates definitions in a collection that already holds 10
// or 10,000, persisted in a real file_storage (bbolt, default settings): the
// cost of a create should not depend on the collection's size.
//
//	go test -run '^$' -bench BenchmarkCreate -benchtime 2000x ./internal/definitions/
func BenchmarkCreate(b *testing.B) {
	for _, existing := range []int{10, 10_000} {
		b.Run(fmt.Sprintf("existing=%d", existing), func(b *testing.B) {
			ctx := context.Background()
			client, _ := fileStorage(b, b.TempDir())
			c, err := CollectionOf[item](ctx, NewRegistry(client), KindThreatConnectMetric, "t")
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
