package collector

import (
	"os"
	"testing"
	"time"
)

func TestProcSampling(t *testing.T) {
	pid := os.Getpid()
	if _, err := CPUTicks(pid); err != nil {
		t.Fatal(err)
	}
	if rss, err := RSS(pid); err != nil || rss <= 0 {
		t.Fatal(rss, err)
	}
	s := Sample(pid, 10*time.Millisecond)
	for end := time.Now().Add(100 * time.Millisecond); time.Now().Before(end); {
	}
	u := s.Stop()
	if u.Samples == 0 || u.RSSMax <= 0 || u.CPU <= 0 {
		t.Fatalf("%+v", u)
	}
}
