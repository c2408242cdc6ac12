package sqlexporter // import "github.com/custommetrics/bundle/exporter/sqlexporter"

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// dialect holds what differs between the two databases. Everything else
// (the upserts, the migration bookkeeping) is the same SQL on both.
type dialect struct {
	driver Driver
	// placeholder returns the n-th (1-based) bind parameter.
	placeholder func(n int) string
	// maxParams bounds the bind parameters of one statement.
	maxParams int
	// lock, when set, is run first in the migration transaction to serialize
	// migrations between exporters sharing the database.
	lock string
	// types names the column types used by the migrations.
	json, bigint, float, text string
	// tableOptions ends every CREATE TABLE.
	tableOptions string
}

// migrationLockKey is the PostgreSQL advisory lock (pg_advisory_xact_lock)
// taken while migrating: an arbitrary constant that only this exporter uses.
const migrationLockKey int64 = 0x2c8e6f0e1d7a4b39

var (
	sqliteDialect = dialect{
		driver:       DriverSQLite,
		placeholder:  func(int) string { return "?" },
		maxParams:    32766, // SQLITE_MAX_VARIABLE_NUMBER since SQLite 3.32
		json:         "TEXT",
		bigint:       "INTEGER",
		float:        "REAL",
		text:         "TEXT",
		tableOptions: " STRICT",
	}
	postgresDialect = dialect{
		driver:      DriverPostgres,
		placeholder: func(n int) string { return "$" + strconv.Itoa(n) },
		maxParams:   65535,
		lock:        "SELECT pg_advisory_xact_lock(" + strconv.FormatInt(migrationLockKey, 10) + ")",
		json:        "JSONB",
		bigint:      "BIGINT",
		float:       "DOUBLE PRECISION",
		text:        "TEXT",
	}
)

// migration is one schema version. Its statements run in order, in the
// migration transaction, after those of the previous versions.
type migration struct {
	version int64
	name    string
	stmts   func(d dialect) []string
	// after, when set, returns statements to run after stmts, read from
	// the database before them (what a rebuild must restore).
	after func(ctx context.Context, tx *sql.Tx, d dialect) ([]string, error)
}

// migrations is the schema history. Append only: never edit a released
// migration, add a new version instead. README.md documents the result.
var migrations = []migration{
	{version: 1, name: "windows and points", stmts: func(d dialect) []string {
		return []string{
			`CREATE TABLE windows (
  series_id TEXT NOT NULL,
  metric TEXT NOT NULL,
  attributes ` + d.json + ` NOT NULL,
  annotations ` + d.json + ` NOT NULL,
  resource_attributes ` + d.json + ` NOT NULL,
  window_start_unix_nano ` + d.bigint + ` NOT NULL,
  window_end_unix_nano ` + d.bigint + ` NOT NULL,
  value ` + d.float + ` NOT NULL,
  aggregation TEXT,
  interval TEXT,
  metric_type TEXT NOT NULL,
  unit TEXT NOT NULL,
  revision ` + d.bigint + ` NOT NULL,
  updated_at_unix_nano ` + d.bigint + ` NOT NULL,
  PRIMARY KEY (series_id, window_start_unix_nano, window_end_unix_nano)
)` + d.tableOptions,
			`CREATE INDEX windows_metric_start ON windows (metric, window_start_unix_nano)`,
			`CREATE TABLE points (
  series_id TEXT NOT NULL,
  metric TEXT NOT NULL,
  attributes ` + d.json + ` NOT NULL,
  annotations ` + d.json + ` NOT NULL,
  resource_attributes ` + d.json + ` NOT NULL,
  time_unix_nano ` + d.bigint + ` NOT NULL,
  value ` + d.float + ` NOT NULL,
  metric_type TEXT NOT NULL,
  unit TEXT NOT NULL,
  updated_at_unix_nano ` + d.bigint + ` NOT NULL,
  PRIMARY KEY (series_id, time_unix_nano)
)` + d.tableOptions,
			`CREATE INDEX points_metric_time ON points (metric, time_unix_nano)`,
		}
	}},
	{version: 2, name: "windows status", stmts: func(d dialect) []string {
		// running, closed or restatement (the aggregate processor's
		// custommetrics.window); NULL for rows from other senders and from
		// before this version.
		return []string{`ALTER TABLE windows ADD COLUMN status TEXT`}
	}},
	{version: 3, name: "cumulative sums and histograms", stmts: func(d dialect) []string {
		return []string{
			`CREATE TABLE cumulatives (
  series_id TEXT NOT NULL,
  metric TEXT NOT NULL,
  attributes ` + d.json + ` NOT NULL,
  annotations ` + d.json + ` NOT NULL,
  resource_attributes ` + d.json + ` NOT NULL,
  start_unix_nano ` + d.bigint + ` NOT NULL,
  time_unix_nano ` + d.bigint + ` NOT NULL,
  value ` + d.float + ` NOT NULL,
  unit TEXT NOT NULL,
  updated_at_unix_nano ` + d.bigint + ` NOT NULL,
  PRIMARY KEY (series_id, start_unix_nano)
)` + d.tableOptions,
			`CREATE INDEX cumulatives_metric_time ON cumulatives (metric, time_unix_nano)`,
			`CREATE TABLE histograms (
  series_id TEXT NOT NULL,
  metric TEXT NOT NULL,
  attributes ` + d.json + ` NOT NULL,
  annotations ` + d.json + ` NOT NULL,
  resource_attributes ` + d.json + ` NOT NULL,
  start_unix_nano ` + d.bigint + ` NOT NULL,
  time_unix_nano ` + d.bigint + ` NOT NULL,
  temporality TEXT NOT NULL,
  kind TEXT NOT NULL,
  count ` + d.bigint + ` NOT NULL,
  sum ` + d.float + `,
  min ` + d.float + `,
  max ` + d.float + `,
  explicit_bounds ` + d.json + ` NOT NULL,
  bucket_counts ` + d.json + ` NOT NULL,
  scale ` + d.bigint + `,
  zero_count ` + d.bigint + `,
  positive_offset ` + d.bigint + `,
  positive_bucket_counts ` + d.json + `,
  negative_offset ` + d.bigint + `,
  negative_bucket_counts ` + d.json + `,
  unit TEXT NOT NULL,
  updated_at_unix_nano ` + d.bigint + ` NOT NULL,
  PRIMARY KEY (series_id, start_unix_nano)
)` + d.tableOptions,
			`CREATE INDEX histograms_metric_time ON histograms (metric, time_unix_nano)`,
		}
	}},
	{version: 4, name: "points keyed by time first", stmts: func(d dialect) []string {
		// Raw points arrive in time order across many series: a key that
		// starts with the series puts each series' next row on its own leaf
		// page, and every such page is written at commit (the WAL on SQLite,
		// full-page images on PostgreSQL). Time first keeps new rows on the
		// last page. Uniqueness, and so the upsert, is unchanged.
		if d.driver == DriverPostgres {
			return []string{
				`ALTER TABLE points DROP CONSTRAINT points_pkey`,
				`ALTER TABLE points ADD CONSTRAINT points_pkey PRIMARY KEY (time_unix_nano, series_id)`,
			}
		}
		// SQLite cannot change a primary key in place: the table is copied.
		// legacy_alter_table leaves views alone while the table is renamed
		// (they name "points", which is there again afterwards); indexes and
		// triggers go with the dropped table, and after restores them.
		return []string{
			`CREATE TABLE points_v4 (
  series_id TEXT NOT NULL,
  metric TEXT NOT NULL,
  attributes ` + d.json + ` NOT NULL,
  annotations ` + d.json + ` NOT NULL,
  resource_attributes ` + d.json + ` NOT NULL,
  time_unix_nano ` + d.bigint + ` NOT NULL,
  value ` + d.float + ` NOT NULL,
  metric_type TEXT NOT NULL,
  unit TEXT NOT NULL,
  updated_at_unix_nano ` + d.bigint + ` NOT NULL,
  PRIMARY KEY (time_unix_nano, series_id)
)` + d.tableOptions,
			`INSERT INTO points_v4 (` + strings.Join(pointColumns, ", ") + `)
SELECT ` + strings.Join(pointColumns, ", ") + ` FROM points ORDER BY time_unix_nano, series_id`,
			`PRAGMA legacy_alter_table = ON`,
			`DROP TABLE points`,
			`ALTER TABLE points_v4 RENAME TO points`,
			`PRAGMA legacy_alter_table = OFF`,
			`CREATE INDEX points_metric_time ON points (metric, time_unix_nano)`,
		}
	}, after: func(ctx context.Context, tx *sql.Tx, d dialect) ([]string, error) {
		if d.driver == DriverPostgres {
			return nil, nil // the key changes in place: nothing else is touched
		}
		// Dropping a table that other tables reference with foreign keys on
		// would delete (or fail on) their rows: refuse instead.
		var fk int
		if err := tx.QueryRowContext(ctx, `PRAGMA foreign_keys`).Scan(&fk); err != nil {
			return nil, err
		}
		if fk != 0 {
			var refs string
			if err := tx.QueryRowContext(ctx, `SELECT coalesce(group_concat(DISTINCT s.name), '') FROM sqlite_schema s, pragma_foreign_key_list(s.name) f
WHERE s.type = 'table' AND f."table" = 'points'`).Scan(&refs); err != nil {
				return nil, err
			}
			if refs != "" {
				return nil, fmt.Errorf("tables %s reference points with foreign keys, which are on: this migration copies points, "+
					"and dropping the old table would delete or refuse their rows; start once with foreign_keys off in the dsn", refs)
			}
		}
		return userObjects(ctx, tx, "points", "points_metric_time")
	}},
}

// userObjects returns the statements that created the indexes and triggers
// on table other than the exporter's own (names in ours) and the key's.
func userObjects(ctx context.Context, tx *sql.Tx, table string, ours ...string) ([]string, error) {
	rows, err := tx.QueryContext(ctx, `SELECT name, sql FROM sqlite_schema
WHERE tbl_name = ? AND type IN ('index', 'trigger') AND sql IS NOT NULL ORDER BY type, name`, table)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var stmts []string
	for rows.Next() {
		var name, stmt string
		if err := rows.Scan(&name, &stmt); err != nil {
			return nil, err
		}
		if !slices.Contains(ours, name) {
			stmts = append(stmts, stmt)
		}
	}
	return stmts, rows.Err()
}

// schemaVersion is the version this exporter writes.
func schemaVersion() int64 { return migrations[len(migrations)-1].version }

// errSchemaTooNew is returned by migrate when the database was migrated by a
// newer exporter.
var errSchemaTooNew = errors.New("database schema is newer than this exporter")

// migrate brings the schema to the latest version in one transaction. On
// PostgreSQL an advisory transaction lock serializes exporters starting at
// the same time; on SQLite the transaction begins IMMEDIATE (see sqliteDSN),
// which takes the database's write lock.
func migrate(ctx context.Context, db *sql.DB, d dialect) (applied []int64, err error) {
	return migrateTo(ctx, db, d, schemaVersion())
}

// migrateTo applies the migrations up to version target (tests start from
// an older schema with it).
func migrateTo(ctx context.Context, db *sql.DB, d dialect, target int64) (applied []int64, err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	if d.lock != "" {
		if _, err = tx.ExecContext(ctx, d.lock); err != nil {
			return nil, err
		}
	}
	if _, err = tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
  version `+d.bigint+` NOT NULL PRIMARY KEY,
  name TEXT NOT NULL,
  applied_at_unix_nano `+d.bigint+` NOT NULL
)`+d.tableOptions); err != nil {
		return nil, err
	}
	done := map[int64]bool{}
	var newest int64
	rows, err := tx.QueryContext(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var v int64
		if err = rows.Scan(&v); err != nil {
			rows.Close()
			return nil, err
		}
		done[v] = true
		newest = max(newest, v)
	}
	if err = errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, err
	}
	if newest > schemaVersion() {
		return nil, fmt.Errorf("%w: it is at version %d, this exporter knows versions up to %d; upgrade the collector",
			errSchemaTooNew, newest, schemaVersion())
	}
	for _, m := range migrations {
		if done[m.version] || m.version > target {
			continue
		}
		var restore []string
		if m.after != nil {
			if restore, err = m.after(ctx, tx, d); err != nil {
				return nil, fmt.Errorf("migration %d (%s): %w", m.version, m.name, err)
			}
		}
		for _, stmt := range append(m.stmts(d), restore...) {
			if _, err = tx.ExecContext(ctx, stmt); err != nil {
				return nil, fmt.Errorf("migration %d (%s): %w", m.version, m.name, err)
			}
		}
		if _, err = tx.ExecContext(ctx,
			`INSERT INTO schema_migrations (version, name, applied_at_unix_nano) VALUES (`+
				d.placeholder(1)+`, `+d.placeholder(2)+`, `+d.placeholder(3)+`)`,
			m.version, m.name, time.Now().UnixNano()); err != nil {
			return nil, err
		}
		applied = append(applied, m.version)
	}
	if err = tx.Commit(); err != nil {
		return nil, err
	}
	return applied, nil
}

// Columns written by the upserts, in bind order.
var (
	windowColumns = []string{
		"series_id", "metric", "attributes", "annotations", "resource_attributes",
		"window_start_unix_nano", "window_end_unix_nano", "value",
		"aggregation", "interval", "metric_type", "unit", "revision", "updated_at_unix_nano", "status",
	}
	pointColumns = []string{
		"series_id", "metric", "attributes", "annotations", "resource_attributes",
		"time_unix_nano", "value", "metric_type", "unit", "updated_at_unix_nano",
	}
)

// windowsUpsert returns the statement that writes n windows. A window that
// exists is replaced (last write wins) and its revision incremented, unless
// nothing would change: writing the same figure again is a no-op, so a
// retried batch leaves the table exactly as it was. A restatement without
// aggregation or interval keeps the stored ones.
func windowsUpsert(d dialect, n int) string {
	var sb strings.Builder
	sb.WriteString("INSERT INTO windows (")
	sb.WriteString(strings.Join(windowColumns, ", "))
	sb.WriteString(") VALUES ")
	writeValues(&sb, d, n, len(windowColumns))
	sb.WriteString(` ON CONFLICT (series_id, window_start_unix_nano, window_end_unix_nano) DO UPDATE SET
  value = excluded.value,
  annotations = excluded.annotations,
  aggregation = COALESCE(excluded.aggregation, windows.aggregation),
  interval = COALESCE(excluded.interval, windows.interval),
  status = COALESCE(excluded.status, windows.status),
  metric_type = excluded.metric_type,
  unit = excluded.unit,
  revision = windows.revision + 1,
  updated_at_unix_nano = excluded.updated_at_unix_nano
WHERE windows.value IS DISTINCT FROM excluded.value
  OR windows.annotations IS DISTINCT FROM excluded.annotations
  OR windows.aggregation IS DISTINCT FROM COALESCE(excluded.aggregation, windows.aggregation)
  OR windows.interval IS DISTINCT FROM COALESCE(excluded.interval, windows.interval)
  OR windows.status IS DISTINCT FROM COALESCE(excluded.status, windows.status)
  OR windows.metric_type IS DISTINCT FROM excluded.metric_type
  OR windows.unit IS DISTINCT FROM excluded.unit`)
	return sb.String()
}

// pointsUpsert returns the statement that writes n raw points; as for
// windows, the last write wins and an identical write is a no-op.
func pointsUpsert(d dialect, n int) string {
	var sb strings.Builder
	sb.WriteString("INSERT INTO points (")
	sb.WriteString(strings.Join(pointColumns, ", "))
	sb.WriteString(") VALUES ")
	writeValues(&sb, d, n, len(pointColumns))
	sb.WriteString(` ON CONFLICT (series_id, time_unix_nano) DO UPDATE SET
  value = excluded.value,
  annotations = excluded.annotations,
  metric_type = excluded.metric_type,
  unit = excluded.unit,
  updated_at_unix_nano = excluded.updated_at_unix_nano
WHERE points.value IS DISTINCT FROM excluded.value
  OR points.annotations IS DISTINCT FROM excluded.annotations
  OR points.metric_type IS DISTINCT FROM excluded.metric_type
  OR points.unit IS DISTINCT FROM excluded.unit`)
	return sb.String()
}

func writeValues(sb *strings.Builder, d dialect, rows, cols int) {
	p := 1
	for r := 0; r < rows; r++ {
		if r > 0 {
			sb.WriteString(", ")
		}
		sb.WriteByte('(')
		for c := 0; c < cols; c++ {
			if c > 0 {
				sb.WriteString(", ")
			}
			sb.WriteString(d.placeholder(p))
			p++
		}
		sb.WriteByte(')')
	}
}
