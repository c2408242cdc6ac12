package sqlexporter // import "github.com/custommetrics/bundle/exporter/sqlexporter"

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.uber.org/zap"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/custommetrics/bundle/exporter/sqlexporter/internal/metadata"
	"github.com/custommetrics/bundle/internal/groupcommit"
)

// sqliteBusyTimeout is how long a SQLite write waits for another writer
// (another exporter or a user's tool) to release the database.
const sqliteBusyTimeout = 10 * time.Second

type sqlExporter struct {
	cfg       *Config
	logger    *zap.Logger
	telemetry *metadata.TelemetryBuilder
	dialect   dialect
	pgConfig  *pgx.ConnConfig // PostgreSQL only
	stmts     stmtCache

	db *sql.DB // set by start
	// commits group-commits concurrent pushes: one transaction per round.
	commits *groupcommit.Committer[*pushed]
}

// pushed is one push and, once its round is written, why it failed.
type pushed struct {
	md  pmetric.Metrics
	err error
}

func newSQLExporter(cfg *Config, set exporter.Settings) (*sqlExporter, error) {
	e := &sqlExporter{cfg: cfg, logger: set.Logger}
	e.commits = groupcommit.New(e.write, 0)
	switch cfg.Driver {
	case DriverSQLite:
		e.dialect = sqliteDialect
	case DriverPostgres:
		e.dialect = postgresDialect
		pc, err := pgx.ParseConfig(cfg.DSN)
		if err != nil {
			return nil, fmt.Errorf("dsn: %w", err) // pgconn redacts the password
		}
		e.pgConfig = pc
	default:
		return nil, fmt.Errorf("unknown driver %q", cfg.Driver)
	}
	tb, err := metadata.NewTelemetryBuilder(set.TelemetrySettings)
	if err != nil {
		return nil, err
	}
	e.telemetry = tb
	return e, nil
}

// start opens the database and migrates the schema. It fails when the
// database cannot be reached: the collector reports it rather than
// accepting data it has nowhere to put.
func (e *sqlExporter) start(ctx context.Context, _ component.Host) error {
	db, err := e.open()
	if err != nil {
		return err
	}
	applied, err := migrate(ctx, db, e.dialect)
	// Two SQLite exporters opening one new file at once can meet while one
	// switches it to WAL, which SQLite answers SQLITE_BUSY without waiting
	// for the busy timeout: try again for a little while.
	for try := 1; err != nil && e.cfg.Driver == DriverSQLite && strings.Contains(err.Error(), "SQLITE_BUSY") && try <= 20; try++ {
		time.Sleep(time.Duration(try) * 10 * time.Millisecond)
		applied, err = migrate(ctx, db, e.dialect)
	}
	if err != nil {
		_ = db.Close()
		return fmt.Errorf("sql exporter: migrating the %s schema: %w", e.cfg.Driver, err)
	}
	if len(applied) > 0 {
		e.logger.Info("Applied schema migrations", zap.String("driver", string(e.cfg.Driver)),
			zap.Int64s("versions", applied), zap.Int64("schema_version", schemaVersion()))
	}
	e.db = db
	return nil
}

func (e *sqlExporter) open() (*sql.DB, error) {
	if e.dialect.driver == DriverPostgres {
		db := stdlib.OpenDB(*e.pgConfig)
		// The sending queue uses one consumer: a few connections suffice,
		// one spare lets a broken connection be replaced without waiting.
		db.SetMaxOpenConns(4)
		db.SetMaxIdleConns(2)
		db.SetConnMaxIdleTime(5 * time.Minute)
		return db, nil
	}
	dsn, dir, err := sqliteDSN(e.cfg.DSN)
	if err != nil {
		return nil, err
	}
	if dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("sql exporter: creating the directory of the SQLite file: %w", err)
		}
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	// One connection: SQLite has one writer at a time anyway, and a single
	// connection keeps an in-memory database alive.
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	return db, nil
}

// sqliteDSN turns the configured dsn (a file path, or a "file:" URI, either
// optionally followed by ?query) into what modernc.org/sqlite opens, adding
// WAL mode, a busy timeout and IMMEDIATE transactions unless the dsn sets
// them. It also returns the directory to create ("" when none is needed).
func sqliteDSN(dsn string) (string, string, error) {
	path, rawQuery, _ := strings.Cut(dsn, "?")
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return "", "", fmt.Errorf("dsn query: %w", err)
	}
	hasPragma := func(name string) bool {
		for _, p := range q["_pragma"] {
			if strings.HasPrefix(strings.ToLower(strings.TrimSpace(p)), name) {
				return true
			}
		}
		return false
	}
	if !hasPragma("busy_timeout") {
		q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", sqliteBusyTimeout.Milliseconds()))
	}
	if !hasPragma("journal_mode") {
		q.Add("_pragma", "journal_mode(WAL)")
	}
	if q.Get("_txlock") == "" {
		// Take the write lock when a transaction begins: a deferred
		// transaction that later needs to write can fail with SQLITE_BUSY
		// without waiting for the busy timeout.
		q.Set("_txlock", "immediate")
	}
	file := strings.TrimPrefix(path, "file:")
	dir := ""
	if file != "" && file != ":memory:" && q.Get("mode") != "memory" {
		dir = filepath.Dir(file)
		if dir == "." {
			dir = ""
		}
	}
	return path + "?" + q.Encode(), dir, nil
}

func (e *sqlExporter) shutdown(context.Context) error {
	e.commits.Close()
	if e.telemetry != nil {
		e.telemetry.Shutdown()
	}
	if e.db == nil {
		return nil
	}
	err := e.db.Close()
	e.db = nil
	return err
}

// push stores md and returns once it is committed (or failed). Concurrent
// pushes share transactions (group commit: internal/groupcommit): under load
// the rows of many small requests (BigFix values, raw points) are written in
// one transaction each round, and every caller still hears only after its
// rows are durable, so no queue is needed to batch, nor to be durable.
// Errors that a later attempt can overcome (connection lost, database locked
// or down, disk full, timeout) are returned as they are, so that the caller
// retries (the aggregate processor at its next tick, a client after a 503);
// errors that the data itself causes are permanent.
func (e *sqlExporter) push(ctx context.Context, md pmetric.Metrics) error {
	if e.db == nil {
		return errors.New("sql exporter: not started")
	}
	p := &pushed{md: md}
	// The answer must say whether the rows were written (a caller told
	// "failed" retries, and must not find them counted already), so it waits
	// for the round even when the caller stops waiting; the write itself is
	// bounded by the configured timeout.
	if err := e.commits.Wait(context.WithoutCancel(ctx), e.commits.Add(p)); err != nil && p.err == nil {
		return err
	}
	return p.err
}

// write writes the pushes of one round in one transaction. When that fails
// for a reason the data causes (permanent), each push is written on its own,
// so that only the push at fault is refused.
func (e *sqlExporter) write(ps []*pushed) error {
	err := e.writeAll(true, ps...)
	if err != nil && isPermanent(err) && len(ps) > 1 {
		for _, p := range ps {
			p.err = e.writeAll(false, p)
		}
		return nil
	}
	for _, p := range ps {
		p.err = err
	}
	return err
}

// writeAll writes the rows of ps in one transaction, bounded by the
// configured timeout (each attempt its own). report counts and logs the
// points that are not stored: once per round, not again when its pushes are
// written one by one.
func (e *sqlExporter) writeAll(report bool, ps ...*pushed) error {
	ctx := context.Background() // the round's callers may be gone; the write is still theirs
	if t := e.cfg.TimeoutConfig.Timeout; t > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t)
		defer cancel()
	}
	mds := make([]pmetric.Metrics, len(ps))
	for i, p := range ps {
		mds[i] = p.md
	}
	b := buildBatch(mds...)
	if report && b.skipped > 0 {
		e.telemetry.ExporterSQLDataPointsSkipped.Add(ctx, int64(b.skipped))
		if n := b.skippedKinds["invalid_timestamp"]; n > 0 {
			e.logger.Warn("Skipped data points whose window ends before it starts", zap.Int("points", n))
		}
		if ce := e.logger.Check(zap.DebugLevel, "Skipped data points the sql exporter does not store"); ce != nil {
			fields := []zap.Field{zap.Int("skipped", b.skipped)}
			for kind, n := range b.skippedKinds {
				fields = append(fields, zap.Int(kind, n))
			}
			ce.Write(fields...)
		}
	}
	if len(b.windows) == 0 && len(b.points) == 0 && len(b.cumulatives) == 0 && len(b.histograms) == 0 {
		return nil
	}
	windows, points, err := e.writeBatch(ctx, b, time.Now().UnixNano())
	if err != nil {
		return classify(err)
	}
	if windows > 0 {
		e.telemetry.ExporterSQLWindowsWritten.Add(ctx, windows)
	}
	if points > 0 {
		e.telemetry.ExporterSQLPointsWritten.Add(ctx, points)
	}
	return nil
}

// classify marks the errors that no retry can fix as permanent.
func classify(err error) error {
	if isPermanent(err) {
		return consumererror.NewPermanent(err)
	}
	return err
}

func isPermanent(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code[:2] {
		case "22", // data exception: invalid value, out of range, bad encoding
			"23", // integrity constraint violation
			"54": // program limit exceeded: a value too large for an index, too many parameters
			return true
		}
		return false
	}
	var sqErr *sqlite.Error
	if errors.As(err, &sqErr) {
		switch sqErr.Code() & 0xff { // the primary result code of an extended one
		case sqlite3.SQLITE_CONSTRAINT, sqlite3.SQLITE_MISMATCH, sqlite3.SQLITE_TOOBIG, sqlite3.SQLITE_RANGE:
			return true
		}
		return false
	}
	return false
}
