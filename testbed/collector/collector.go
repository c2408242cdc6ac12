// Package collector builds the distribution and runs it as a separate
// process: start with a configuration in a working directory, wait for
// health_check, sample CPU and RSS from /proc, stop with SIGTERM or kill -9.
package collector

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Build compiles ./cmd/otelcol-custommetrics of the module at root into out.
func Build(ctx context.Context, root, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/otelcol-custommetrics")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %w\n%s", err, b)
	}
	return nil
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Process is one running server process.
type Process struct {
	Bin  string
	Args []string
	Dir  string // working directory
	Log  string // file receiving stdout and stderr
	// Env is added to the testbed's own environment (e.g. GOMEMLIMIT=...).
	Env []string

	cmd  *exec.Cmd
	done chan struct{}
	err  error // the exit status, once done is closed
}

// Start starts the process.
func (p *Process) Start() error {
	logf, err := os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	p.cmd = exec.Command(p.Bin, p.Args...)
	if len(p.Env) > 0 {
		p.cmd.Env = append(os.Environ(), p.Env...)
	}
	p.cmd.Dir = p.Dir
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	p.done = make(chan struct{})
	go func() {
		p.err = p.cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return nil
}

// Pid is the process ID.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Exited reports whether the process has exited, and its status.
func (p *Process) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// WaitHTTP polls url until it answers 200, the process exits or timeout passes.
func (p *Process) WaitHTTP(url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	c := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		if done, err := p.Exited(); done {
			return fmt.Errorf("exited before becoming ready (%v); log:\n%s", err, p.Tail(40))
		}
		if resp, err := c.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready after %v; log:\n%s", url, timeout, p.Tail(40))
}

// Stop sends SIGTERM and waits up to timeout for a clean exit (then kills).
func (p *Process) Stop(timeout time.Duration) error {
	if done, err := p.Exited(); done {
		return fmt.Errorf("had already exited: %v", err)
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("did not exit within %v of SIGTERM", timeout)
	}
}

// Kill sends SIGKILL (kill -9) and waits for the exit.
func (p *Process) Kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// Tail returns the last n lines of the log.
func (p *Process) Tail(n int) string {
	b, _ := os.ReadFile(p.Log)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Usage is what a Sampler saw.
type Usage struct {
	// CPU is the average CPU used while sampling, in cores (1.0 = one core busy).
	CPU float64
	// RSSMax and RSSLast are the resident set size, in bytes.
	RSSMax, RSSLast int64
	Samples         int
}

// Sampler samples a process's CPU time (/proc/<pid>/stat) and RSS
// (/proc/<pid>/status) periodically.
type Sampler struct {
	pid      int
	stop     chan struct{}
	wg       sync.WaitGroup
	mu       sync.Mutex
	u        Usage
	t0       time.Time
	ticks0   int64
	lastT    time.Time
	lastTick int64
}

// clockTicks is USER_HZ: 100 on every Linux architecture Go supports.
const clockTicks = 100

// Sample starts sampling pid every period.
func Sample(pid int, period time.Duration) *Sampler {
	s := &Sampler{pid: pid, stop: make(chan struct{}), t0: time.Now()}
	s.ticks0, _ = CPUTicks(pid)
	s.lastT, s.lastTick = s.t0, s.ticks0
	s.wg.Go(func() {
		tk := time.NewTicker(period)
		defer tk.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-tk.C:
				s.sample()
			}
		}
	})
	return s
}

func (s *Sampler) sample() {
	ticks, err1 := CPUTicks(s.pid)
	rss, err2 := RSS(s.pid)
	if err1 != nil || err2 != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.u.Samples++
	s.u.RSSLast = rss
	s.u.RSSMax = max(s.u.RSSMax, rss)
	s.lastT, s.lastTick = time.Now(), ticks
}

// Stop ends sampling and returns the usage between Sample and the last sample.
func (s *Sampler) Stop() Usage {
	close(s.stop)
	s.wg.Wait()
	s.sample()
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.u
	if d := s.lastT.Sub(s.t0).Seconds(); d > 0 {
		u.CPU = float64(s.lastTick-s.ticks0) / clockTicks / d
	}
	return u
}

// CPUTicks returns utime+stime of pid in clock ticks.
func CPUTicks(pid int) (int64, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	return ut + st, errors.Join(err1, err2)
}

// RSS returns VmRSS of pid in bytes.
func RSS(pid int) (int64, error) {
	f, err := os.Open(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			fs := strings.Fields(rest)
			if len(fs) < 1 {
				break
			}
			kb, err := strconv.ParseInt(fs[0], 10, 64)
			return kb * 1024, err
		}
	}
	return 0, errors.New("no VmRSS")
}
