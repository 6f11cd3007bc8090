package target

import (
	"context"
	"errors"
	"fmt"
)

// ChangePassword is SetPassword's contract, the same for every engine: check
// the request; log in with each of Logins, then of req.More's, in turn and,
// with the first that works, run change. A login refused as ErrAuthFailed
// moves on to the next; any other failure stops, because the next login goes
// to the same server and would fail the same way. Only when every login is
// refused is New tried: if it logs in as Username, the change was made
// before (the step ran, or its reply was lost) and nothing changes. Trying
// New last rather than first saves a login in the common case (a first
// attempt, where New cannot work yet) and changes no outcome: the engines
// keep one password per user, so a login that works with another password
// means New is not set yet (an administrator's login sets it again, which
// is the same change). connect must wrap its failures with ErrAuthFailed,
// ErrUnreachable or ErrInvalid; change must call req.BeforeChange right
// before it changes anything.
func ChangePassword[S any](ctx context.Context, engine string, req SetPasswordRequest,
	connect func(context.Context, Credential) (S, error), release func(S),
	change func(ctx context.Context, s S, login Credential) error,
) (SetPasswordResponse, error) {
	if req.Username == "" || req.New.IsZero() {
		return SetPasswordResponse{}, fmt.Errorf("%s: set password: username and new password are required: %w", engine, ErrInvalid)
	}
	if len(req.Logins) == 0 {
		return SetPasswordResponse{}, fmt.Errorf("%s: set password of %q: no login to try: %w", engine, req.Username, ErrInvalid)
	}
	var errs []error
	logins, i := req.Logins, 0
	for more := req.More; ; more = nil {
		for _, login := range logins {
			s, err := connect(ctx, login)
			if err != nil {
				errs = append(errs, fmt.Errorf("login %d as %q: %w", i, login.Username, err))
				i++
				if errors.Is(err, ErrAuthFailed) {
					continue
				}
				return SetPasswordResponse{}, fmt.Errorf("%s: set password of %q: %w", engine, req.Username, errors.Join(errs...))
			}
			err = change(ctx, s, login)
			release(s)
			if err != nil {
				return SetPasswordResponse{}, err
			}
			return SetPasswordResponse{LoggedInWith: i}, nil
		}
		if more == nil {
			break
		}
		extra, err := more(ctx)
		if err != nil {
			return SetPasswordResponse{}, err
		}
		logins = extra
	}
	probe := req.Logins[0] // the new password, on the first login's server
	probe.Username, probe.Password = req.Username, req.New
	s, err := connect(ctx, probe)
	if err == nil {
		release(s)
		return SetPasswordResponse{AlreadySet: true, LoggedInWith: -1}, nil
	}
	if !errors.Is(err, ErrAuthFailed) {
		return SetPasswordResponse{}, fmt.Errorf("%s: set password of %q: %w", engine, req.Username, err)
	}
	return SetPasswordResponse{}, fmt.Errorf("%s: set password of %q: no login worked, nor the new password: %w", engine, req.Username, errors.Join(errs...))
}
