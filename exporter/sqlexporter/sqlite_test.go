package sqlexporter

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/storage/filestorage"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/extension/extensiontest"
)

func TestSQLiteWriteReadBack(t *testing.T)      { scenarioWriteReadBack(t, newSQLiteStore(t)) }
func TestSQLiteDuplicateBatch(t *testing.T)     { scenarioDuplicateBatch(t, newSQLiteStore(t)) }
func TestSQLiteRestatement(t *testing.T)        { scenarioRestatement(t, newSQLiteStore(t)) }
func TestSQLiteConcurrentPushes(t *testing.T)   { scenarioConcurrentWriters(t, newSQLiteStore(t)) }
func TestSQLiteEdgeDates(t *testing.T)          { scenarioEdgeDates(t, newSQLiteStore(t)) }
func TestSQLiteWindowStatus(t *testing.T)       { scenarioWindowStatus(t, newSQLiteStore(t)) }
func TestSQLiteDistributions(t *testing.T)      { scenarioCumulativesAndHistograms(t, newSQLiteStore(t)) }
func TestSQLitePointsKeyMigration(t *testing.T) { scenarioPointsKeyMigration(t, newSQLiteStore(t)) }

// TestSQLiteMigrationFromVersion1: a database written by the previous
// exporter gains the status column; its rows keep their figures with a NULL
// status until their next write.
func TestSQLiteMigrationFromVersion1(t *testing.T) {
	s := newSQLiteStore(t)
	tx, err := s.db.Begin()
	require.NoError(t, err)
	_, err = tx.Exec(`CREATE TABLE schema_migrations (version INTEGER NOT NULL PRIMARY KEY, name TEXT NOT NULL, applied_at_unix_nano INTEGER NOT NULL) STRICT`)
	require.NoError(t, err)
	for _, stmt := range migrations[0].stmts(sqliteDialect) {
		_, err = tx.Exec(stmt)
		require.NoError(t, err)
	}
	_, err = tx.Exec(`INSERT INTO schema_migrations VALUES (1, 'windows and points', 0)`)
	require.NoError(t, err)
	_, err = tx.Exec(`INSERT INTO windows VALUES ('s', 'orders', '{}', '{}', '{}', 0, 3600000000000, 7, 'sum', 'hour', 'sum', '', 1, 0)`)
	require.NoError(t, err)
	require.NoError(t, tx.Commit())

	e := s.newExporter(t)
	checkSchema(t, s)
	var status sql.NullString
	var value float64
	require.NoError(t, s.db.QueryRow(`SELECT value, status FROM windows WHERE series_id = 's'`).Scan(&value, &status))
	assert.Equal(t, 7.0, value)
	assert.False(t, status.Valid)
	_ = e
}

// TestSQLiteDefaultPath starts the default configuration in an empty working
// directory: the file is data/custommetrics.db, its directory is created,
// and the database is in WAL mode.
func TestSQLiteDefaultPath(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	e := startExporter(t, createDefaultConfig().(*Config), exportertest.NewNopSettings(typ))
	require.NoError(t, e.push(context.Background(), metricsOf(resA, loadBatch(0, 1)...)))
	_, err := os.Stat(filepath.Join(dir, "data", "custommetrics.db"))
	require.NoError(t, err)
	var mode string
	var timeout int
	require.NoError(t, e.db.QueryRow("PRAGMA journal_mode").Scan(&mode))
	require.NoError(t, e.db.QueryRow("PRAGMA busy_timeout").Scan(&timeout))
	assert.Equal(t, "wal", mode)
	assert.Equal(t, int(sqliteBusyTimeout.Milliseconds()), timeout)
}

func TestSQLiteDSN(t *testing.T) {
	for _, tt := range []struct{ dsn, want, dir string }{
		{"data/custommetrics.db", "data/custommetrics.db?_pragma=busy_timeout%2810000%29&_pragma=journal_mode%28WAL%29&_txlock=immediate", "data"},
		{"/var/lib/m.db?_pragma=busy_timeout(50)", "/var/lib/m.db?_pragma=busy_timeout%2850%29&_pragma=journal_mode%28WAL%29&_txlock=immediate", "/var/lib"},
		{"m.db?_pragma=journal_mode(DELETE)&_txlock=deferred", "m.db?_pragma=journal_mode%28DELETE%29&_pragma=busy_timeout%2810000%29&_txlock=deferred", ""},
		{"file:x/m.db?cache=shared", "file:x/m.db?_pragma=busy_timeout%2810000%29&_pragma=journal_mode%28WAL%29&_txlock=immediate&cache=shared", "x"},
		{":memory:", ":memory:?_pragma=busy_timeout%2810000%29&_pragma=journal_mode%28WAL%29&_txlock=immediate", ""},
	} {
		got, dir, err := sqliteDSN(tt.dsn)
		require.NoError(t, err)
		assert.Equal(t, tt.want, got, tt.dsn)
		assert.Equal(t, tt.dir, dir, tt.dsn)
	}
}

// TestSQLiteMigrations: a second start leaves the schema alone; a database
// migrated by a newer exporter is refused.
func TestSQLiteMigrations(t *testing.T) {
	s := newSQLiteStore(t)
	for range 2 {
		e, err := newSQLExporter(s.config(), exportertest.NewNopSettings(typ))
		require.NoError(t, err)
		require.NoError(t, e.start(context.Background(), nil))
		require.NoError(t, e.shutdown(context.Background()))
	}
	checkSchema(t, s)

	_, err := s.db.Exec(`INSERT INTO schema_migrations (version, name, applied_at_unix_nano) VALUES (999, 'future', 0)`)
	require.NoError(t, err)
	e, err := newSQLExporter(s.config(), exportertest.NewNopSettings(typ))
	require.NoError(t, err)
	err = e.start(context.Background(), nil)
	require.ErrorIs(t, err, errSchemaTooNew)
	assert.ErrorContains(t, err, "version 999")
	require.NoError(t, e.shutdown(context.Background()))
}

// checkSchema verifies the tables, indexes and migration bookkeeping.
func checkSchema(t *testing.T, s store) {
	t.Helper()
	rows, err := s.db.Query(`SELECT version, name FROM schema_migrations ORDER BY version`)
	require.NoError(t, err)
	var versions []int64
	for rows.Next() {
		var v int64
		var name string
		require.NoError(t, rows.Scan(&v, &name))
		versions = append(versions, v)
	}
	require.NoError(t, rows.Close())
	want := make([]int64, 0, len(migrations))
	for _, m := range migrations {
		want = append(want, m.version)
	}
	assert.Equal(t, want, versions)

	var q string
	if s.driver == DriverPostgres {
		q = `SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() ORDER BY indexname`
	} else {
		q = `SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_autoindex_%' ORDER BY name`
	}
	rows, err = s.db.Query(q)
	require.NoError(t, err)
	var indexes []string
	for rows.Next() {
		var name string
		require.NoError(t, rows.Scan(&name))
		indexes = append(indexes, name)
	}
	require.NoError(t, rows.Close())
	if s.driver == DriverPostgres {
		assert.Equal(t, []string{"cumulatives_metric_time", "cumulatives_pkey", "histograms_metric_time", "histograms_pkey",
			"points_metric_time", "points_pkey", "schema_migrations_pkey", "windows_metric_start", "windows_pkey"}, indexes)
	} else {
		assert.Equal(t, []string{"cumulatives_metric_time", "histograms_metric_time", "points_metric_time", "windows_metric_start"}, indexes)
	}
}

// TestSQLiteLockedIsRetryable: while another connection holds the write
// lock, a push fails with a retryable error (exporterhelper retries it and
// the queue keeps the data); once the lock is released it succeeds.
func TestSQLiteLockedIsRetryable(t *testing.T) {
	dir := t.TempDir()
	s := store{driver: DriverSQLite, dsn: filepath.Join(dir, "m.db") + "?_pragma=busy_timeout(50)"}
	s.db = openSQLite(t, s.dsn)
	e := s.newExporter(t)

	ctx := context.Background()
	conn, err := s.db.Conn(ctx)
	require.NoError(t, err)
	defer conn.Close()
	_, err = conn.ExecContext(ctx, "BEGIN IMMEDIATE")
	require.NoError(t, err)
	err = e.push(ctx, metricsOf(resA, loadBatch(0, 3)...))
	require.Error(t, err)
	assert.False(t, consumererror.IsPermanent(err), "%v", err)
	assert.ErrorContains(t, err, "locked")
	_, err = conn.ExecContext(ctx, "ROLLBACK")
	require.NoError(t, err)
	require.NoError(t, e.push(ctx, metricsOf(resA, loadBatch(0, 3)...)))
	assert.Equal(t, 3, s.count(t, "windows"))
}

// TestPermanentErrors classifies real database errors.
func TestSQLitePermanentErrors(t *testing.T) {
	s := newSQLiteStore(t)
	_, err := s.db.Exec(`CREATE TABLE u (k INTEGER PRIMARY KEY) STRICT`)
	require.NoError(t, err)
	_, err = s.db.Exec(`INSERT INTO u VALUES (1)`)
	require.NoError(t, err)
	_, err = s.db.Exec(`INSERT INTO u VALUES (1)`)
	require.Error(t, err)
	assert.True(t, consumererror.IsPermanent(classify(err)), "constraint violation: %v", err)
	_, err = s.db.Exec(`INSERT INTO u VALUES ('not a number')`)
	require.Error(t, err)
	assert.True(t, consumererror.IsPermanent(classify(err)), "type mismatch: %v", err)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = s.db.ExecContext(ctx, `INSERT INTO u VALUES (2)`)
	require.Error(t, err)
	assert.False(t, consumererror.IsPermanent(classify(err)), "canceled: %v", err)
	assert.False(t, consumererror.IsPermanent(classify(sql.ErrConnDone)))
	assert.False(t, consumererror.IsPermanent(classify(errors.New("i/o timeout"))))
}

// TestSQLiteThroughFactoryWithPersistentQueue runs the exporter as the
// Collector does: exporterhelper with a persistent sending queue in
// file_storage.
func TestSQLiteThroughFactoryWithPersistentQueue(t *testing.T) {
	s := newSQLiteStore(t)
	storageDir := t.TempDir()
	fsFactory := filestorage.NewFactory()
	fsCfg := fsFactory.CreateDefaultConfig().(*filestorage.Config)
	fsCfg.Directory = storageDir
	storageID := component.MustNewID("file_storage")
	ext, err := fsFactory.Create(context.Background(), extensiontest.NewNopSettings(fsFactory.Type()), fsCfg)
	require.NoError(t, err)
	host := &storageHost{exts: map[component.ID]component.Component{storageID: ext}}
	require.NoError(t, ext.Start(context.Background(), host))
	defer func() { require.NoError(t, ext.Shutdown(context.Background())) }()

	cfg := s.config()
	fastRetries(cfg)
	q := *cfg.QueueConfig.Get()
	q.StorageID = &storageID
	q.BlockOnOverflow = false
	cfg.QueueConfig = configoptional.Some(q)
	require.NoError(t, cfg.Validate())

	exp, err := NewFactory().CreateMetrics(context.Background(), exportertest.NewNopSettings(typ), cfg)
	require.NoError(t, err)
	require.NoError(t, exp.Start(context.Background(), host))
	for i := range 30 {
		require.NoError(t, exp.ConsumeMetrics(context.Background(), metricsOf(resA, loadBatch(i, 5)...)))
	}
	require.Eventually(t, func() bool { return s.count(t, "points") == 30*5 }, 30*time.Second, 20*time.Millisecond)
	require.NoError(t, exp.Shutdown(context.Background()))
	checkLoad(t, s, 30, 5)
}

type storageHost struct {
	exts map[component.ID]component.Component
}

func (h *storageHost) GetExtensions() map[component.ID]component.Component { return h.exts }

// With the default config (no queue), ConsumeMetrics returns only once the
// rows are committed: a row is readable as soon as its push returns, also
// when many pushes run at once and share transactions.
func TestDefaultPushReturnsOnceCommitted(t *testing.T) {
	s := newSQLiteStore(t)
	exp, err := NewFactory().CreateMetrics(context.Background(), exportertest.NewNopSettings(typ), s.config())
	require.NoError(t, err)
	require.NoError(t, exp.Start(context.Background(), componenttest.NewNopHost()))
	t.Cleanup(func() { require.NoError(t, exp.Shutdown(context.Background())) })
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				name := fmt.Sprintf("m%d_%d", w, i)
				require.NoError(t, exp.ConsumeMetrics(context.Background(), metricsOf(resA, dp{metric: name, end: ns(t0), value: 1})))
				var n int
				require.NoError(t, s.db.QueryRow(`SELECT COUNT(*) FROM points WHERE metric = ?`, name).Scan(&n))
				assert.Equal(t, 1, n, "%s is stored when its push returns", name)
			}
		}()
	}
	wg.Wait()
}

// Migration 4 copies points: with foreign keys on and a table referencing
// points, it refuses (and the exporter does not start) rather than let the
// drop of the old table delete that table's rows.
func TestSQLitePointsKeyMigrationRefusesForeignKeys(t *testing.T) {
	s := newSQLiteStore(t)
	_, err := migrateTo(context.Background(), s.db, sqliteDialect, 3)
	require.NoError(t, err)
	for _, stmt := range []string{
		`INSERT INTO points VALUES ('a', 'cpu', '{}', '{}', '{}', 1000, 1, 'gauge', '', 7)`,
		`CREATE TABLE notes (series_id TEXT, time_unix_nano INTEGER, note TEXT,
  FOREIGN KEY (time_unix_nano, series_id) REFERENCES points (time_unix_nano, series_id) ON DELETE CASCADE)`,
		`INSERT INTO notes VALUES ('a', 1000, 'deploy')`,
	} {
		_, err = s.db.Exec(stmt)
		require.NoError(t, err, stmt)
	}
	cfg := s.config()
	cfg.DSN += "?_pragma=foreign_keys(1)"
	e, err := newSQLExporter(cfg, exportertest.NewNopSettings(typ))
	require.NoError(t, err)
	err = e.start(context.Background(), nil)
	require.ErrorContains(t, err, "notes reference points")
	require.NoError(t, e.shutdown(context.Background()))
	var n int
	require.NoError(t, s.db.QueryRow(`SELECT count(*) FROM notes`).Scan(&n))
	assert.Equal(t, 1, n, "the referencing rows are untouched")

	e = startExporter(t, s.config(), exportertest.NewNopSettings(typ)) // foreign keys off: migrates
	require.NoError(t, s.db.QueryRow(`SELECT count(*) FROM notes`).Scan(&n))
	assert.Equal(t, 1, n)
	_ = e
}
