package standin

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRepoRoot(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "module github.com/secretsaga/secretsaga\n") {
		t.Errorf("%s/go.mod is not this module's", root)
	}
}

func TestFreePort(t *testing.T) {
	p, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	if p <= 0 || p > 65535 {
		t.Fatalf("port %d", p)
	}
}

func TestTail(t *testing.T) {
	tl := newTail(8, nil)
	tl.Write([]byte("0123456789"))
	tl.Write([]byte("ab"))
	if got := tl.String(); got != "456789ab" {
		t.Errorf("tail = %q", got)
	}
	if got := lastLines("a\nb\nc\n", 2); got != "b\nc" {
		t.Errorf("lastLines = %q", got)
	}
}

func TestPgHBAEnforcesPasswords(t *testing.T) {
	// Only the superuser may skip the password, and only loopback is listed.
	for _, line := range strings.Split(pgHBA, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		method := f[len(f)-1]
		user := f[2]
		if method == "trust" && user != "postgres" {
			t.Errorf("trust for %q: %q", user, line)
		}
		if f[0] == "host" && f[3] != "127.0.0.1/32" {
			t.Errorf("non-loopback address: %q", line)
		}
	}
}
