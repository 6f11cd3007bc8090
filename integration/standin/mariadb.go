package standin

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"
)

// MariaDBReadyTimeout bounds the wait for mariadbd to accept connections.
const MariaDBReadyTimeout = 30 * time.Second

// MariaDB is a running throwaway MariaDB server on loopback.
type MariaDB struct {
	Host string // 127.0.0.1
	Port int

	// AdminUser and AdminPassword log in as the server's superuser over
	// RootConfig's unix socket; the password is random per server.
	AdminUser     string
	AdminPassword string

	Dir     string        // data, socket, log; removed by Close
	InitDB  time.Duration // mariadb-install-db's share of Started
	Started time.Duration // install-db + start + root password set

	proc      *proc
	closeOnce sync.Once
	closeErr  error
}

// Socket is the path of the server's unix socket.
func (m *MariaDB) Socket() string { return filepath.Join(m.Dir, "sock", "mysqld.sock") }

// Output returns the tail of mariadbd's log.
func (m *MariaDB) Output() string { return m.proc.out.String() }

// RootConfig returns a driver config for the superuser over the unix socket
// (the only way in for root: root@localhost does not match TCP clients when
// names are not resolved). Each call returns a fresh copy.
func (m *MariaDB) RootConfig() *mysql.Config {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd = m.AdminUser, m.AdminPassword
	cfg.Net, cfg.Addr = "unix", m.Socket()
	cfg.Timeout = 5 * time.Second
	cfg.InterpolateParams = true
	return cfg
}

// OpenRoot opens a database/sql handle as the superuser.
func (m *MariaDB) OpenRoot() (*sql.DB, error) {
	conn, err := mysql.NewConnector(m.RootConfig())
	if err != nil {
		return nil, err
	}
	return sql.OpenDB(conn), nil
}

// mariadbBins finds mariadb-install-db and mariadbd (Debian puts the latter
// in /usr/sbin, which a non-root PATH may lack).
func mariadbBins() (installDB, server string, err error) {
	find := func(name string, dirs ...string) string {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
		for _, d := range dirs {
			p := filepath.Join(d, name)
			if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
				return p
			}
		}
		return ""
	}
	installDB = find("mariadb-install-db", "/usr/bin", "/usr/local/bin")
	server = find("mariadbd", "/usr/sbin", "/usr/local/sbin", "/usr/bin")
	if installDB == "" || server == "" {
		return "", "", errors.New("standin: MariaDB server binaries (mariadb-install-db, mariadbd) not found; run integration/install-deps.sh")
	}
	return installDB, server, nil
}

// serviceUser is who a server runs as: the current user, or when that is
// root, the system user the Debian package created (servers refuse root, or
// should not have it).
func serviceUser(name string) (runAs, error) {
	if os.Geteuid() != 0 {
		return runAs{uid: os.Getuid(), gid: os.Getgid()}, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return runAs{}, fmt.Errorf("standin: running as root, and there is no %s user to run the server as (%v); run integration/install-deps.sh", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return runAs{
		cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}},
		uid:  uid, gid: gid,
	}, nil
}

// makeServerDir creates dir/<prefix>XXXX and the named subdirectories,
// all owned by as, after checking that as can reach it.
func makeServerDir(dir, prefix string, as runAs, subdirs ...string) (string, error) {
	cdir, err := os.MkdirTemp(dir, prefix)
	if err != nil {
		return "", fmt.Errorf("standin: %w", err)
	}
	fail := func(err error) (string, error) {
		_ = os.RemoveAll(cdir)
		return "", err
	}
	if err := searchable(cdir, as.uid, as.gid); err != nil {
		return fail(err)
	}
	if err := os.Chmod(cdir, 0o755); err != nil {
		return fail(fmt.Errorf("standin: %w", err))
	}
	if err := os.Chown(cdir, as.uid, as.gid); err != nil {
		return fail(fmt.Errorf("standin: %w", err))
	}
	for _, s := range subdirs {
		d := filepath.Join(cdir, s)
		if err := os.Mkdir(d, 0o700); err != nil {
			return fail(fmt.Errorf("standin: %w", err))
		}
		if err := os.Chown(d, as.uid, as.gid); err != nil {
			return fail(fmt.Errorf("standin: %w", err))
		}
	}
	return cdir, nil
}

// randomSecret is a password for a throwaway server's superuser: hex, so
// it needs no quoting anywhere.
func randomSecret() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// StartMariaDB creates and starts a throwaway MariaDB server: a fresh
// directory under dir ("" means os.TempDir()), system tables from
// mariadb-install-db, and mariadbd listening on 127.0.0.1 only, with its
// socket in that directory, no binary log, and durability traded for speed.
// root@localhost gets a random password (AdminPassword) as soon as the
// server answers. As root, the server runs as the mysql user, so dir and its
// ancestors must be searchable by that user.
//
// mariadbd runs as our child, in its own process group with SIGKILL as its
// parent-death signal, so it dies with the test. Close stops it and removes
// the directory.
func StartMariaDB(ctx context.Context, dir string) (*MariaDB, error) {
	return StartMariaDBTLS(ctx, dir, nil)
}

// StartMariaDBTLS is StartMariaDB with TLS on (t's certificate) when t is
// not nil; clients choose TLS or not, unless an account REQUIREs SSL.
func StartMariaDBTLS(ctx context.Context, dir string, t *TLS) (*MariaDB, error) {
	installDB, server, err := mariadbBins()
	if err != nil {
		return nil, err
	}
	as, err := serviceUser("mysql")
	if err != nil {
		return nil, err
	}
	if dir == "" {
		dir = os.TempDir()
	}
	sweepStaleServers(dir, "standin-mariadb-", "mariadbd.pid")
	begin := time.Now()
	cdir, err := makeServerDir(dir, "standin-mariadb-", as, "data", "sock", "tmp")
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*MariaDB, error) {
		_ = os.RemoveAll(cdir)
		return nil, err
	}
	if len(filepath.Join(cdir, "sock", "mysqld.sock")) > 107 {
		return fail(fmt.Errorf("standin: socket path under %s is too long for a unix socket; use a shorter dir", cdir))
	}

	// "normal" gives root@localhost an empty password (set below) instead
	// of unix_socket authentication, which would tie the admin login to the
	// OS user that runs the test.
	initOut := newTail(16<<10, nil)
	initdb := exec.CommandContext(ctx, installDB,
		"--no-defaults",
		"--datadir="+filepath.Join(cdir, "data"),
		"--auth-root-authentication-method=normal",
		"--skip-test-db",
		"--skip-name-resolve",
		"--innodb-buffer-pool-size=16M")
	initdb.Stdout, initdb.Stderr = initOut, initOut
	initdb.Dir = cdir
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: as.cred, Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := initdb.Run(); err != nil {
		return fail(fmt.Errorf("standin: mariadb-install-db: %v\n--- mariadb-install-db output ---\n%s", err, lastLines(initOut.String(), 25)))
	}
	initTook := time.Since(begin)
	pw, err := randomSecret()
	if err != nil {
		return fail(err)
	}
	if t != nil {
		if err := writeTLS(cdir, t, as); err != nil {
			return fail(err)
		}
	}

	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		m, inUse, err := startMariaDBD(ctx, server, cdir, as, pw, t != nil)
		if err == nil {
			m.InitDB, m.Started = initTook, time.Since(begin)
			return m, nil
		}
		lastErr = err
		if !inUse {
			break
		}
	}
	return fail(lastErr)
}

func startMariaDBD(ctx context.Context, server, cdir string, as runAs, adminPW string, withTLS bool) (*MariaDB, bool, error) {
	port, err := FreePort()
	if err != nil {
		return nil, false, err
	}
	logFile, err := os.Create(filepath.Join(cdir, "mariadbd.log"))
	if err != nil {
		return nil, false, fmt.Errorf("standin: %w", err)
	}
	m := &MariaDB{Host: "127.0.0.1", Port: port, AdminUser: "root", Dir: cdir}
	// --no-defaults keeps the machine's /etc/mysql out; without --log-error
	// the error log goes to stderr, which the tail keeps for failures.
	cmd := exec.Command(server,
		"--no-defaults",
		"--datadir="+filepath.Join(cdir, "data"),
		"--tmpdir="+filepath.Join(cdir, "tmp"),
		"--socket="+m.Socket(),
		"--pid-file="+filepath.Join(cdir, "mariadbd.pid"),
		"--port="+strconv.Itoa(port),
		"--bind-address=127.0.0.1",
		"--skip-name-resolve",
		"--skip-log-bin",
		"--innodb-buffer-pool-size=16M",
		"--innodb-log-file-size=16M",
		"--innodb-flush-log-at-trx-commit=0",
		"--innodb-doublewrite=0",
		"--innodb-use-native-aio=0",
		"--max-connections=100")
	if withTLS {
		cmd.Args = append(cmd.Args, "--ssl-cert="+filepath.Join(cdir, tlsCertFile), "--ssl-key="+filepath.Join(cdir, tlsKeyFile))
	}
	cmd.Dir = cdir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: as.cred}
	pr, err := startProc("mariadbd", cmd, newTail(16<<10, logFile))
	if err != nil {
		logFile.Close()
		return nil, false, err
	}
	m.proc = pr
	// Ready means root can log in over the socket; the first successful
	// login (empty password, fresh server) sets the random one. A later
	// probe after a lost reply finds the password already set.
	err = pr.waitReady(ctx, MariaDBReadyTimeout, func(ctx context.Context) error {
		withPW := m.RootConfig()
		withPW.Passwd = adminPW
		if err := pingMariaDB(ctx, withPW); err == nil {
			return nil
		}
		db, err := openConfig(m.RootConfig())
		if err != nil {
			return err
		}
		defer db.Close()
		_, err = db.ExecContext(ctx, "ALTER USER 'root'@'localhost' IDENTIFIED BY ?", adminPW)
		return err
	})
	if err == nil {
		m.AdminPassword = adminPW
		err = pingMariaDB(ctx, m.RootConfig())
		if err != nil {
			err = pr.failure("root cannot log in with the password just set: %v", err)
		}
	}
	if err != nil {
		inUse := pr.exited() && addrInUse(pr)
		_ = pr.stop(syscall.SIGTERM, 10*time.Second)
		return nil, inUse, err
	}
	return m, false, nil
}

func openConfig(cfg *mysql.Config) (*sql.DB, error) {
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, err
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(1)
	return db, nil
}

func pingMariaDB(ctx context.Context, cfg *mysql.Config) error {
	db, err := openConfig(cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	return db.PingContext(ctx)
}

// Close stops the server (SIGTERM is mariadbd's clean shutdown; SIGKILL to
// the group after 10 s) and removes its directory. Safe to call more than
// once.
func (m *MariaDB) Close() error {
	m.closeOnce.Do(func() {
		_ = m.proc.stop(syscall.SIGTERM, 10*time.Second)
		m.closeErr = os.RemoveAll(m.Dir)
	})
	return m.closeErr
}
