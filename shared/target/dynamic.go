package target

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/secretsaga/secretsaga/shared/secret"
)

// Dynamic credentials (issue 17): short-lived logins that secretsaga
// creates on demand and drops at expiry. The requests follow Vault's
// dbplugin v5 NewUser/DeleteUser/UpdateUser(Expiration), one struct per
// operation, logged in as the template's master.

// EphemeralPrefix starts the name of every login secretsaga issues. It is
// what the sweeper looks for in a database's own user list, so it must
// never be changed while logins with the old prefix may be alive; it is
// lower case ASCII, a valid unquoted identifier on PostgreSQL and MariaDB
// and a plain ACL user name on Redis.
const EphemeralPrefix = "ss_eph_"

// ephemeralSuffixLen random characters follow the prefix: 7+16 = 23 fits
// MySQL's 32-character limit on user names, the tightest of the three.
const ephemeralSuffixLen = 16

const ephemeralAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789"

// NewEphemeralName returns EphemeralPrefix and 16 random lower-case letters
// and digits (about 82 bits: two leases never share a name).
func NewEphemeralName() string {
	b := make([]byte, ephemeralSuffixLen)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	for i := range b {
		b[i] = ephemeralAlphabet[int(b[i])%len(ephemeralAlphabet)]
	}
	return EphemeralPrefix + string(b)
}

// EphemeralNameFrom derives a login name from a UUID (the state machine's
// States.UUID()): the prefix and its first 16 hex digits, so that a retried
// issue names the same login.
func EphemeralNameFrom(uuid string) (string, error) {
	hex := strings.ReplaceAll(strings.ToLower(uuid), "-", "")
	if len(hex) < ephemeralSuffixLen {
		return "", fmt.Errorf("lease id %q is not a UUID: %w", uuid, ErrInvalid)
	}
	for _, c := range hex {
		if !strings.ContainsRune("0123456789abcdef", c) {
			return "", fmt.Errorf("lease id %q is not a UUID: %w", uuid, ErrInvalid)
		}
	}
	return EphemeralPrefix + hex[:ephemeralSuffixLen], nil
}

// IsEphemeralName reports whether name has the shape NewEphemeralName and
// EphemeralNameFrom give: only such names are ever created or dropped.
func IsEphemeralName(name string) bool {
	rest, ok := strings.CutPrefix(name, EphemeralPrefix)
	if !ok || len(rest) != ephemeralSuffixLen {
		return false
	}
	for _, c := range rest {
		if !strings.ContainsRune(ephemeralAlphabet, c) {
			return false
		}
	}
	return true
}

// ErrRoleNotFound is wrapped (with ErrInvalid) when the role a template
// names does not exist on the server: nothing was created.
var ErrRoleNotFound = errors.New("role to grant does not exist")

// NewUserRequest creates Username with Password and the privileges of Role,
// logged in as Master.
type NewUserRequest struct {
	Master   Credential
	Username string // must satisfy IsEphemeralName
	Password secret.Password
	// Role is what the login is given: on PostgreSQL a role it becomes a
	// member of (IN ROLE), on MariaDB a role granted and made its default,
	// on Redis an ACL user whose rules it copies.
	Role string
	// Expiration is when the login must stop working; engines that can
	// (PostgreSQL's VALID UNTIL) make the server refuse it after then too,
	// a second lock should the revocation be late.
	Expiration time.Time
	// BeforeChange, if set, is called once the engine has logged in and
	// checked the role, immediately before it creates anything (the
	// ledger's ISSUING record is written there).
	BeforeChange func(ctx context.Context) error
}

// NewUserResponse says what happened.
type NewUserResponse struct {
	// Existed: the login was there already (a retried issue); its
	// password, privileges and expiration were set again.
	Existed bool
}

// DeleteUserRequest ends Username's sessions and drops it, logged in as
// Master. A login that does not exist is no error (a retried revoke).
type DeleteUserRequest struct {
	Master   Credential
	Username string // must satisfy IsEphemeralName
	// Role, when known, is the issued login's role (PostgreSQL reassigns
	// to it what the login owns, when the master may).
	Role string
}

// DeleteUserResponse says what happened.
type DeleteUserResponse struct {
	Existed    bool // the login was there
	Terminated int  // sessions ended
}

// RenewUserRequest moves Username's expiration (PostgreSQL: VALID UNTIL).
type RenewUserRequest struct {
	Master     Credential
	Username   string
	Expiration time.Time
}

// ListUsersRequest lists the logins whose names start with Prefix.
type ListUsersRequest struct {
	Master Credential
	Prefix string
}

// Dynamic is what an engine with Capabilities().Dynamic implements.
type Dynamic interface {
	NewUser(ctx context.Context, req NewUserRequest) (NewUserResponse, error)
	DeleteUser(ctx context.Context, req DeleteUserRequest) (DeleteUserResponse, error)
	RenewUser(ctx context.Context, req RenewUserRequest) error
	ListUsers(ctx context.Context, req ListUsersRequest) ([]string, error)
}

// AsDynamic returns e's dynamic operations, or an error wrapping ErrInvalid
// and ErrNotSupported.
func AsDynamic(e Engine) (Dynamic, error) {
	d, ok := e.(Dynamic)
	if !ok || !e.Capabilities().Dynamic {
		return nil, fmt.Errorf("%s: short-lived logins: %w: %w", e.Name(), ErrNotSupported, ErrInvalid)
	}
	return d, nil
}

// CheckEphemeralName refuses to create or drop a login secretsaga does
// not name: the engines' guard against dropping somebody else's user.
func CheckEphemeralName(engine, name string) error {
	if !IsEphemeralName(name) {
		return fmt.Errorf("%s: %q is not a name secretsaga issues (%s and 16 letters or digits): %w", engine, name, EphemeralPrefix, ErrInvalid)
	}
	return nil
}
