package target

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/secretsaga/secretsaga/shared/secret"
)

// fakeServer knows one user's password and counts sessions.
type fakeServer struct {
	password string
	down     bool
	open     int
	changed  int
	attempts int // logins tried
}

func (f *fakeServer) connect(_ context.Context, c Credential) (*fakeServer, error) {
	f.attempts++
	switch {
	case f.down:
		return nil, fmt.Errorf("dial: %w", ErrUnreachable)
	case c.Password.Reveal() != f.password:
		return nil, fmt.Errorf("login as %s: %w", c.Username, ErrAuthFailed)
	}
	f.open++
	return f, nil
}

func TestChangePassword(t *testing.T) {
	pw := secret.NewPassword
	login := func(p string) Credential { return Credential{Host: "h", Username: "app", Password: pw(p)} }
	more := func(ps ...string) func(context.Context) ([]Credential, error) {
		return func(context.Context) ([]Credential, error) {
			var out []Credential
			for _, p := range ps {
				out = append(out, login(p))
			}
			return out, nil
		}
	}
	boom := errors.New("cannot read AWSPREVIOUS")
	tests := []struct {
		name         string
		server       fakeServer
		req          SetPasswordRequest
		wantErr      error
		wantResult   SetPasswordResponse
		wantChange   int
		wantAttempts int
	}{
		// A first attempt: one login, the one that changes the password.
		{"first login works", fakeServer{password: "old"}, SetPasswordRequest{Username: "app", New: pw("new"), Logins: []Credential{login("old")}, More: more("prev")}, nil, SetPasswordResponse{LoggedInWith: 0}, 1, 1},
		{"second login works", fakeServer{password: "old"}, SetPasswordRequest{Username: "app", New: pw("new"), Logins: []Credential{login("x"), login("old")}}, nil, SetPasswordResponse{LoggedInWith: 1}, 1, 2},
		{"a login of More works", fakeServer{password: "prev"}, SetPasswordRequest{Username: "app", New: pw("new"), Logins: []Credential{login("x")}, More: more("y", "prev")}, nil, SetPasswordResponse{LoggedInWith: 2}, 1, 3},
		{"already set", fakeServer{password: "new"}, SetPasswordRequest{Username: "app", New: pw("new"), Logins: []Credential{login("old")}}, nil, SetPasswordResponse{AlreadySet: true, LoggedInWith: -1}, 0, 2},
		{"already set, More tried first", fakeServer{password: "new"}, SetPasswordRequest{Username: "app", New: pw("new"), Logins: []Credential{login("old")}, More: more("prev")}, nil, SetPasswordResponse{AlreadySet: true, LoggedInWith: -1}, 0, 3},
		{"More fails", fakeServer{password: "new"}, SetPasswordRequest{Username: "app", New: pw("new"), Logins: []Credential{login("old")}, More: func(context.Context) ([]Credential, error) { return nil, boom }}, boom, SetPasswordResponse{}, 0, 1},
		{"no login works", fakeServer{password: "other"}, SetPasswordRequest{Username: "app", New: pw("new"), Logins: []Credential{login("x"), login("y")}, More: more("z")}, ErrAuthFailed, SetPasswordResponse{}, 0, 4},
		{"unreachable", fakeServer{down: true}, SetPasswordRequest{Username: "app", New: pw("new"), Logins: []Credential{login("old")}, More: more("prev")}, ErrUnreachable, SetPasswordResponse{}, 0, 1},
		{"no username", fakeServer{}, SetPasswordRequest{New: pw("new"), Logins: []Credential{login("old")}}, ErrInvalid, SetPasswordResponse{}, 0, 0},
		{"no logins", fakeServer{}, SetPasswordRequest{Username: "app", New: pw("new")}, ErrInvalid, SetPasswordResponse{}, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := tt.server
			res, err := ChangePassword(context.Background(), "fake", tt.req, srv.connect, func(s *fakeServer) { s.open-- },
				func(_ context.Context, s *fakeServer, _ Credential) error {
					s.changed++
					s.password = tt.req.New.Reveal()
					return nil
				})
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if res != tt.wantResult || srv.changed != tt.wantChange || srv.open != 0 || srv.attempts != tt.wantAttempts {
				t.Fatalf("result %+v, changed %d, sessions left open %d, logins %d; want %+v, %d, 0, %d", res, srv.changed, srv.open, srv.attempts, tt.wantResult, tt.wantChange, tt.wantAttempts)
			}
			if err != nil && (strings.Contains(err.Error(), `"new"`) || strings.Contains(err.Error(), `"old"`)) {
				t.Fatalf("error holds a password: %v", err)
			}
		})
	}
}
