package standin

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

func TestSweepStaleServers(t *testing.T) {
	base := t.TempDir()
	old := time.Now().Add(-time.Hour)
	mk := func(name, pid string, mtime time.Time) string {
		d := filepath.Join(base, name)
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if pid != "" {
			if err := os.WriteFile(filepath.Join(d, "x.pid"), []byte(pid+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Chtimes(d, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		return d
	}
	stale := mk("standin-x-stale", "", old)
	deadPID := mk("standin-x-dead", "2147483646", old)
	live := mk("standin-x-live", strconv.Itoa(os.Getpid()), old)
	fresh := mk("standin-x-fresh", "", time.Now())
	other := mk("other-stale", "", old)

	sweepStaleServers(base, "standin-x-", "x.pid")
	for d, keep := range map[string]bool{stale: false, deadPID: false, live: true, fresh: true, other: true} {
		_, err := os.Stat(d)
		if kept := err == nil; kept != keep {
			t.Errorf("%s: kept %v, want %v", filepath.Base(d), kept, keep)
		}
	}
}

func TestRandomSecret(t *testing.T) {
	a, err := randomSecret()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := randomSecret()
	if len(a) != 32 || a == b {
		t.Errorf("randomSecret: %q, %q", a, b)
	}
}
