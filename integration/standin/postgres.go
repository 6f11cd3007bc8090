package standin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresReadyTimeout bounds the wait for the postmaster to accept
// connections.
const PostgresReadyTimeout = 30 * time.Second

// pgHBA is the cluster's whole pg_hba.conf: the superuser "postgres" gets in
// without a password (local socket and 127.0.0.1), every other role must
// prove its password with SCRAM-SHA-256, so a wrong password fails to log
// in. Nothing but loopback is listed, so nothing else can connect.
const pgHBA = `# written by integration/standin: throwaway cluster
# TYPE  DATABASE  USER      ADDRESS         METHOD
local   all       postgres                  trust
host    all       postgres  127.0.0.1/32    trust
local   all       all                       scram-sha-256
host    all       all       127.0.0.1/32    scram-sha-256
`

// Postgres is a running throwaway PostgreSQL cluster on loopback.
type Postgres struct {
	Host string // 127.0.0.1
	Port int
	User string // superuser, "postgres", no password from loopback

	Dir     string        // the cluster's directory (data, socket, log); removed by Close
	BinDir  string        // where initdb and postgres were found
	InitDB  time.Duration // initdb's share of Started
	Started time.Duration // initdb + start + first successful connection

	proc      *proc
	closeOnce sync.Once
	closeErr  error
}

// AdminDSN returns the superuser's connection string over TCP.
func (p *Postgres) AdminDSN() string {
	return fmt.Sprintf("postgres://%s@%s:%d/postgres?sslmode=disable", p.User, p.Host, p.Port)
}

// SocketDir is the directory of the cluster's unix socket.
func (p *Postgres) SocketDir() string { return filepath.Join(p.Dir, "sock") }

// Output returns the tail of the postmaster's log.
func (p *Postgres) Output() string { return p.proc.out.String() }

// PostgresBinDir returns the directory holding initdb and postgres: the
// newest /usr/lib/postgresql/<version>/bin (Debian's layout), else
// `pg_config --bindir`, else the directory of initdb on PATH.
func PostgresBinDir() (string, error) {
	ok := func(dir string) bool {
		for _, b := range []string{"initdb", "postgres"} {
			if fi, err := os.Stat(filepath.Join(dir, b)); err != nil || fi.Mode()&0o111 == 0 {
				return false
			}
		}
		return true
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { // numeric: 9.6 < 15 < 16
		vi, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(dirs[i])), 64)
		vj, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(dirs[j])), 64)
		return vi < vj
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		if ok(dirs[i]) {
			return dirs[i], nil
		}
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		if d := strings.TrimSpace(string(out)); ok(d) {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil && ok(filepath.Dir(real)) {
			return filepath.Dir(real), nil
		}
	}
	return "", errors.New("standin: PostgreSQL server binaries (initdb, postgres) not found; run integration/install-deps.sh")
}

// runAs is who the cluster's processes run as: the current user, or, when
// that is root (initdb and postgres refuse root), the postgres system user
// that Debian's package creates.
type runAs struct {
	cred *syscall.Credential // nil: the current user
	uid  int
	gid  int
}

func postgresUser() (runAs, error) {
	if os.Geteuid() != 0 {
		return runAs{uid: os.Getuid(), gid: os.Getgid()}, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return runAs{}, fmt.Errorf("standin: running as root, and there is no postgres user to run the cluster as (%v); run integration/install-deps.sh", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return runAs{
		cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}},
		uid:  uid, gid: gid,
	}, nil
}

// searchable reports whether every ancestor of dir lets uid/gid through.
func searchable(dir string, uid, gid int) error {
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		mode := fi.Mode().Perm()
		okay := mode&0o001 != 0 ||
			(int(st.Uid) == uid && mode&0o100 != 0) ||
			(int(st.Gid) == gid && mode&0o010 != 0)
		if !okay {
			return fmt.Errorf("standin: %s (mode %v) cannot be searched by uid %d; pass \"\" (os.TempDir) or a world-searchable dir", d, mode, uid)
		}
		if filepath.Dir(d) == d {
			return nil
		}
	}
}

// StartPostgres creates and starts a throwaway cluster: a fresh directory
// under dir ("" means os.TempDir()), initdb with superuser "postgres",
// pg_hba.conf as pgHBA, and the postmaster listening on 127.0.0.1 only with
// fsync off and its unix socket in the cluster's own directory. As root, the
// cluster runs as the postgres user, so dir and its ancestors must be
// searchable by that user (t.TempDir() is not: its parent is 0700).
//
// The postmaster runs in the foreground as our child (what `pg_ctl start`
// would do in the background), so it dies with the test. Call Close when
// done: immediate shutdown, then the directory is removed.
func StartPostgres(ctx context.Context, dir string) (*Postgres, error) {
	return StartPostgresTLS(ctx, dir, nil)
}

// StartPostgresTLS is StartPostgres with TLS on (ssl=on with t's
// certificate) when t is not nil; clients choose TLS or not, as pg_hba.conf
// allows both.
func StartPostgresTLS(ctx context.Context, dir string, t *TLS) (*Postgres, error) {
	bin, err := PostgresBinDir()
	if err != nil {
		return nil, err
	}
	as, err := postgresUser()
	if err != nil {
		return nil, err
	}
	if dir == "" {
		dir = os.TempDir()
	}
	sweepStaleServers(dir, "standin-postgres-", filepath.Join("data", "postmaster.pid"))
	begin := time.Now()
	cdir, err := os.MkdirTemp(dir, "standin-postgres-")
	if err != nil {
		return nil, fmt.Errorf("standin: %w", err)
	}
	fail := func(err error) (*Postgres, error) {
		_ = os.RemoveAll(cdir)
		return nil, err
	}
	if err := searchable(cdir, as.uid, as.gid); err != nil {
		return fail(err)
	}
	data, sock := filepath.Join(cdir, "data"), filepath.Join(cdir, "sock")
	if len(sock)+len("/.s.PGSQL.65535") > 107 {
		return fail(fmt.Errorf("standin: socket path under %s is too long for a unix socket; use a shorter dir", cdir))
	}
	if err := os.Chmod(cdir, 0o755); err != nil {
		return fail(fmt.Errorf("standin: %w", err))
	}
	if err := os.Mkdir(sock, 0o700); err != nil {
		return fail(fmt.Errorf("standin: %w", err))
	}
	for _, d := range []string{cdir, sock} {
		if err := os.Chown(d, as.uid, as.gid); err != nil {
			return fail(fmt.Errorf("standin: %w", err))
		}
	}

	// initdb
	initOut := newTail(16<<10, nil)
	initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"),
		"-D", data, "-U", "postgres", "-A", "trust",
		"-E", "UTF8", "--no-locale", "--no-sync")
	initdb.Env = pgEnv()
	initdb.Stdout, initdb.Stderr = initOut, initOut
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: as.cred, Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := initdb.Run(); err != nil {
		return fail(fmt.Errorf("standin: initdb: %v\n--- initdb output ---\n%s", err, lastLines(initOut.String(), 25)))
	}
	initTook := time.Since(begin)
	hba := filepath.Join(data, "pg_hba.conf")
	if err := os.WriteFile(hba, []byte(pgHBA), 0o600); err != nil {
		return fail(fmt.Errorf("standin: %w", err))
	}
	if err := os.Chown(hba, as.uid, as.gid); err != nil {
		return fail(fmt.Errorf("standin: %w", err))
	}
	if t != nil {
		if err := writeTLS(data, t, as); err != nil {
			return fail(err)
		}
	}

	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		p, inUse, err := startPostmaster(ctx, bin, cdir, as, t != nil)
		if err == nil {
			p.BinDir, p.InitDB, p.Started = bin, initTook, time.Since(begin)
			return p, nil
		}
		lastErr = err
		if !inUse {
			break
		}
	}
	return fail(lastErr)
}

func startPostmaster(ctx context.Context, bin, cdir string, as runAs, withTLS bool) (*Postgres, bool, error) {
	port, err := FreePort()
	if err != nil {
		return nil, false, err
	}
	logFile, err := os.Create(filepath.Join(cdir, "postgres.log"))
	if err != nil {
		return nil, false, fmt.Errorf("standin: %w", err)
	}
	cmd := exec.Command(filepath.Join(bin, "postgres"),
		"-D", filepath.Join(cdir, "data"),
		"-p", strconv.Itoa(port),
		"-k", filepath.Join(cdir, "sock"),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
		"-c", "password_encryption=scram-sha-256")
	if withTLS {
		// Relative to the data directory, where writeTLS put them.
		cmd.Args = append(cmd.Args, "-c", "ssl=on", "-c", "ssl_cert_file="+tlsCertFile, "-c", "ssl_key_file="+tlsKeyFile)
	}
	cmd.Env = pgEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: as.cred}
	pr, err := startProc("postgres", cmd, newTail(16<<10, logFile))
	if err != nil {
		logFile.Close()
		return nil, false, err
	}
	p := &Postgres{Host: "127.0.0.1", Port: port, User: "postgres", Dir: cdir, proc: pr}
	err = pr.waitReady(ctx, PostgresReadyTimeout, func(ctx context.Context) error {
		conn, err := pgx.Connect(ctx, p.AdminDSN())
		if err != nil {
			return err
		}
		return conn.Close(ctx)
	})
	if err != nil {
		inUse := pr.exited() && addrInUse(pr)
		_ = pr.stop(syscall.SIGQUIT, 5*time.Second)
		return nil, inUse, err
	}
	return p, false, nil
}

// pgEnv is our environment without PG* variables, which initdb and
// postgres would otherwise pick up.
func pgEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			env = append(env, kv)
		}
	}
	return env
}

// Close shuts the cluster down the way `pg_ctl stop -m immediate` does
// (SIGQUIT to the postmaster, SIGKILL to what is left after 5 s) and
// removes its directory. Safe to call more than once.
func (p *Postgres) Close() error {
	p.closeOnce.Do(func() {
		_ = p.proc.stop(syscall.SIGQUIT, 5*time.Second)
		p.closeErr = os.RemoveAll(p.Dir)
	})
	return p.closeErr
}
