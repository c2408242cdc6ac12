package sqlexporter

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// TestPostgres runs the scenarios on a real PostgreSQL server, each in a
// database of its own.
func TestPostgres(t *testing.T) {
	srv := startPostgres(t)
	for name, scenario := range map[string]func(*testing.T, store){
		"WriteReadBack":       scenarioWriteReadBack,
		"DuplicateBatch":      scenarioDuplicateBatch,
		"Restatement":         scenarioRestatement,
		"ConcurrentExporters": scenarioConcurrentWriters,
		"Migrations":          postgresMigrations,
		"PermanentErrors":     postgresPermanentErrors,
		"READMEQueries":       scenarioREADMEQueries,
		"EdgeDates":           scenarioEdgeDates,
		"WindowStatus":        scenarioWindowStatus,
		"Distributions":       scenarioCumulativesAndHistograms,
		"PointsKeyMigration":  scenarioPointsKeyMigration,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			scenario(t, newPostgresStore(t, srv))
		})
	}
}

// postgresMigrations starts several exporters at once on an empty database:
// the advisory lock lets exactly one of them migrate.
func postgresMigrations(t *testing.T, s store) {
	const n = 4
	var wg sync.WaitGroup
	errs := make([]error, n)
	exps := make([]*sqlExporter, n)
	for i := range n {
		e, err := newSQLExporter(s.config(), exportertest.NewNopSettings(typ))
		require.NoError(t, err)
		exps[i] = e
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = e.start(context.Background(), componenttest.NewNopHost())
		}()
	}
	wg.Wait()
	for i := range n {
		require.NoError(t, errs[i])
		require.NoError(t, exps[i].shutdown(context.Background()))
	}
	checkSchema(t, s)

	// Column types: JSONB attributes, BIGINT nanoseconds, DOUBLE PRECISION values.
	var attrType, startType, valueType string
	require.NoError(t, s.db.QueryRow(`SELECT
  (SELECT data_type FROM information_schema.columns WHERE table_name = 'windows' AND column_name = 'attributes'),
  (SELECT data_type FROM information_schema.columns WHERE table_name = 'windows' AND column_name = 'window_start_unix_nano'),
  (SELECT data_type FROM information_schema.columns WHERE table_name = 'points' AND column_name = 'value')`).
		Scan(&attrType, &startType, &valueType))
	assert.Equal(t, []string{"jsonb", "bigint", "double precision"}, []string{attrType, startType, valueType})

	_, err := s.db.Exec(`INSERT INTO schema_migrations (version, name, applied_at_unix_nano) VALUES (999, 'future', 0)`)
	require.NoError(t, err)
	e, err := newSQLExporter(s.config(), exportertest.NewNopSettings(typ))
	require.NoError(t, err)
	require.ErrorIs(t, e.start(context.Background(), nil), errSchemaTooNew)
	require.NoError(t, e.shutdown(context.Background()))
}

func postgresPermanentErrors(t *testing.T, s store) {
	_, err := s.db.Exec(`SELECT 1/0`)
	require.Error(t, err)
	assert.True(t, consumererror.IsPermanent(classify(err)), "data exception: %v", err)
	_, err = s.db.Exec(`CREATE TABLE u (k INT PRIMARY KEY); INSERT INTO u VALUES (1), (1)`)
	require.Error(t, err)
	assert.True(t, consumererror.IsPermanent(classify(err)), "unique violation: %v", err)

	// Nothing listens on the port: the error is retryable.
	cfg := s.config()
	cfg.DSN = "postgres://postgres@127.0.0.1:" + itoa(freePort(t)) + "/x?sslmode=disable&connect_timeout=2"
	e, err := newSQLExporter(cfg, exportertest.NewNopSettings(typ))
	require.NoError(t, err)
	require.Error(t, e.start(context.Background(), nil), "start fails when the database is unreachable")
	e.db, err = e.open()
	require.NoError(t, err)
	err = e.push(context.Background(), metricsOf(resA, loadBatch(0, 1)...))
	require.Error(t, err)
	assert.False(t, consumererror.IsPermanent(err), "connection refused: %v", err)
	require.NoError(t, e.shutdown(context.Background()))
}

// TestPostgresDownDuringLoad pushes a steady load through the exporter the
// factory builds (sending queue, one consumer, retries), crashes the server
// a third of the way in, restarts it at two thirds, and checks that every
// value landed exactly once and every window holds its last restatement.
func TestPostgresDownDuringLoad(t *testing.T) {
	srv := startPostgres(t)
	s := newPostgresStore(t, srv)
	cfg := s.config()
	fastRetries(cfg)
	core, logs := observer.New(zap.InfoLevel)
	set := exportertest.NewNopSettings(typ)
	set.Logger = zap.New(core)
	exp, err := NewFactory().CreateMetrics(context.Background(), set, cfg)
	require.NoError(t, err)
	require.NoError(t, exp.Start(context.Background(), componenttest.NewNopHost()))

	const (
		batches = 300
		series  = 5
	)
	ctx := context.Background()
	var downAt, upAt time.Time
	for i := range batches {
		switch i {
		case batches / 3:
			srv.stop("immediate")
			downAt = time.Now()
		case 2 * batches / 3:
			// The batches pushed while the server was down wait in the
			// queue; the consumer keeps retrying the oldest one.
			srv.start()
			upAt = time.Now()
		}
		// Accepted into the queue even while the database is down.
		require.NoError(t, exp.ConsumeMetrics(ctx, metricsOf(resA, loadBatch(i, series)...)))
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("database down for %v", upAt.Sub(downAt))
	// Wait for the queue to drain (Shutdown would drop what is left after one attempt).
	require.Eventually(t, func() bool {
		var n int
		err := s.db.QueryRow(`SELECT COUNT(*) FROM points`).Scan(&n)
		return err == nil && n == batches*series
	}, 90*time.Second, 50*time.Millisecond)
	require.NoError(t, exp.Shutdown(ctx))
	checkLoad(t, s, batches, series)
	retries := logs.FilterMessage("Exporting failed. Will retry the request after interval.").Len()
	t.Logf("%d retried attempts", retries)
	assert.Positive(t, retries, "the exporter never saw the database down")
	assert.Zero(t, logs.FilterMessageSnippet("Dropping data").Len(), "exporterhelper dropped data")
}

func itoa(i int) string { return strconv.Itoa(i) }
