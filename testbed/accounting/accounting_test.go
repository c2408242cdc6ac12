package accounting

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"

	"github.com/custommetrics/bundle/testbed/loadgen"
)

// schema is the sql exporter's version 1 (exporter/sqlexporter/schema.go), trimmed.
const schema = `
CREATE TABLE windows (series_id TEXT, metric TEXT, attributes TEXT, annotations TEXT, resource_attributes TEXT,
  window_start_unix_nano INTEGER, window_end_unix_nano INTEGER, value REAL);
CREATE TABLE points (series_id TEXT, metric TEXT, attributes TEXT, annotations TEXT, resource_attributes TEXT,
  time_unix_nano INTEGER, value REAL);`

func newDB(t *testing.T, ddl string, stmts ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "db.sqlite")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, s := range append(strings.Split(ddl, ";"), stmts...) {
		if strings.TrimSpace(s) == "" {
			continue
		}
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	return path
}

func check(t *testing.T, path string, l *loadgen.Ledger) *Report {
	t.Helper()
	db, err := OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st, err := Read(context.Background(), db, SQLite, "tb_")
	if err != nil {
		t.Fatal(err)
	}
	return Compare(l, st)
}

func ledger() *loadgen.Ledger {
	l := loadgen.NewLedger()
	l.Ack([]loadgen.Point{
		{Metric: "tb_a", Window: 100, Value: 2}, {Metric: "tb_a", Window: 100, Value: 3},
		{Metric: "tb_k", Key: "k1", Window: 100, Value: 1},
		{Metric: "tb_bf.deployments", Window: loadgen.PointsWindow, Value: 4},
		{Metric: "tb_bf.deployments", Window: loadgen.PointsWindow, Value: 5},
	})
	return l
}

const rowsOK = `INSERT INTO windows VALUES
 ('1','tb_a','{}','{"anomaly.score":0.1}','{"custommetrics.api":"threatconnect"}',100,200,5),
 ('2','tb_k','{"custommetrics.key":"k1"}','{}','{}',100,200,1),
 ('3','other_metric','{}','{}','{}',100,200,99)`

const pointsOK = `INSERT INTO points VALUES ('4','tb_bf.deployments','{}','{}','{}',1,4), ('4','tb_bf.deployments','{}','{}','{}',2,5)`

func TestCompareExact(t *testing.T) {
	r := check(t, newDB(t, schema, rowsOK, pointsOK), ledger())
	if !r.OK() || r.Exact != 3 || r.Figures != 3 {
		t.Fatalf("%s", r)
	}
}

func TestCompareLossAndExtra(t *testing.T) {
	path := newDB(t, schema,
		`INSERT INTO windows VALUES ('1','tb_a','{}','{}','{}',100,200,4),
		 ('9','tb_a','{}','{}','{}',300,400,1),
		 ('8','tb_a.anomaly.score','{}','{}','{}',100,200,0.5)`,
		`INSERT INTO points VALUES ('4','tb_bf.deployments','{}','{}','{}',1,4)`)
	r := check(t, path, ledger())
	if r.OK() || r.Short != 2 || r.Missing != 1 || r.Unexpected != 1 || r.LostPoints != 1 || r.Ignored != 1 {
		t.Fatalf("%s", r)
	}
	l := ledger()
	r = check(t, newDB(t, schema, strings.Replace(rowsOK, "100,200,5", "100,200,6", 1), pointsOK), l)
	if r.Over != 1 {
		t.Fatalf("a figure above the acknowledged values is not flagged: %s", r)
	}
}

func TestCompareUnknownOutcome(t *testing.T) {
	l := ledger()
	l.Unsure([]loadgen.Point{{Metric: "tb_a", Window: 100, Value: 1}, {Metric: "tb_u", Window: 100, Value: 7}})
	// tb_a counted the in-doubt value, tb_u did not: both fine.
	r := check(t, newDB(t, schema, strings.Replace(rowsOK, "100,200,5", "100,200,6", 1), pointsOK), l)
	if !r.OK() || r.WithUnknown != 1 {
		t.Fatalf("%s", r)
	}
}

// The latest window end wins when one window start has several rows.
func TestCompareDuplicateStarts(t *testing.T) {
	r := check(t, newDB(t, schema, rowsOK, pointsOK, `INSERT INTO windows VALUES ('1','tb_a','{}','{}','{}',100,150,2)`), ledger())
	if !r.OK() || r.Duplicates != 1 {
		t.Fatalf("%s", r)
	}
}

func TestReadRenamedColumns(t *testing.T) {
	ddl := `CREATE TABLE windows (metric_name TEXT, attrs TEXT, window_start INTEGER, window_end INTEGER, figure REAL)`
	path := newDB(t, ddl, `INSERT INTO windows VALUES ('tb_a','{}',100,200,5)`)
	l := loadgen.NewLedger()
	l.Ack([]loadgen.Point{{Metric: "tb_a", Window: 100, Value: 5}})
	if r := check(t, path, l); !r.OK() {
		t.Fatalf("%s", r)
	}
	path = newDB(t, `CREATE TABLE windows (metric TEXT, attributes TEXT, start INTEGER, v REAL)`)
	db, _ := OpenSQLite(path)
	defer db.Close()
	if _, err := Read(context.Background(), db, SQLite, "tb_"); err == nil || !strings.Contains(err.Error(), "none of the columns") {
		t.Fatalf("unknown schema: %v", err)
	}
	path = newDB(t, `CREATE TABLE other (x INTEGER)`)
	db2, _ := OpenSQLite(path)
	defer db2.Close()
	if _, err := Read(context.Background(), db2, SQLite, "tb_"); err == nil {
		t.Fatal("a database without windows must be an error")
	}
}
