//go:build integration

package postgres_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/secretsaga/secretsaga/shared/secret"
	"github.com/secretsaga/secretsaga/shared/target"
	"github.com/secretsaga/secretsaga/shared/target/postgres"
)

// EnsureUser marks the clones it creates (the role's comment) in the same
// transaction as CREATE ROLE, reports the marks it finds, and with
// CheckOnly changes nothing, not even for a role that is someone else's.
func TestCloneMarkAgainstPostgres(t *testing.T) {
	ctx := context.Background()
	pg, admin := startPostgres(ctx, t)
	const user, foreign = `o'brien "app"`, "other_team"
	for _, q := range []string{
		"CREATE ROLE master LOGIN CREATEROLE PASSWORD 'Master-pw-1'",
		"CREATE ROLE " + pgx.Identifier{user}.Sanitize() + " LOGIN PASSWORD 'User-pw-1'",
		"CREATE ROLE " + pgx.Identifier{foreign}.Sanitize() + " LOGIN PASSWORD 'Foreign-pw-1'",
	} {
		if _, err := admin.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	master := target.Credential{Host: pg.Host, Port: pg.Port, Username: "master", Password: secret.NewPassword("Master-pw-1"), DBName: "postgres"}
	e := postgres.New(postgres.Options{})
	comment := func(role string) string {
		var c *string
		if err := admin.QueryRow(ctx, "SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = $1", role).Scan(&c); err != nil {
			t.Fatal(err)
		}
		if c == nil {
			return ""
		}
		return *c
	}

	// Someone else's role: reported, not marked, not touched.
	res, err := e.EnsureUser(ctx, target.EnsureUserRequest{Master: master, Username: foreign, Like: user, CheckOnly: true})
	if err != nil || !res.Exists || res.Mark != "" || res.Created {
		t.Fatalf("check of a foreign role = %+v, %v", res, err)
	}
	if c := comment(foreign); c != "" {
		t.Fatalf("the foreign role got a comment %q", c)
	}
	if err := e.Verify(ctx, target.VerifyRequest{Credential: target.Credential{Host: pg.Host, Port: pg.Port, Username: foreign, Password: secret.NewPassword("Foreign-pw-1"), DBName: "postgres"}}); err != nil {
		t.Fatalf("the foreign role's password: %v", err)
	}
	// A role that does not exist: CheckOnly creates nothing.
	clone := user + "_clone"
	res, err = e.EnsureUser(ctx, target.EnsureUserRequest{Master: master, Username: clone, Like: user, CheckOnly: true,
		BeforeChange: func(context.Context) error { return fmt.Errorf("CheckOnly called BeforeChange") }})
	if err != nil || res.Exists || res.Created {
		t.Fatalf("check of a missing role = %+v, %v", res, err)
	}
	// Created and marked.
	res, err = e.EnsureUser(ctx, target.EnsureUserRequest{Master: master, Username: clone, Like: user})
	if err != nil || !res.Created || res.Mark != user {
		t.Fatalf("create = %+v, %v", res, err)
	}
	if c := comment(clone); c != "secretsaga:clone-of="+user {
		t.Fatalf("clone comment = %q", c)
	}
	res, err = e.EnsureUser(ctx, target.EnsureUserRequest{Master: master, Username: clone, Like: user, CheckOnly: true})
	if err != nil || !res.Exists || res.Mark != user || res.LikeMark != "" {
		t.Fatalf("check of the clone = %+v, %v", res, err)
	}
	// Seen from the clone's side (a secret on the clone, switching back).
	res, err = e.EnsureUser(ctx, target.EnsureUserRequest{Master: master, Username: user, Like: clone, CheckOnly: true})
	if err != nil || !res.Exists || res.LikeMark != user {
		t.Fatalf("check from the clone's side = %+v, %v", res, err)
	}
}
