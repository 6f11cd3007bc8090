// Package target is the plugin interface for the systems whose credentials a
// rotation changes (databases, caches). It is shaped like Vault's dbplugin v5:
// one request struct per operation, so an operation can grow fields without
// breaking every engine, and capability flags instead of type switches.
package target

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/secretsaga/secretsaga/shared/secret"
)

// Errors an engine wraps (with %w) so the rotation can classify failures
// without knowing the engine's driver.
var (
	// ErrAuthFailed: the server was reached and refused the credential.
	ErrAuthFailed = errors.New("authentication failed")
	// ErrUnreachable: the server could not be reached (refused, timeout,
	// DNS); retrying later may work.
	ErrUnreachable = errors.New("server unreachable")
	// ErrInvalid: the request cannot work as given (unknown database, bad
	// user name, missing privilege); retrying will not help.
	ErrInvalid = errors.New("invalid request for target")
)

// Credential is one way to log in: where, as whom, with what.
type Credential struct {
	Host     string
	Port     int
	Username string
	Password secret.Password
	DBName   string
	// TLS is the secret's "tls" field; engines resolve it with
	// dbtls.Effective (the default depends on Host).
	TLS secret.TLSMode
}

// FromValue takes the login fields of a secret value.
func FromValue(v *secret.Value) Credential {
	return Credential{Host: v.Host, Port: v.Port, Username: v.Username, Password: v.Password, DBName: v.DBName, TLS: v.TLS}
}

// TLSError is a login that failed in TLS: the server's certificate was not
// trusted or does not name the host, or the server does not speak TLS. It
// wraps ErrInvalid: trying again will not help, the secret (or the CA
// bundle) must change. Nothing has been changed on the target when it is
// returned, since no session was opened.
type TLSError struct {
	Engine string
	Addr   string         // host:port
	Mode   secret.TLSMode // the effective mode
	// Default is true when the secret has no "tls" field and Mode is the
	// default for Addr's host.
	Default bool
	Reason  string // what failed, without any secret value
	Fix     string // what to change
}

func (e *TLSError) Error() string {
	how := fmt.Sprintf("tls %q", e.Mode)
	if e.Default {
		how += " (the default for this host: the secret has no \"tls\" field)"
	}
	return fmt.Sprintf("%s: TLS to %s with %s failed: %s; to fix: %s", e.Engine, e.Addr, how, e.Reason, e.Fix)
}

// Unwrap makes errors.Is(err, ErrInvalid) hold.
func (e *TLSError) Unwrap() error { return ErrInvalid }

// SetPasswordRequest changes Username's password to New.
type SetPasswordRequest struct {
	// Username whose password changes.
	Username string
	// New is the password to set.
	New secret.Password
	// Logins are the credentials to try, in order, to open the session that
	// changes the password (single user: AWSCURRENT; the first that works is
	// used). If none works and a login with New does, the engine does
	// nothing: that is what makes the step idempotent.
	Logins []Credential
	// More, if set, gives further logins to try after Logins, asked for only
	// when every one of Logins was refused (single user: AWSPREVIOUS, whose
	// value the rotation reads from Secrets Manager only then).
	More func(ctx context.Context) ([]Credential, error)
	// BeforeChange, if set, is called once the engine has logged in and
	// immediately before it changes anything; if it returns an error the
	// engine changes nothing and returns it. The rotation writes its
	// write-ahead ledger record here, so that a target it could not even
	// reach leaves nothing for compensation to undo, while anything that
	// may have reached the target is journaled before it did.
	BeforeChange func(ctx context.Context) error
}

// SetPasswordResponse says what happened.
type SetPasswordResponse struct {
	// AlreadySet is true when New already authenticated, so nothing changed.
	AlreadySet bool
	// LoggedInWith is the index into Logins of the credential that was used.
	LoggedInWith int
}

// VerifyRequest logs in with Credential and runs the engine's probe.
type VerifyRequest struct {
	Credential Credential
}

// EnsureUserRequest makes sure Username exists on the target with the same
// privileges as Like, creating it if needed: the alternating-users
// strategy's clone. The engine logs in with Master.
type EnsureUserRequest struct {
	Master   Credential
	Username string
	Like     string
	// BeforeChange is called, as in SetPasswordRequest, right before the
	// engine creates anything.
	BeforeChange func(ctx context.Context) error
	// CheckOnly: only report whether Username exists and the clone marks
	// of Username and Like; change nothing.
	CheckOnly bool
}

// EnsureUserResponse says what happened.
type EnsureUserResponse struct {
	Created bool // false: Username existed already (or CheckOnly)
	Exists  bool // Username exists (before this call)
	// Mark and LikeMark are the users that the server's clone marks of
	// Username and of Like name ("secretsaga:clone-of=<user>"; see
	// CloneMark), empty where there is none or the engine keeps none
	// (Capabilities.CloneMarks).
	Mark, LikeMark string
}

// CloneMarkPrefix starts the mark an engine with Capabilities.CloneMarks
// puts on a user it creates as the clone of another: on PostgreSQL the
// role's comment, "secretsaga:clone-of=<user>".
const CloneMarkPrefix = "secretsaga:clone-of="

// CloneMark is the mark of a clone of user.
func CloneMark(user string) string { return CloneMarkPrefix + user }

// ParseCloneMark returns the user a mark names, or "" if text is no mark.
func ParseCloneMark(text string) string {
	if u, ok := strings.CutPrefix(text, CloneMarkPrefix); ok {
		return u
	}
	return ""
}

// ErrNotSupported is wrapped (with ErrInvalid) by an engine asked for an
// operation its Capabilities do not include.
var ErrNotSupported = errors.New("not supported by this engine")

// Capabilities are what an engine supports.
type Capabilities struct {
	SingleUser  bool // a user changes its own password
	Alternating bool // a master user clones and alternates users
	// UsernameLimits are the longest user names the server accepts, by
	// the secret's "engine" value; the "" entry applies to every other
	// value, and no entry means no limit. The alternating strategy's
	// clone name (<user>_clone) must fit.
	UsernameLimits map[string]NameLimit
	// CloneMarks: EnsureUser marks the users it creates on the server
	// (CloneMark) and reports the marks it finds.
	CloneMarks bool
	// Dynamic: the engine implements Dynamic (short-lived logins).
	Dynamic bool
}

// NameLimit is a server's limit on the length of a name.
type NameLimit struct {
	Max   int    // longest accepted length
	Bytes bool   // Max counts bytes (else characters)
	Cause string // whose limit it is, for the error message
}

// UsernameLimit returns the limit for a secret whose "engine" value is
// engine, and whether there is one.
func (c Capabilities) UsernameLimit(engine string) (NameLimit, bool) {
	if l, ok := c.UsernameLimits[engine]; ok {
		return l, true
	}
	l, ok := c.UsernameLimits[""]
	return l, ok
}

// Fits reports whether name is within the limit.
func (l NameLimit) Fits(name string) bool {
	if l.Bytes {
		return len(name) <= l.Max
	}
	return utf8.RuneCountInString(name) <= l.Max
}

// Unit names what Max counts.
func (l NameLimit) Unit() string {
	if l.Bytes {
		return "bytes"
	}
	return "characters"
}

// Engine is one kind of target. Implementations must be safe for concurrent
// use, must never put a password into an error, a log line or a statement
// that the server logs in clear when it can be avoided, and must wrap
// failures with ErrAuthFailed, ErrUnreachable or ErrInvalid.
type Engine interface {
	Name() string
	DefaultPort() int
	Capabilities() Capabilities
	SetPassword(ctx context.Context, req SetPasswordRequest) (SetPasswordResponse, error)
	Verify(ctx context.Context, req VerifyRequest) error
	// EnsureUser is the alternating strategy's clone step; engines without
	// Capabilities().Alternating return an error wrapping ErrInvalid and
	// ErrNotSupported.
	EnsureUser(ctx context.Context, req EnsureUserRequest) (EnsureUserResponse, error)
}

// Registry maps the secret's "engine" field to an Engine.
type Registry struct {
	mu      sync.RWMutex
	engines map[string]Engine
}

// Register adds an engine under one or more names (e.g. "postgres" and
// "aurora-postgresql", the values AWS's own templates use).
func (r *Registry) Register(e Engine, names ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.engines == nil {
		r.engines = map[string]Engine{}
	}
	for _, n := range append(names, e.Name()) {
		r.engines[n] = e
	}
}

// UnknownEngineError names an engine nobody registered.
type UnknownEngineError struct {
	Engine string
	Known  []string
}

func (e *UnknownEngineError) Error() string {
	return fmt.Sprintf("engine %q is not supported; set the secret's \"engine\" field to one of %v", e.Engine, e.Known)
}

// Lookup returns the engine for name or an *UnknownEngineError.
func (r *Registry) Lookup(name string) (Engine, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if e, ok := r.engines[name]; ok {
		return e, nil
	}
	known := make([]string, 0, len(r.engines))
	for n := range r.engines {
		known = append(known, n)
	}
	sort.Strings(known)
	return nil, &UnknownEngineError{Engine: name, Known: known}
}
