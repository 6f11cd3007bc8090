package target

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"
)

// Protocols Identify tells apart, by the names people know them by.
const (
	ProtocolMySQL    = "MySQL" // MySQL and MariaDB
	ProtocolPostgres = "PostgreSQL"
	ProtocolRedis    = "Redis"
)

// WrongProtocolError means the server at Addr speaks another protocol than
// the secret's engine: the engine or the port in the secret is wrong. It
// wraps ErrInvalid: no retry can help.
type WrongProtocolError struct {
	Addr        string // host:port
	Want, Found string // Protocol* names
}

func (e *WrongProtocolError) Error() string {
	return fmt.Sprintf("%s speaks the %s protocol, not %s; check the secret's engine and port", e.Addr, e.Found, e.Want)
}

func (e *WrongProtocolError) Unwrap() error { return ErrInvalid }

// IdentifyWait bounds each of CheckProtocol's two waits for an answer.
const IdentifyWait = time.Second

// CheckProtocol is what an engine calls when a login failed the way an
// unreachable server fails (a timeout, an unexpected first message): if
// the server at addr answers in another known protocol than want, it
// returns a *WrongProtocolError, else nil (the original error stands).
// A PostgreSQL client at a MySQL port fails in milliseconds with "received
// unexpected message", a MySQL client at a PostgreSQL port waits for a
// greeting that never comes: both read as "unreachable" and were retried.
func CheckProtocol(ctx context.Context, addr, want string) error {
	found, err := Identify(ctx, addr, IdentifyWait)
	if err != nil || found == "" || found == want {
		return nil
	}
	return &WrongProtocolError{Addr: addr, Want: want, Found: found}
}

// sslRequest is PostgreSQL's SSLRequest message (length 8, code 80877103),
// which a PostgreSQL server answers with one byte, 'S' or 'N', before any
// authentication ("Message Formats", PostgreSQL documentation).
var sslRequest = []byte{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f}

// ping is Redis's inline PING, which any Redis server answers ("+PONG", or
// an error such as "-NOAUTH" or "-DENIED"). It goes on a connection of its
// own: Redis reads inline commands as C strings, so after sslRequest's NUL
// bytes it never finds the line's end and never answers.
var ping = []byte("PING\r\n")

// Identify tells which protocol the server at addr speaks ("" when it
// cannot tell), without logging in: a MySQL or MariaDB server speaks first
// (its handshake packet: a 3-byte length, sequence 0, protocol version 10,
// or an error packet, 0xff); PostgreSQL and Redis wait for the client, and
// answer sslRequest and ping as described there. wait bounds each wait
// for bytes, so a silent server costs at most 3 waits.
func Identify(ctx context.Context, addr string, wait time.Duration) (string, error) {
	first, answered, err := exchange(ctx, addr, wait, nil, sslRequest)
	switch {
	case err != nil:
		return "", err
	case first != nil && !answered:
		return classifyGreeting(first), nil
	case first != nil:
		return classifyAnswer(first), nil
	}
	// Silent to SSLRequest: try Redis on a fresh connection.
	answer, _, err := exchange(ctx, addr, wait, ping, nil)
	if err != nil {
		return "", nil
	}
	if len(answer) > 0 && (answer[0] == '+' || answer[0] == '-') {
		return ProtocolRedis, nil
	}
	return classifyGreeting(answer), nil
}

// exchange connects to addr, sends send (if any) and returns the first
// bytes the server sends; if it says nothing for wait, exchange sends probe
// (if any) and returns its answer's first bytes, with answered set. nil
// means silence or a closed connection.
func exchange(ctx context.Context, addr string, wait time.Duration, send, probe []byte) (b []byte, answered bool, err error) {
	d := net.Dialer{Timeout: wait}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, false, err
	}
	defer func() { _ = conn.Close() }()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	buf := make([]byte, 64)
	_ = conn.SetDeadline(time.Now().Add(wait))
	if send != nil {
		if _, err := conn.Write(send); err != nil {
			return nil, false, nil
		}
	}
	n, err := conn.Read(buf)
	if n > 0 {
		return buf[:n], false, nil
	}
	var ne net.Error
	if probe == nil || !errors.As(err, &ne) || !ne.Timeout() || ctx.Err() != nil {
		// Closed or reset without a word: nothing to tell.
		return nil, false, nil
	}
	_ = conn.SetDeadline(time.Now().Add(wait))
	if _, err := conn.Write(probe); err != nil {
		return nil, false, nil
	}
	if n, _ = conn.Read(buf); n == 0 {
		return nil, false, nil
	}
	return buf[:n], true, nil
}

// classifyAnswer names the protocol of an answer to sslRequest: PostgreSQL's
// one byte, or the greeting of a MySQL server that was slow to send it.
func classifyAnswer(b []byte) string {
	if len(b) == 1 && (b[0] == 'S' || b[0] == 'N') {
		return ProtocolPostgres
	}
	return classifyGreeting(b)
}

// classifyGreeting names the protocol of a server that spoke first.
func classifyGreeting(b []byte) string {
	if len(b) >= 5 && b[3] == 0 && (b[4] == 0x0a || b[4] == 0xff) {
		return ProtocolMySQL
	}
	return ""
}
