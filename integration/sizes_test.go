//go:build integration

package integration

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/secretsaga/secretsaga/integration/standin"
	"github.com/secretsaga/secretsaga/shared/functions"
)

// TestBootstrapSizes: every function's bootstrap that `make build` made
// (linux/arm64, stripped; `make test` builds before the integration tests)
// is within its budget, functions.BootstrapBudget: 10 MB, or for the
// database-facing ones that do not fit it yet the ceiling they must not
// grow past. A failure names the function, its size and its budget.
func TestBootstrapSizes(t *testing.T) {
	root, err := standin.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "build", "lambda")
	if _, err := os.Stat(dir); os.IsNotExist(err) {
		t.Skip("no build/lambda: run make build (make test does)")
	}
	const mb = 1 << 20
	for _, n := range functions.Names() {
		st, err := os.Stat(filepath.Join(dir, n, "bootstrap"))
		if err != nil {
			t.Errorf("%s: %v (make build builds every function)", n, err)
			continue
		}
		budget := functions.BootstrapBudget(n)
		if st.Size() > budget {
			t.Errorf("%s/bootstrap is %.2f MB (%d bytes), over its budget of %.2f MB (%d bytes)", n, float64(st.Size())/mb, st.Size(), float64(budget)/mb, budget)
			continue
		}
		over := ""
		if st.Size() > functions.MaxBootstrapBytes {
			over = ", over the 10 MB target"
		}
		t.Logf("%s/bootstrap %.2f MB (budget %.2f MB%s)", n, float64(st.Size())/mb, float64(budget)/mb, over)
	}
}
