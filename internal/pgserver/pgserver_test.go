package pgserver

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestLifecycle: a server starts on loopback, answers, survives a crash and
// a restart with its data, and Remove leaves nothing behind.
func TestLifecycle(t *testing.T) {
	if os.Getenv("SQLEXPORTER_SKIP_POSTGRES") == "1" {
		t.Skip("SQLEXPORTER_SKIP_POSTGRES=1")
	}
	s, err := Start(Options{})
	if errors.Is(err, ErrNotInstalled) {
		t.Fatal(err) // CI installs it
	}
	require.NoError(t, err)
	defer s.Remove()
	query := func(sql string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, s.DSN("postgres"))
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, sql)
		return err
	}
	require.NoError(t, query("CREATE TABLE t (x int); INSERT INTO t VALUES (1)"))
	require.NoError(t, s.Stop("immediate"))
	assert.Error(t, query("SELECT 1"), "stopped: refuses connections")
	require.NoError(t, s.Start())
	require.NoError(t, query("SELECT x FROM t"), "the data survives a crash")
	s.Remove()
	_, err = os.Stat(s.dir)
	assert.True(t, os.IsNotExist(err), "Remove deletes the directory")
}
