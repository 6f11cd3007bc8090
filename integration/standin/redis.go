package standin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// RedisReadyTimeout bounds the wait for redis-server to answer PING.
const RedisReadyTimeout = 15 * time.Second

// Redis is a running throwaway redis-server on loopback.
type Redis struct {
	Host string // 127.0.0.1
	Port int
	// TLSPort is the port that speaks TLS (StartRedisTLS), 0 without; Port
	// stays plain TCP.
	TLSPort int

	// AdminUser and AdminPassword log in as the "default" user, which has
	// every permission; the password is random per server.
	AdminUser     string
	AdminPassword string

	Dir     string        // config, pid file, log; removed by Close
	Started time.Duration // start + first successful PING

	proc      *proc
	closeOnce sync.Once
	closeErr  error
}

// Addr is host:port.
func (r *Redis) Addr() string { return r.Host + ":" + strconv.Itoa(r.Port) }

// Output returns the tail of redis-server's log.
func (r *Redis) Output() string { return r.proc.out.String() }

// AdminClient returns a client logged in as the default user.
func (r *Redis) AdminClient() *goredis.Client {
	return goredis.NewClient(&goredis.Options{
		Addr: r.Addr(), Username: r.AdminUser, Password: r.AdminPassword,
		Protocol: 2, DisableIdentity: true, MaxRetries: -1,
		// One dial per command: the pool's default retries with backoff
		// would slow the readiness probe and checks that it is gone.
		DialerRetries: 1,
	})
}

func redisServerBin() (string, error) {
	if p, err := exec.LookPath("redis-server"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/bin/redis-server", "/usr/local/bin/redis-server"} {
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", errors.New("standin: redis-server not found; run integration/install-deps.sh")
}

// StartRedis starts a throwaway redis-server in a fresh directory under dir
// ("" means os.TempDir()): loopback only, no persistence, and the default
// user's password random (AdminPassword). The settings go in a config file
// (mode 0600) rather than on the command line, where ps would show the
// password. As root, the server runs as the redis user.
//
// The server runs as our child, in its own process group with SIGKILL as
// its parent-death signal, so it dies with the test. Close stops it and
// removes the directory.
func StartRedis(ctx context.Context, dir string) (*Redis, error) {
	return StartRedisTLS(ctx, dir, nil)
}

// StartRedisTLS is StartRedis with a second port, TLSPort, that speaks TLS
// with t's certificate (and asks no client certificate), when t is not
// nil.
func StartRedisTLS(ctx context.Context, dir string, t *TLS) (*Redis, error) {
	bin, err := redisServerBin()
	if err != nil {
		return nil, err
	}
	as, err := serviceUser("redis")
	if err != nil {
		return nil, err
	}
	if dir == "" {
		dir = os.TempDir()
	}
	sweepStaleServers(dir, "standin-redis-", "redis.pid")
	begin := time.Now()
	cdir, err := makeServerDir(dir, "standin-redis-", as)
	if err != nil {
		return nil, err
	}
	pw, err := randomSecret()
	if err != nil {
		_ = os.RemoveAll(cdir)
		return nil, err
	}
	if t != nil {
		if err := writeTLS(cdir, t, as); err != nil {
			_ = os.RemoveAll(cdir)
			return nil, err
		}
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		r, inUse, err := startRedisServer(ctx, bin, cdir, as, pw, t != nil)
		if err == nil {
			r.Started = time.Since(begin)
			return r, nil
		}
		lastErr = err
		if !inUse {
			break
		}
	}
	_ = os.RemoveAll(cdir)
	return nil, lastErr
}

func startRedisServer(ctx context.Context, bin, cdir string, as runAs, adminPW string, withTLS bool) (*Redis, bool, error) {
	port, err := FreePort()
	if err != nil {
		return nil, false, err
	}
	tlsPort := 0
	var tlsConf []string
	if withTLS {
		if tlsPort, err = FreePort(); err != nil {
			return nil, false, err
		}
		tlsConf = []string{
			"tls-port " + strconv.Itoa(tlsPort),
			"tls-cert-file " + strconv.Quote(filepath.Join(cdir, tlsCertFile)),
			"tls-key-file " + strconv.Quote(filepath.Join(cdir, tlsKeyFile)),
			"tls-auth-clients no",
		}
	}
	// Values are quoted: the directory may hold spaces. The password is
	// hex and the rest is ours, so nothing needs escaping inside quotes.
	conf := strings.Join([]string{
		"port " + strconv.Itoa(port),
		"bind 127.0.0.1",
		"protected-mode yes",
		`save ""`,
		"appendonly no",
		"daemonize no",
		"dir " + strconv.Quote(cdir),
		"pidfile " + strconv.Quote(filepath.Join(cdir, "redis.pid")),
		`logfile ""`,
		"requirepass " + adminPW,
	}, "\n") + "\n" + strings.Join(append(tlsConf, ""), "\n")
	confPath := filepath.Join(cdir, "redis.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		return nil, false, fmt.Errorf("standin: %w", err)
	}
	if err := os.Chown(confPath, as.uid, as.gid); err != nil {
		return nil, false, fmt.Errorf("standin: %w", err)
	}
	logFile, err := os.Create(filepath.Join(cdir, "redis.log"))
	if err != nil {
		return nil, false, fmt.Errorf("standin: %w", err)
	}
	cmd := exec.Command(bin, confPath)
	cmd.Dir = cdir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: as.cred}
	pr, err := startProc("redis-server", cmd, newTail(16<<10, logFile))
	if err != nil {
		logFile.Close()
		return nil, false, err
	}
	r := &Redis{Host: "127.0.0.1", Port: port, TLSPort: tlsPort, AdminUser: "default", AdminPassword: adminPW, Dir: cdir, proc: pr}
	client := r.AdminClient()
	defer client.Close()
	err = pr.waitReady(ctx, RedisReadyTimeout, func(ctx context.Context) error {
		// A plain dial first: go-redis logs every failed dial to stderr.
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", r.Addr())
		if err != nil {
			return err
		}
		_ = c.Close()
		return client.Ping(ctx).Err()
	})
	if err != nil {
		inUse := pr.exited() && addrInUse(pr)
		_ = pr.stop(syscall.SIGTERM, 5*time.Second)
		return nil, inUse, err
	}
	return r, false, nil
}

// Close stops the server (SIGTERM; with nothing to save it exits at once)
// and removes its directory. Safe to call more than once.
func (r *Redis) Close() error {
	r.closeOnce.Do(func() {
		_ = r.proc.stop(syscall.SIGTERM, 5*time.Second)
		r.closeErr = os.RemoveAll(r.Dir)
	})
	return r.closeErr
}
