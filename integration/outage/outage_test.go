package outage

import (
	"bufio"
	"errors"
	"net"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// echo is a line echo server standing in for a database.
func echo(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := c.Write([]byte(line)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func roundTrip(c net.Conn) error {
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "ping\n" {
		return errors.New("echo answered " + line)
	}
	return nil
}

// Cut drops open connections and refuses new ones; Restore serves again on
// the same address.
func TestCutAndRestore(t *testing.T) {
	p, err := Start(echo(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	dial := func() (net.Conn, error) {
		return net.DialTimeout("tcp", net.JoinHostPort(p.Host(), strconv.Itoa(p.Port())), time.Second)
	}
	open, err := dial()
	if err != nil {
		t.Fatal(err)
	}
	if err := roundTrip(open); err != nil {
		t.Fatalf("through the proxy: %v", err)
	}
	if n := p.Accepted(); n != 1 {
		t.Fatalf("Accepted = %d after one connection", n)
	}
	p.Cut()
	if !p.IsCut() {
		t.Fatal("not cut")
	}
	if err := roundTrip(open); err == nil {
		t.Fatal("an open connection survived the cut")
	}
	if _, err := dial(); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial while cut = %v, want connection refused", err)
	}
	if err := p.Restore(); err != nil {
		t.Fatal(err)
	}
	c, err := dial()
	if err != nil {
		t.Fatalf("dial after restore: %v", err)
	}
	defer c.Close()
	if err := roundTrip(c); err != nil {
		t.Fatalf("after restore: %v", err)
	}
}
