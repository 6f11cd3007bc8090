package redis

import (
	"context"
	"fmt"
	"strings"

	redigo "github.com/gomodule/redigo/redis"

	"github.com/secretsaga/secretsaga/shared/target"
)

// EnsureUser is the alternating-users strategy's clone step. Logged in as
// req.Master (which needs +acl: ACL GETUSER, SETUSER and DELUSER), it does
// nothing if ACL GETUSER req.Username finds the user. Otherwise it reads
// req.Like's rules with ACL GETUSER and creates req.Username with them in
// one ACL SETUSER: off, resetpass, resetkeys, resetchannels, -@all, then
// Like's flags (on/off, sanitize-payload), key
// patterns (~ and %R~/%W~), channel patterns (&), command rules (+/-, with
// categories and subcommands, in Like's order) and selectors. The clone gets
// no password: a user without one (and without nopass) cannot log in, so
// it stays unusable until SetPassword, run next with the master's login,
// sets it. Like's passwords, and a nopass flag, are not copied.
//
// req.BeforeChange is called right before the SETUSER. Redis 7 applies a
// SETUSER whole or not at all; should it fail anyway, the clone is deleted
// again, so a retry does not find a user without its rules.
func (e *Engine) EnsureUser(ctx context.Context, req target.EnsureUserRequest) (target.EnsureUserResponse, error) {
	if req.Username == "" || req.Like == "" || req.Username == req.Like {
		return target.EnsureUserResponse{}, fmt.Errorf("redis: ensure user: two different user names are required: %w", target.ErrInvalid)
	}
	c, err := e.connect(ctx, req.Master)
	if err != nil {
		return target.EnsureUserResponse{}, fmt.Errorf("redis: login as master %q: %w", req.Master.Username, err)
	}
	defer func() { _ = c.Close() }()

	exists, err := redigo.DoContext(c, ctx, "ACL", "GETUSER", req.Username)
	switch {
	case err != nil:
		return target.EnsureUserResponse{}, fmt.Errorf("redis: ACL GETUSER %q: %w", req.Username, classify(err))
	case exists != nil:
		// No marks: an ACL user has no comment, so the ledger's record
		// alone tells a clone secretsaga created.
		return target.EnsureUserResponse{Exists: true}, nil
	case req.CheckOnly:
		return target.EnsureUserResponse{}, nil
	}
	like, err := redigo.DoContext(c, ctx, "ACL", "GETUSER", req.Like)
	if err != nil {
		return target.EnsureUserResponse{}, fmt.Errorf("redis: ACL GETUSER %q: %w", req.Like, classify(err))
	}
	if like == nil {
		return target.EnsureUserResponse{}, fmt.Errorf("redis: no user %q to clone as %q: %w", req.Like, req.Username, target.ErrInvalid)
	}
	rules, err := CloneRules(textReply(like))
	if err != nil {
		return target.EnsureUserResponse{}, fmt.Errorf("redis: copy the rules of %q: %w", req.Like, err)
	}
	if req.BeforeChange != nil {
		if err := req.BeforeChange(ctx); err != nil {
			return target.EnsureUserResponse{}, err
		}
	}
	// Not "reset", which also sets sanitize-payload: a user created
	// without either payload flag, as most are, would differ from its
	// clone. These clear what a user just created by someone else might
	// hold; the user was not there a moment ago.
	args := make([]any, 0, len(rules)+7)
	args = append(args, "SETUSER", req.Username, "off", "resetpass", "resetkeys", "resetchannels", "-@all")
	for _, r := range rules {
		args = append(args, r)
	}
	if _, err := redigo.DoContext(c, ctx, "ACL", args...); err != nil {
		err = fmt.Errorf("redis: create user %q like %q: %w", req.Username, req.Like, classify(err))
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.o.ConnectTimeout)
		defer cancel()
		if _, derr := redigo.DoContext(c, dctx, "ACL", "DELUSER", req.Username); derr != nil {
			err = fmt.Errorf("%w; and deleting the half-made user failed (%v): delete %q by hand before the next rotation", err, classify(derr), req.Username)
		}
		return target.EnsureUserResponse{}, err
	}
	return target.EnsureUserResponse{Created: true}, nil
}

// textReply turns redigo's reply into go-redis's shape, which CloneRules
// reads: bulk strings ([]byte) become strings, in arrays too.
func textReply(v any) any {
	switch v := v.(type) {
	case []byte:
		return string(v)
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = textReply(e)
		}
		return out
	}
	return v
}

// CloneRules turns an ACL GETUSER reply (RESP2's flat name/value list or
// RESP3's map; Redis 7's strings or Redis 6's lists for keys and channels)
// into the ACL SETUSER rules that give a new user the same
// permissions. Passwords are not read. A reply it does not understand is an
// error wrapping target.ErrInvalid.
func CloneRules(reply any) ([]string, error) {
	root, err := fieldMap(reply)
	if err != nil {
		return nil, err
	}
	var rules []string
	flags, _ := root["flags"].([]any)
	if _, ok := root["flags"]; !ok {
		return nil, fmt.Errorf("ACL GETUSER reply without flags: %w", target.ErrInvalid)
	}
	for _, f := range flags {
		s, _ := f.(string)
		switch s {
		case "on", "off", "sanitize-payload", "skip-sanitize-payload":
			rules = append(rules, s)
		case "nopass":
			// The clone gets a password from SetPassword.
		case "allkeys":
			rules = append(rules, "~*")
		case "allchannels":
			rules = append(rules, "&*")
		case "allcommands":
			rules = append(rules, "+@all")
		default:
			return nil, fmt.Errorf("ACL GETUSER flag %q is not understood: %w", fmt.Sprint(f), target.ErrInvalid)
		}
	}
	perms, err := permissionRules(root)
	if err != nil {
		return nil, err
	}
	rules = append(rules, perms...)
	if sel, ok := root["selectors"]; ok && sel != nil {
		list, ok := sel.([]any)
		if !ok {
			return nil, fmt.Errorf("ACL GETUSER selectors are not a list: %w", target.ErrInvalid)
		}
		for _, s := range list {
			m, err := fieldMap(s)
			if err != nil {
				return nil, err
			}
			perms, err := permissionRules(m)
			if err != nil {
				return nil, err
			}
			rules = append(rules, "("+strings.Join(append([]string{"resetchannels"}, perms...), " ")+")")
		}
	}
	return rules, nil
}

// permissionRules are the key, channel and command rules of a user or a
// selector.
func permissionRules(m map[string]any) ([]string, error) {
	var rules []string
	for _, f := range []struct {
		field, listPrefix string
		prefixes          []string
	}{
		{"keys", "~", []string{"~", "%"}},
		{"channels", "&", []string{"&"}},
		{"commands", "", []string{"+", "-"}},
	} {
		v, ok := m[f.field]
		if !ok {
			if f.field == "channels" {
				continue // Redis 6.0 has no channels
			}
			return nil, fmt.Errorf("ACL GETUSER reply without %s: %w", f.field, target.ErrInvalid)
		}
		switch v := v.(type) {
		case string:
			// Redis 7: rules as ACL LIST writes them, separated by spaces.
			for _, r := range strings.Fields(v) {
				if !hasAnyPrefix(r, f.prefixes) {
					return nil, fmt.Errorf("ACL GETUSER %s %q: rule %q is not understood (a pattern with a space cannot be copied): %w", f.field, v, r, target.ErrInvalid)
				}
				rules = append(rules, r)
			}
		case []any:
			// Redis 6: bare patterns.
			if f.listPrefix == "" {
				return nil, fmt.Errorf("ACL GETUSER %s is a list: %w", f.field, target.ErrInvalid)
			}
			for _, p := range v {
				s, ok := p.(string)
				if !ok {
					return nil, fmt.Errorf("ACL GETUSER %s holds a %T: %w", f.field, p, target.ErrInvalid)
				}
				rules = append(rules, f.listPrefix+s)
			}
		case nil:
		default:
			return nil, fmt.Errorf("ACL GETUSER %s is a %T: %w", f.field, v, target.ErrInvalid)
		}
	}
	return rules, nil
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// fieldMap reads a RESP2 name/value list or a RESP3 map.
func fieldMap(v any) (map[string]any, error) {
	out := map[string]any{}
	switch v := v.(type) {
	case []any:
		if len(v)%2 != 0 {
			return nil, fmt.Errorf("ACL GETUSER reply has an odd number of elements: %w", target.ErrInvalid)
		}
		for i := 0; i < len(v); i += 2 {
			k, ok := v[i].(string)
			if !ok {
				return nil, fmt.Errorf("ACL GETUSER reply has a %T field name: %w", v[i], target.ErrInvalid)
			}
			out[k] = v[i+1]
		}
	case map[any]any:
		for k, val := range v {
			s, ok := k.(string)
			if !ok {
				return nil, fmt.Errorf("ACL GETUSER reply has a %T field name: %w", k, target.ErrInvalid)
			}
			out[s] = val
		}
	case map[string]any:
		for k, val := range v {
			out[k] = val
		}
	default:
		return nil, fmt.Errorf("ACL GETUSER reply is a %T: %w", v, target.ErrInvalid)
	}
	return out, nil
}
