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
}

func (f *fakeServer) connect(_ context.Context, c Credential) (*fakeServer, error) {
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
	tests := []struct {
		name       string
		server     fakeServer
		req        SetPasswordRequest
		wantErr    error
		wantResult SetPasswordResponse
		wantChange int
	}{
		{"first login works", fakeServer{password: "old"}, SetPasswordRequest{Username: "app", New: pw("new"), Logins: []Credential{login("old")}}, nil, SetPasswordResponse{LoggedInWith: 0}, 1},
		{"second login works", fakeServer{password: "old"}, SetPasswordRequest{Username: "app", New: pw("new"), Logins: []Credential{login("x"), login("old")}}, nil, SetPasswordResponse{LoggedInWith: 1}, 1},
		{"already set", fakeServer{password: "new"}, SetPasswordRequest{Username: "app", New: pw("new"), Logins: []Credential{login("old")}}, nil, SetPasswordResponse{AlreadySet: true, LoggedInWith: -1}, 0},
		{"no login works", fakeServer{password: "other"}, SetPasswordRequest{Username: "app", New: pw("new"), Logins: []Credential{login("x"), login("y")}}, ErrAuthFailed, SetPasswordResponse{}, 0},
		{"unreachable", fakeServer{down: true}, SetPasswordRequest{Username: "app", New: pw("new"), Logins: []Credential{login("old")}}, ErrUnreachable, SetPasswordResponse{}, 0},
		{"no username", fakeServer{}, SetPasswordRequest{New: pw("new"), Logins: []Credential{login("old")}}, ErrInvalid, SetPasswordResponse{}, 0},
		{"no logins", fakeServer{}, SetPasswordRequest{Username: "app", New: pw("new")}, ErrInvalid, SetPasswordResponse{}, 0},
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
			if res != tt.wantResult || srv.changed != tt.wantChange || srv.open != 0 {
				t.Fatalf("result %+v, changed %d, sessions left open %d; want %+v, %d, 0", res, srv.changed, srv.open, tt.wantResult, tt.wantChange)
			}
			if err != nil && (strings.Contains(err.Error(), `"new"`) || strings.Contains(err.Error(), `"old"`)) {
				t.Fatalf("error holds a password: %v", err)
			}
		})
	}
}
