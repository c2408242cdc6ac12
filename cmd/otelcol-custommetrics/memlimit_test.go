package main

import (
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeRoot writes files (path relative to the root -> content) under a new
// directory and returns it.
func fakeRoot(t *testing.T, files map[string]string) string {
	root := t.TempDir()
	for name, content := range files {
		p := filepath.Join(root, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	}
	return root
}

func TestSoftMemoryLimit(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		name       string
		gomemlimit string
		files      map[string]string
		want       int64
		source     string
	}{
		{name: "GOMEMLIMIT set", gomemlimit: "off", files: map[string]string{
			"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/memory.max": "1073741824\n",
		}, want: 0},
		{name: "no cgroup file", want: defaultSoftLimit, source: "default"},
		{name: "v2 unlimited", files: map[string]string{
			"proc/self/cgroup": "0::/system.slice/otelcol.service\n", "sys/fs/cgroup/system.slice/otelcol.service/memory.max": "max\n",
		}, want: defaultSoftLimit, source: "default"},
		{name: "v2 own limit", files: map[string]string{
			"proc/self/cgroup": "0::/system.slice/otelcol.service\n",
			"sys/fs/cgroup/system.slice/otelcol.service/memory.max": "1073741824\n",
			"sys/fs/cgroup/system.slice/memory.max":                 "max\n",
		}, want: 1024 * mib / 100 * 80, source: "cgroup v2 /sys/fs/cgroup/system.slice/otelcol.service/memory.max"},
		{name: "v2 parent's limit is smaller", files: map[string]string{
			"proc/self/cgroup":             "0::/a/b\n",
			"sys/fs/cgroup/a/b/memory.max": "1073741824\n",
			"sys/fs/cgroup/a/memory.max":   "536870912\n",
		}, want: 512 * mib / 100 * 80, source: "cgroup v2 /sys/fs/cgroup/a/memory.max"},
		{name: "v2 in a container: the path is the host's, the limit at the root", files: map[string]string{
			"proc/self/cgroup":         "0::/kubepods/pod1/c1\n",
			"sys/fs/cgroup/memory.max": "268435456\n",
		}, want: 256 * mib / 100 * 80, source: "cgroup v2 /sys/fs/cgroup/memory.max"},
		{name: "v1 limit", files: map[string]string{
			"proc/self/cgroup": "5:cpuacct,cpu:/\n4:memory:/docker/abc\n0::/\n",
			"sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes": "2147483648\n",
			"sys/fs/cgroup/memory/memory.limit_in_bytes":            "9223372036854771712\n",
		}, want: 2048 * mib / 100 * 80, source: "cgroup v1 /sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes"},
		{name: "v1 unlimited", files: map[string]string{
			"proc/self/cgroup": "4:memory:/process_api/x\n",
			"sys/fs/cgroup/memory/process_api/x/memory.limit_in_bytes": "9223372036854771712\n",
		}, want: defaultSoftLimit, source: "default"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := fakeRoot(t, tc.files)
			got, source := softMemoryLimit(tc.gomemlimit, root)
			assert.Equal(t, tc.want, got)
			assert.Equal(t, tc.source, source)
		})
	}
}

func TestRaisedLimit(t *testing.T) {
	const mib = 1 << 20
	got, ok := raisedLimit(192*mib, 100*mib)
	assert.False(t, ok, "a live heap under 75%% of the limit keeps it")
	assert.Equal(t, int64(192*mib), got)
	got, ok = raisedLimit(192*mib, 150*mib)
	assert.True(t, ok)
	assert.Equal(t, int64(300*mib), got, "twice the live heap")
}

// TestRaiseWithLiveHeap: with a limit far below the live heap, the next
// garbage collection raises it to twice the live heap.
func TestRaiseWithLiveHeap(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	debug.SetMemoryLimit(4 << 10)
	raiseWithLiveHeap(4 << 10)
	require.Eventually(t, func() bool {
		runtime.GC()
		return debug.SetMemoryLimit(-1) > 4<<10
	}, 10*time.Second, 10*time.Millisecond)
	assert.GreaterOrEqual(t, debug.SetMemoryLimit(-1), int64(64<<10), "twice a live heap of more than 32 KiB")
}
