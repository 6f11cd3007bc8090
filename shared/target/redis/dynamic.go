package redis

import (
	"context"
	"fmt"
	"slices"
	"strings"

	redigo "github.com/gomodule/redigo/redis"

	"github.com/secretsaga/secretsaga/shared/target"
)

// Short-lived logins (target.Dynamic). The "role" of a Redis template is an
// ACL user whose rules the login copies (as the alternating strategy's
// clone does); the master needs +acl. Redis has no expiry on a user: the
// ledger's revocation is the only lock.

// NewUser creates req.Username with req.Role's rules and the password's
// SHA-256, in one ACL SETUSER that resets the user first, so a retried
// issue sets the same state again. A role user that does not exist is
// target.ErrRoleNotFound, and nothing is created.
func (e *Engine) NewUser(ctx context.Context, req target.NewUserRequest) (target.NewUserResponse, error) {
	if err := target.CheckEphemeralName("redis", req.Username); err != nil {
		return target.NewUserResponse{}, err
	}
	if req.Role == "" || req.Password.IsZero() {
		return target.NewUserResponse{}, fmt.Errorf("redis: new user %q: a role (an ACL user to copy) and a password are required: %w", req.Username, target.ErrInvalid)
	}
	c, err := e.connect(ctx, req.Master)
	if err != nil {
		return target.NewUserResponse{}, fmt.Errorf("redis: login as master %q: %w", req.Master.Username, err)
	}
	defer func() { _ = c.Close() }()
	like, err := redigo.DoContext(c, ctx, "ACL", "GETUSER", req.Role)
	if err != nil {
		return target.NewUserResponse{}, fmt.Errorf("redis: ACL GETUSER %q: %w", req.Role, classify(err))
	}
	if like == nil {
		return target.NewUserResponse{}, fmt.Errorf("redis: ACL user %q to copy: %w: %w", req.Role, target.ErrRoleNotFound, target.ErrInvalid)
	}
	rules, err := CloneRules(textReply(like))
	if err != nil {
		return target.NewUserResponse{}, fmt.Errorf("redis: copy the rules of %q: %w", req.Role, err)
	}
	existing, err := redigo.DoContext(c, ctx, "ACL", "GETUSER", req.Username)
	if err != nil {
		return target.NewUserResponse{}, fmt.Errorf("redis: ACL GETUSER %q: %w", req.Username, classify(err))
	}
	if req.BeforeChange != nil {
		if err := req.BeforeChange(ctx); err != nil {
			return target.NewUserResponse{}, err
		}
	}
	hash := PasswordHash(req.Password.Reveal())
	args := make([]any, 0, len(rules)+9)
	args = append(args, "SETUSER", req.Username, "reset")
	for _, r := range rules {
		if r == "off" {
			continue // the role user may be a template that cannot log in itself
		}
		args = append(args, r)
	}
	args = append(args, "#"+hash, "on")
	if _, err := redigo.DoContext(c, ctx, "ACL", args...); err != nil {
		return target.NewUserResponse{}, fmt.Errorf("redis: create user %q like %q: %w", req.Username, req.Role, scrub(classify(err), hash))
	}
	return target.NewUserResponse{Existed: existing != nil}, nil
}

// DeleteUser deletes the ACL user; Redis closes every connection
// authenticated as it in the same command. A user that is not there is no
// error.
func (e *Engine) DeleteUser(ctx context.Context, req target.DeleteUserRequest) (target.DeleteUserResponse, error) {
	if err := target.CheckEphemeralName("redis", req.Username); err != nil {
		return target.DeleteUserResponse{}, err
	}
	c, err := e.connect(ctx, req.Master)
	if err != nil {
		return target.DeleteUserResponse{}, fmt.Errorf("redis: login as master %q: %w", req.Master.Username, err)
	}
	defer func() { _ = c.Close() }()
	n, err := redigo.Int(redigo.DoContext(c, ctx, "ACL", "DELUSER", req.Username))
	if err != nil {
		return target.DeleteUserResponse{}, fmt.Errorf("redis: ACL DELUSER %q: %w", req.Username, classify(err))
	}
	return target.DeleteUserResponse{Existed: n > 0}, nil
}

// RenewUser does nothing: Redis users carry no expiry.
func (e *Engine) RenewUser(_ context.Context, req target.RenewUserRequest) error {
	return target.CheckEphemeralName("redis", req.Username)
}

// ListUsers lists the ACL users whose names start with req.Prefix.
func (e *Engine) ListUsers(ctx context.Context, req target.ListUsersRequest) ([]string, error) {
	if req.Prefix == "" {
		return nil, fmt.Errorf("redis: list users: a prefix is required: %w", target.ErrInvalid)
	}
	c, err := e.connect(ctx, req.Master)
	if err != nil {
		return nil, fmt.Errorf("redis: login as master %q: %w", req.Master.Username, err)
	}
	defer func() { _ = c.Close() }()
	all, err := redigo.Strings(redigo.DoContext(c, ctx, "ACL", "USERS"))
	if err != nil {
		return nil, fmt.Errorf("redis: ACL USERS: %w", classify(err))
	}
	var out []string
	for _, u := range all {
		if strings.HasPrefix(u, req.Prefix) {
			out = append(out, u)
		}
	}
	slices.Sort(out)
	return out, nil
}
