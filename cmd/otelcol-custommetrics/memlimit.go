package main

import (
	"bufio"
	"bytes"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
)

// The Go runtime lets the heap grow to twice its live size between two
// garbage collections (GOGC=100) and knows no memory limit unless GOMEMLIMIT
// says one. The distribution therefore sets a soft memory limit
// (debug.SetMemoryLimit) when GOMEMLIMIT is not set:
//
//   - in a memory cgroup with a limit (a container's memory limit, a systemd
//     MemoryMax=): cgroupLimitPercent of that limit, so that the garbage
//     collector works harder before the kernel's OOM killer would;
//   - otherwise defaultSoftLimit. Only while the live heap is small: once it
//     passes raiseAbovePercent of the limit, the limit is raised to twice the
//     live heap (what GOGC=100 allows anyway), so that a collector holding
//     more state than the default anticipates never spends its CPU in the
//     garbage collector. It is never lowered again.
//
// A soft limit never refuses anything and never fails an allocation: it only
// makes the garbage collector run earlier. memory_limiter is what refuses
// data under memory pressure. GOMEMLIMIT (any value, "off" for none) takes
// precedence over all of this.
const (
	cgroupLimitPercent = 80
	defaultSoftLimit   = 192 << 20
	raiseAbovePercent  = 75
)

func init() {
	limit, source := softMemoryLimit(os.Getenv("GOMEMLIMIT"), "/")
	if limit <= 0 {
		return
	}
	debug.SetMemoryLimit(limit)
	slog.Info("Soft memory limit for the Go runtime (set GOMEMLIMIT to override)",
		"limit_mib", limit>>20, "source", source)
	if source == "default" {
		raiseWithLiveHeap(limit)
	}
}

// softMemoryLimit returns the limit to set and where it comes from ("cgroup
// v2 <file>", "cgroup v1 <file>" or "default"), or 0 when GOMEMLIMIT is set.
// root is the file system root that /proc and /sys are read under.
func softMemoryLimit(gomemlimit, root string) (int64, string) {
	if gomemlimit != "" {
		return 0, ""
	}
	if limit, file := cgroupMemoryLimit(root); limit > 0 {
		return limit / 100 * cgroupLimitPercent, file
	}
	return defaultSoftLimit, "default"
}

// cgroupMemoryLimit returns the memory limit of the process's cgroup (the
// smallest of its own and its ancestors' within the mounted hierarchy) and
// the file it was read from; 0 when there is none.
func cgroupMemoryLimit(root string) (int64, string) {
	data, err := os.ReadFile(filepath.Join(root, "proc/self/cgroup"))
	if err != nil {
		return 0, ""
	}
	var best int64
	var bestFile string
	consider := func(dir, name, version string) {
		// In a container the cgroup path names the host's hierarchy while
		// the container sees its own cgroup at the mount's root: walk from
		// the path up to the root, reading what exists.
		for {
			file := filepath.Join(dir, name)
			if v, ok := readLimit(file); ok && (best == 0 || v < best) {
				best, bestFile = v, "cgroup "+version+" "+strings.TrimPrefix(file, filepath.Clean(root))
			}
			parent := filepath.Dir(dir)
			if parent == dir || !strings.HasPrefix(parent, filepath.Join(root, "sys/fs/cgroup")) {
				return
			}
			dir = parent
		}
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		// hierarchy-ID:controller-list:cgroup-path
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[0] == "0" && parts[1] == "":
			consider(filepath.Join(root, "sys/fs/cgroup", parts[2]), "memory.max", "v2")
		case hasController(parts[1], "memory"):
			consider(filepath.Join(root, "sys/fs/cgroup/memory", parts[2]), "memory.limit_in_bytes", "v1")
		}
	}
	return best, bestFile
}

func hasController(list, name string) bool {
	for _, c := range strings.Split(list, ",") {
		if c == name {
			return true
		}
	}
	return false
}

// readLimit reads a cgroup memory limit: "max" (v2) and the page-rounded
// MaxInt64 that v1 reports when there is none are no limit.
func readLimit(file string) (int64, bool) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, false
	}
	s := strings.TrimSpace(string(b))
	if s == "max" {
		return 0, false
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v <= 0 || v >= math.MaxInt64/2 {
		return 0, false
	}
	return v, true
}

// raiseWithLiveHeap raises the default limit to twice the live heap whenever,
// after a garbage collection, the live heap passes raiseAbovePercent of it.
// It runs in the runtime's finalizer goroutine: a sentinel object whose
// finalizer re-arms itself runs once per collection, with no goroutine or
// timer of its own.
func raiseWithLiveHeap(limit int64) {
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	var check func(*gcSentinel)
	check = func(s *gcSentinel) {
		metrics.Read(sample)
		if sample[0].Value.Kind() != metrics.KindUint64 {
			return
		}
		live := int64(sample[0].Value.Uint64())
		if next, ok := raisedLimit(limit, live); ok {
			debug.SetMemoryLimit(next)
			slog.Info("Raised the soft memory limit: the live heap outgrew the default (set GOMEMLIMIT to choose one)",
				"limit_mib", next>>20, "live_heap_mib", live>>20)
			limit = next
		}
		runtime.SetFinalizer(s, check)
	}
	runtime.SetFinalizer(&gcSentinel{}, check)
}

// gcSentinel is larger than the tiny allocator's 16 bytes, so that it is an
// object of its own that the collector frees (finalizes) on its own.
type gcSentinel struct{ _ [32]byte }

// raisedLimit returns the limit for a live heap of live bytes under limit.
func raisedLimit(limit, live int64) (int64, bool) {
	if live <= limit/100*raiseAbovePercent {
		return limit, false
	}
	return 2 * live, true
}
