package target

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// tcpServer accepts connections and runs serve on each.
func tcpServer(t *testing.T, serve func(c net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				serve(c)
			}()
		}
	}()
	return l.Addr().String()
}

// A MariaDB 10.11 handshake's first bytes: length 0x5b, sequence 0,
// protocol version 10, "5.5.5-10.11...".
var mariadbGreeting = []byte{0x5b, 0, 0, 0, 0x0a, '5', '.', '5', '.', '5', '-', '1', '0'}

func TestIdentify(t *testing.T) {
	tests := []struct {
		name  string
		serve func(c net.Conn)
		want  string
	}{
		{"mysql greets first", func(c net.Conn) { _, _ = c.Write(mariadbGreeting); _, _ = io.Copy(io.Discard, c) }, ProtocolMySQL},
		{"mysql refuses the host", func(c net.Conn) { _, _ = c.Write([]byte{0x20, 0, 0, 0, 0xff, 0x69, 0x04}) }, ProtocolMySQL},
		{"postgres answers SSLRequest with N", func(c net.Conn) {
			b := make([]byte, 8)
			if _, err := io.ReadFull(c, b); err == nil && b[4] == 0x04 && b[7] == 0x2f {
				_, _ = c.Write([]byte("N"))
			}
			_, _ = io.Copy(io.Discard, c)
		}, ProtocolPostgres},
		{"postgres answers S", func(c net.Conn) {
			b := make([]byte, 8)
			if _, err := io.ReadFull(c, b); err == nil {
				_, _ = c.Write([]byte("S"))
			}
		}, ProtocolPostgres},
		// Redis reads inline commands as C strings: after SSLRequest's NUL
		// bytes it never answers; a PING on its own connection it does.
		{"redis answers PING", func(c net.Conn) {
			line, err := bufio.NewReader(c).ReadString('\n')
			if err == nil && !strings.ContainsRune(line, 0) {
				_, _ = c.Write([]byte("+PONG\r\n"))
			}
		}, ProtocolRedis},
		{"redis with a password answers NOAUTH", func(c net.Conn) {
			if line, err := bufio.NewReader(c).ReadString('\n'); err == nil && line == "PING\r\n" {
				_, _ = c.Write([]byte("-NOAUTH Authentication required.\r\n"))
			}
		}, ProtocolRedis},
		{"closes at once", func(net.Conn) {}, ""},
		{"speaks something else", func(c net.Conn) { _, _ = c.Write([]byte("SSH-2.0-OpenSSH_9.2\r\n")) }, ""},
		{"silent", func(c net.Conn) { _, _ = io.Copy(io.Discard, c) }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := tcpServer(t, tt.serve)
			got, err := Identify(context.Background(), addr, 200*time.Millisecond)
			if err != nil || got != tt.want {
				t.Fatalf("Identify = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestCheckProtocol(t *testing.T) {
	addr := tcpServer(t, func(c net.Conn) { _, _ = c.Write(mariadbGreeting) })
	err := CheckProtocol(context.Background(), addr, ProtocolPostgres)
	var wp *WrongProtocolError
	if !errors.As(err, &wp) || !errors.Is(err, ErrInvalid) || wp.Found != ProtocolMySQL {
		t.Fatalf("CheckProtocol = %v, want a WrongProtocolError wrapping ErrInvalid", err)
	}
	if want := addr + " speaks the MySQL protocol, not PostgreSQL; check the secret's engine and port"; err.Error() != want {
		t.Fatalf("message %q, want %q", err, want)
	}
	if err := CheckProtocol(context.Background(), addr, ProtocolMySQL); err != nil {
		t.Fatalf("the engine's own protocol: %v", err)
	}
	// Nothing listens: the original (unreachable) error stands.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := l.Addr().String()
	_ = l.Close()
	if err := CheckProtocol(context.Background(), closed, ProtocolMySQL); err != nil {
		t.Fatalf("closed port: %v", err)
	}
}
