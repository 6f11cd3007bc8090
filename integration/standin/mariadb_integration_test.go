//go:build integration

package standin

import (
	"context"
	"os"
	"testing"

	"github.com/go-sql-driver/mysql"
)

func TestStartMariaDB(t *testing.T) {
	ctx := context.Background()
	m, err := StartMariaDB(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	t.Logf("MariaDB on %s:%d in %v (install-db %v)", m.Host, m.Port, m.Started, m.InitDB)

	root, err := m.OpenRoot()
	if err != nil {
		t.Fatal(err)
	}
	var version string
	if err := root.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version); err != nil {
		t.Fatalf("root over the socket: %v", err)
	}
	_ = root.Close()
	t.Logf("version %s", version)

	// root's password is required: the empty one of a fresh install is gone.
	noPW := m.RootConfig()
	noPW.Passwd = ""
	var me *mysql.MySQLError
	if err := pingMariaDB(ctx, noPW); err == nil || !errorsAs(err, &me) || me.Number != 1045 {
		t.Errorf("root without password: %v, want error 1045", err)
	}
	// Nothing listens for root over TCP, and the server is on loopback.
	tcp := m.RootConfig()
	tcp.Net, tcp.Addr = "tcp", m.Host+":"+itoa(m.Port)
	if err := pingMariaDB(ctx, tcp); err == nil {
		t.Error("root logged in over TCP")
	}

	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := os.Stat(m.Dir); !os.IsNotExist(err) {
		t.Errorf("%s still there after Close: %v", m.Dir, err)
	}
	if err := pingMariaDB(ctx, m.RootConfig()); err == nil {
		t.Error("server still answers after Close")
	}
}
