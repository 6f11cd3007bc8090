//go:build integration

package integration

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"

	"github.com/secretsaga/secretsaga/integration/faultinject"
	"github.com/secretsaga/secretsaga/integration/outage"
	"github.com/secretsaga/secretsaga/shared/ephemeral"
	"github.com/secretsaga/secretsaga/shared/faults"
	"github.com/secretsaga/secretsaga/shared/ledger"
	"github.com/secretsaga/secretsaga/shared/secret"
	"github.com/secretsaga/secretsaga/shared/secretstore"
	"github.com/secretsaga/secretsaga/shared/target"
)

var ephemeralEngines = []string{"postgres", "mariadb", "redis"}

// ephService is the short-lived logins' service, fault injection wired.
func ephService(t *testing.T, actor string) *ephemeral.Service {
	t.Helper()
	svc, err := env.EphemeralService(actor, true)
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// ephTemplate makes a template for engine with its own role.
func ephTemplate(t *testing.T, ctx context.Context, engine, defaultTTL, maxTTL string) (arn, role string) {
	t.Helper()
	role = "eph_r_" + testKey(t)
	arn, err := env.EphemeralTemplate(ctx, engine, "eph/"+testKey(t)+"/"+engine, role, defaultTTL, maxTTL)
	if err != nil {
		t.Fatal(err)
	}
	return arn, role
}

// testKey is a short name of the running test that is valid in role,
// table and secret names (a test's name may hold spaces and colons when
// TestRecordedActions runs it).
func testKey(t *testing.T) string {
	h := fnv.New32a()
	h.Write([]byte(t.Name()))
	return fmt.Sprintf("%08x", h.Sum32())
}

// secretValue reads a secret's current value (the issued login).
func secretValue(t *testing.T, ctx context.Context, arn string) *secret.Value {
	t.Helper()
	out, err := env.SMClient.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: &arn})
	if err != nil {
		t.Fatalf("read the login's secret: %v", err)
	}
	v, err := secret.Parse(aws.ToString(out.SecretString))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// masterOf returns engine's master login and dynamic operations.
func masterOf(t *testing.T, ctx context.Context, engine string) (target.Credential, target.Dynamic) {
	t.Helper()
	var arn string
	var err error
	switch engine {
	case "postgres":
		arn, err = env.PostgresMaster(ctx)
	case "mariadb":
		arn, err = env.MariaDBMaster(ctx)
	case "redis":
		arn, err = env.RedisMaster(ctx)
	}
	if err != nil {
		t.Fatal(err)
	}
	v := secretValue(t, ctx, arn)
	e, err := env.Service.Engines.Lookup(engine)
	if err != nil {
		t.Fatal(err)
	}
	d, err := target.AsDynamic(e)
	if err != nil {
		t.Fatal(err)
	}
	return target.FromValue(v), d
}

// ephUsers lists the logins with secretsaga's prefix on engine's server.
func ephUsers(t *testing.T, ctx context.Context, engine string) []string {
	t.Helper()
	m, d := masterOf(t, ctx, engine)
	users, err := d.ListUsers(ctx, target.ListUsersRequest{Master: m, Prefix: target.EphemeralPrefix})
	if err != nil {
		t.Fatal(err)
	}
	return users
}

// verifyLogin logs in with v (the issued login as it was handed out).
func verifyLogin(ctx context.Context, v *secret.Value) error {
	e, err := env.Service.Engines.Lookup(v.Engine)
	if err != nil {
		return err
	}
	return e.Verify(ctx, target.VerifyRequest{Credential: target.FromValue(v)})
}

// assertGone checks that a lease left nothing behind: no login of its
// name, the login refused, no secret, the lease REVOKED (or never
// written).
func assertGone(t *testing.T, ctx context.Context, engine, leaseID string, login *secret.Value) {
	t.Helper()
	if slices.Contains(ephUsers(t, ctx, engine), leaseID) {
		t.Errorf("login %s still exists on %s", leaseID, engine)
	}
	if login != nil {
		if err := verifyLogin(ctx, login); !errors.Is(err, target.ErrAuthFailed) {
			t.Errorf("login %s after revocation: %v, want refused (ErrAuthFailed)", leaseID, err)
		}
	}
	name := ephemeral.SecretName(leaseID)
	if _, err := env.SMClient.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: &name}); !secretstore.IsNotFound(err) {
		t.Errorf("secret %s: %v, want deleted", name, err)
	}
	l, ok, err := env.EphemeralLease(ctx, leaseID)
	if err != nil {
		t.Fatal(err)
	}
	if ok && l.State != ledger.Revoked {
		t.Errorf("lease %s is %s, want REVOKED", leaseID, l.State)
	}
	if ok && (l.Queue != "" || l.ExpiresAt == 0) {
		t.Errorf("revoked lease %s: queue %q, expiresAt %d; want out of the index, with a TTL", leaseID, l.Queue, l.ExpiresAt)
	}
}

// TestEphemeralLifecycle: per engine, issue -> the login works with its
// role's grants (and a session is held open) -> revoke -> the login is
// refused and gone, its session ended, its secret deleted; then a second
// lease expires and the sweeper revokes it with no one asking.
func TestEphemeralLifecycle(t *testing.T) {
	for _, engine := range ephemeralEngines {
		t.Run(engine, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			env.Faults.Reset()
			tpl, role := ephTemplate(t, ctx, engine, "", "1h")
			svc := ephService(t, "ephemeralissue")
			lease, err := svc.Issue(ctx, ephemeral.IssueInput{TemplateId: tpl, TTL: "10m", Owner: "ci-job-42", ExecutionArn: "test:" + t.Name()})
			if err != nil {
				t.Fatal(err)
			}
			if !target.IsEphemeralName(lease.LeaseId) || lease.State != string(ledger.Issued) || lease.SecretArn == "" {
				t.Fatalf("lease = %+v", lease)
			}
			login := secretValue(t, ctx, lease.SecretArn)
			if login.Username != lease.LeaseId || login.Password.IsZero() {
				t.Fatalf("login secret: user %q", login.Username)
			}
			if err := env.CanLoginEphemeral(ctx, lease.SecretArn, role); err != nil {
				t.Fatalf("issued login cannot use its role: %v", err)
			}
			d, err := env.SMClient.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: &lease.SecretArn})
			if err != nil {
				t.Fatal(err)
			}
			tags := map[string]string{}
			for _, tg := range d.Tags {
				tags[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
			}
			if tags[ephemeral.TagLease] != lease.LeaseId || tags[ephemeral.TagExpires] != lease.NotAfter || tags[ephemeral.TagOwner] != "ci-job-42" {
				t.Errorf("secret tags = %v", tags)
			}
			if leaks := env.LeaksOf(ctx, []string{login.Password.Reveal()}); len(leaks) > 0 {
				t.Fatalf("the issued password appears in %v", leaks)
			}
			held := holdSession(t, ctx, login)
			if err := held(); err != nil {
				t.Fatalf("the held session does not answer before the revocation: %v", err)
			}

			// Retried issue (same execution): the same lease, nothing new.
			again, err := svc.Issue(ctx, ephemeral.IssueInput{TemplateId: tpl, LeaseId: lease.LeaseId, TTL: "10m", ExecutionArn: "test:" + t.Name()})
			if err != nil || again.LeaseId != lease.LeaseId {
				t.Fatalf("retried issue: %+v, %v", again, err)
			}

			rsvc := ephService(t, "ephemeralrevoke")
			if _, err := rsvc.Revoke(ctx, ephemeral.LeaseInput{LeaseId: lease.LeaseId, Reason: "test"}); err != nil {
				t.Fatal(err)
			}
			assertGone(t, ctx, engine, lease.LeaseId, login)
			if err := held(); err == nil {
				t.Errorf("a session of the revoked login still answers")
			}
			// A retried revoke is a no-op.
			if r, err := rsvc.Revoke(ctx, ephemeral.LeaseInput{LeaseId: lease.LeaseId}); err != nil || !r.Revoked {
				t.Fatalf("second revoke: %+v, %v", r, err)
			}

			// Expiry: the sweeper revokes a lease whose TTL passed.
			short, err := svc.Issue(ctx, ephemeral.IssueInput{TemplateId: tpl, TTL: "5s", ExecutionArn: "test:" + t.Name() + ":short"})
			if err != nil {
				t.Fatal(err)
			}
			shortLogin := secretValue(t, ctx, short.SecretArn)
			sweeper := ephService(t, "ephemeralsweep")
			if out, err := sweeper.Sweep(ctx, ephemeral.SweepInput{}); err != nil || slices.Contains(out.Revoked, short.LeaseId) {
				t.Fatalf("sweep before expiry: %+v, %v", out, err)
			}
			notAfter, _ := time.Parse(time.RFC3339, short.NotAfter)
			time.Sleep(time.Until(notAfter) + 100*time.Millisecond)
			if engine == "postgres" {
				// VALID UNTIL: the server refuses the login past expiry
				// even before it is revoked.
				if err := verifyLogin(ctx, shortLogin); !errors.Is(err, target.ErrAuthFailed) {
					t.Errorf("postgres login past VALID UNTIL: %v, want refused", err)
				}
			}
			out, err := sweeper.Sweep(ctx, ephemeral.SweepInput{})
			if err != nil || !slices.Contains(out.Revoked, short.LeaseId) {
				t.Fatalf("sweep after expiry: %+v, %v", out, err)
			}
			if out.CrossChecked == 0 {
				t.Errorf("sweep cross-checked no database: %+v", out)
			}
			assertGone(t, ctx, engine, short.LeaseId, shortLogin)
			if leaks := env.LeaksOf(ctx, []string{login.Password.Reveal(), shortLogin.Password.Reveal()}); len(leaks) > 0 {
				t.Fatalf("an issued password appears in %v", leaks)
			}
		})
	}
}

// holdSession opens a session as the login and returns a probe that runs
// a command on that very session (no reconnect): it must fail once the
// login is revoked (its sessions ended).
func holdSession(t *testing.T, ctx context.Context, v *secret.Value) func() error {
	t.Helper()
	switch v.Engine {
	case "postgres":
		cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%d dbname=postgres user=%s sslmode=disable", v.Host, v.Port, v.Username))
		if err != nil {
			t.Fatal(err)
		}
		cfg.Password = v.Password.Reveal()
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Fatalf("hold a session: %v", err)
		}
		t.Cleanup(func() { _ = conn.Close(context.Background()) })
		return func() error {
			_, err := conn.Exec(ctx, "SELECT 1")
			return err
		}
	case "mariadb", "mysql":
		cfg := mysql.NewConfig()
		cfg.User, cfg.Passwd = v.Username, v.Password.Reveal()
		cfg.Net, cfg.Addr, cfg.DBName = "tcp", net.JoinHostPort(v.Host, strconv.Itoa(v.Port)), v.DBName
		connector, err := mysql.NewConnector(cfg)
		if err != nil {
			t.Fatal(err)
		}
		db := sql.OpenDB(connector)
		conn, err := db.Conn(ctx)
		if err == nil {
			err = conn.PingContext(ctx)
		}
		if err != nil {
			t.Fatalf("hold a session: %v", err)
		}
		t.Cleanup(func() { _ = conn.Close(); _ = db.Close() })
		return func() error {
			_, err := conn.ExecContext(ctx, "SELECT 1")
			return err
		}
	case "redis":
		// A raw connection: a client library would reconnect (and be
		// refused), which could not tell an ended session from a refused
		// login.
		c, err := net.Dial("tcp", net.JoinHostPort(v.Host, strconv.Itoa(v.Port)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		r := bufio.NewReader(c)
		send := func(args ...string) (string, error) {
			cmd := fmt.Sprintf("*%d\r\n", len(args))
			for _, a := range args {
				cmd += fmt.Sprintf("$%d\r\n%s\r\n", len(a), a)
			}
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Write([]byte(cmd)); err != nil {
				return "", err
			}
			return r.ReadString('\n')
		}
		if reply, err := send("AUTH", v.Username, v.Password.Reveal()); err != nil || !strings.HasPrefix(reply, "+OK") {
			t.Fatalf("hold a session: %q, %v", reply, err)
		}
		return func() error {
			reply, err := send("PING")
			if err == nil && !strings.HasPrefix(reply, "+PONG") {
				err = fmt.Errorf("PING: %q", reply)
			}
			return err
		}
	}
	return nil
}

// TestEphemeralBadInput: a TTL above the max, an unknown template, a
// template without a master, a role that does not exist: a named
// InputError, and nothing created (no login, no lease, no secret).
func TestEphemeralBadInput(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	env.Faults.Reset()
	tpl, _ := ephTemplate(t, ctx, "postgres", "", "30m")
	noMaster, err := env.CreateSecret(ctx, "eph/no-master", `{"engine":"postgres","host":"127.0.0.1","port":5432,"role":"x"}`, "template without a master")
	if err != nil {
		t.Fatal(err)
	}
	tagTemplate(t, ctx, noMaster)
	masterARN, err := env.PostgresMaster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(map[string]any{"engine": "postgres", "host": env.Postgres.Host, "port": env.Postgres.Port, "dbname": "postgres", "masterarn": masterARN, "role": "no_such_role_xyz"})
	noRole, err := env.CreateSecret(ctx, "eph/no-role", string(raw), "template whose role does not exist")
	if err != nil {
		t.Fatal(err)
	}
	tagTemplate(t, ctx, noRole)
	untagged, err := env.PostgresSecret(ctx, "eph/untagged", "eph_untagged_login")
	if err != nil {
		t.Fatal(err)
	}
	before := ephUsers(t, ctx, "postgres")
	svc := ephService(t, "ephemeralissue")
	for _, c := range []struct {
		name string
		in   ephemeral.IssueInput
		want string // in the error's text
	}{
		{"ttl above max", ephemeral.IssueInput{TemplateId: tpl, TTL: "31m"}, "above the max TTL"},
		{"max ttl above the template's", ephemeral.IssueInput{TemplateId: tpl, TTL: "5m", MaxTTL: "2h"}, "above the template's max_ttl"},
		{"ttl not a duration", ephemeral.IssueInput{TemplateId: tpl, TTL: "soon"}, "TTL must be a duration"},
		{"unknown template", ephemeral.IssueInput{TemplateId: "eph/no-such-template", TTL: "5m"}, "no template secret"},
		{"not a template", ephemeral.IssueInput{TemplateId: untagged, TTL: "5m"}, ephemeral.TagTemplate},
		{"template without a master", ephemeral.IssueInput{TemplateId: noMaster, TTL: "5m"}, "masterarn"},
		{"role does not exist", ephemeral.IssueInput{TemplateId: noRole, TTL: "5m"}, "role does not exist"},
	} {
		t.Run(c.name, func(t *testing.T) {
			id := fmt.Sprintf("%08x-0000-4000-8000-000000000000", 7919*len(c.name))
			c.in.LeaseId, c.in.ExecutionArn = id, "test:"+t.Name()
			_, err := svc.Issue(ctx, c.in)
			var ie *faults.InputError
			if !errors.As(err, &ie) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want an InputError saying %q", err, c.want)
			}
			name, _ := ephemeral.LeaseName(id)
			if _, ok, _ := env.EphemeralLease(ctx, name); ok {
				t.Errorf("a lease was journaled for bad input")
			}
		})
	}
	if after := ephUsers(t, ctx, "postgres"); !slices.Equal(before, after) {
		t.Errorf("logins before %v, after %v: bad input created one", before, after)
	}
}

func tagTemplate(t *testing.T, ctx context.Context, arn string) {
	t.Helper()
	if _, err := env.SMClient.TagResource(ctx, &secretsmanager.TagResourceInput{SecretId: &arn,
		Tags: []smtypes.Tag{{Key: aws.String(ephemeral.TagTemplate), Value: aws.String("local")}}}); err != nil {
		t.Fatal(err)
	}
}

// TestEphemeralDatabaseDownAtRevoke: the database is cut off when the
// lease is revoked; the revocation fails (retryable), the lease stays due,
// and the sweeper revokes it once the database is back, with no person
// involved; after AlertAfter failed attempts Revocation Failed went out.
func TestEphemeralDatabaseDownAtRevoke(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	env.Faults.Reset()
	p, err := outage.Start(net.JoinHostPort(env.Postgres.Host, strconv.Itoa(env.Postgres.Port)))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	tpl := proxiedTemplate(t, ctx, p)
	svc := ephService(t, "ephemeralissue")
	lease, err := svc.Issue(ctx, ephemeral.IssueInput{TemplateId: tpl, TTL: "10m", ExecutionArn: "test:" + t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	login := secretValue(t, ctx, lease.SecretArn)
	login.Host, login.Port = env.Postgres.Host, env.Postgres.Port // straight, not through the proxy

	p.Cut()
	rsvc := ephService(t, "ephemeralrevoke")
	rsvc.AlertAfter = 2
	for i := range 2 {
		_, err = rsvc.Revoke(ctx, ephemeral.LeaseInput{LeaseId: lease.LeaseId, Reason: "expired"})
		var re *faults.RetryableError
		if !errors.As(err, &re) {
			t.Fatalf("revoke %d with the database down: %v, want RetryableError", i+1, err)
		}
	}
	l, _, _ := env.EphemeralLease(ctx, lease.LeaseId)
	if l.State != ledger.Revoking || l.RevokeAttempts != 2 || !l.Alerted || l.Queue == "" {
		t.Fatalf("lease after failed revocations: state %s, attempts %d, alerted %v, queue %q", l.State, l.RevokeAttempts, l.Alerted, l.Queue)
	}
	if !alertedEvent(lease.LeaseId) {
		t.Errorf("no Revocation Failed event for %s", lease.LeaseId)
	}
	if err := verifyLogin(ctx, login); err != nil {
		t.Fatalf("the login should still work while its revocation is pending: %v", err)
	}
	p.Restore()
	// The sweeper's next run, once the retry is due.
	sweeper := ephService(t, "ephemeralsweep")
	sweeper.Now = func() time.Time { return time.Now().Add(time.Hour) }
	out, err := sweeper.Sweep(ctx, ephemeral.SweepInput{SkipCrossCheck: true})
	if err != nil || !slices.Contains(out.Revoked, lease.LeaseId) {
		t.Fatalf("sweep after the database returned: %+v, %v", out, err)
	}
	assertGone(t, ctx, "postgres", lease.LeaseId, login)
}

// alertedEvent reports whether Revocation Failed was published for lease.
func alertedEvent(lease string) bool {
	for _, e := range env.Events.Entries() {
		if e.DetailType == "Revocation Failed" && strings.Contains(string(e.Detail), lease) {
			return true
		}
	}
	return false
}

// proxiedTemplate makes a PostgreSQL template and master secret that reach
// the server through p.
func proxiedTemplate(t *testing.T, ctx context.Context, p *outage.Proxy) string {
	t.Helper()
	tpl, role := ephTemplate(t, ctx, "postgres", "", "1h")
	masterARN, err := env.PostgresMaster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mv := secretValue(t, ctx, masterARN)
	m, _ := json.Marshal(map[string]any{"engine": "postgres", "host": p.Host(), "port": p.Port(), "dbname": "postgres",
		"username": mv.Username, "password": mv.Password.Reveal(), "tls": "disable"})
	proxMaster, err := env.CreateSecret(ctx, "eph/proxied-master-"+testKey(t), string(m), "master through an outage proxy")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(map[string]any{"engine": "postgres", "host": p.Host(), "port": p.Port(), "dbname": "postgres",
		"masterarn": proxMaster, "role": role, "tls": "disable"})
	arn, err := env.CreateSecret(ctx, "eph/proxied-"+testKey(t), string(raw), "template through an outage proxy")
	if err != nil {
		t.Fatal(err)
	}
	tagTemplate(t, ctx, arn)
	_ = tpl
	return arn
}

// TestEphemeralFaultAtEveryCall: a fault (before or after its effect) at
// each external call of a successful issue, then what the state machine
// does: a RetryableError is retried (the retry must finish the issue and
// its login work), anything else compensated (revoke), and the lease
// revoked; and a fault at each call of a revocation, then the revoke
// again: nothing is left behind in any cell.
func TestEphemeralFaultAtEveryCall(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	tpl, role := ephTemplate(t, ctx, "postgres", "", "1h")
	issueCtx := faultinject.WithFunction(ctx, "ephemeralissue")
	revokeCtx := faultinject.WithFunction(ctx, "ephemeralrevoke")
	cycle := func(exec string) {
		l, err := ephService(t, "ephemeralissue").Issue(issueCtx, ephemeral.IssueInput{TemplateId: tpl, TTL: "10m", ExecutionArn: exec})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ephService(t, "ephemeralrevoke").Revoke(revokeCtx, ephemeral.LeaseInput{LeaseId: l.LeaseId}); err != nil {
			t.Fatal(err)
		}
	}
	issueCalls := recordCalls(t, func() { cycle("test:record") }, "ephemeralissue")
	revokeCalls := recordCalls(t, func() { cycle("test:record2") }, "ephemeralrevoke")
	t.Logf("issue makes %d calls %v; revoke %d %v", len(issueCalls), issueCalls, len(revokeCalls), revokeCalls)
	if len(issueCalls) < 6 || len(revokeCalls) < 4 {
		t.Fatalf("too few calls recorded: issue %v, revoke %v", issueCalls, revokeCalls)
	}
	cells := 0
	for _, phase := range []faultinject.Phase{faultinject.Before, faultinject.After} {
		for i, call := range nth(issueCalls) {
			name := fmt.Sprintf("issue/%s/%d-%s", phase, i+1, call.name)
			t.Run(name, func(t *testing.T) {
				cells++
				env.Faults.Reset()
				env.Faults.Add(faultinject.Rule{Function: "ephemeralissue", Call: call.name, Nth: call.nth, Phase: phase, Err: errors.New("injected")})
				svc := ephService(t, "ephemeralissue")
				id := target.NewEphemeralName()
				_, ierr := svc.Issue(issueCtx, ephemeral.IssueInput{TemplateId: tpl, LeaseId: id, TTL: "10m", ExecutionArn: "test:" + name})
				if env.Faults.Fired() == 0 {
					t.Fatalf("the fault did not fire")
				}
				var re *faults.RetryableError
				if errors.As(ierr, &re) {
					// The state machine's Retry: the same issue again,
					// which must finish what the first one started.
					env.Faults.Reset()
					l, err := svc.Issue(issueCtx, ephemeral.IssueInput{TemplateId: tpl, LeaseId: id, TTL: "10m", ExecutionArn: "test:" + name})
					if err != nil {
						t.Fatalf("retried issue after %v: %v", ierr, err)
					}
					if err := env.CanLoginEphemeral(ctx, l.SecretArn, role); err != nil {
						t.Fatalf("the retried issue's login: %v", err)
					}
				}
				// Compensation (what the state machine's Catch runs), or the
				// revocation at expiry.
				if _, ok, _ := env.EphemeralLease(ctx, id); ok {
					if _, err := ephService(t, "ephemeralrevoke").Revoke(ctx, ephemeral.LeaseInput{LeaseId: id, Reason: "issue failed"}); err != nil {
						t.Fatalf("compensation after %v: %v", ierr, err)
					}
				}
				assertGone(t, ctx, "postgres", id, nil)
			})
		}
		for i, call := range nth(revokeCalls) {
			name := fmt.Sprintf("revoke/%s/%d-%s", phase, i+1, call.name)
			t.Run(name, func(t *testing.T) {
				cells++
				env.Faults.Reset()
				l, err := ephService(t, "ephemeralissue").Issue(ctx, ephemeral.IssueInput{TemplateId: tpl, TTL: "10m", ExecutionArn: "test:" + name})
				if err != nil {
					t.Fatal(err)
				}
				login := secretValue(t, ctx, l.SecretArn)
				env.Faults.Reset()
				env.Faults.Add(faultinject.Rule{Function: "ephemeralrevoke", Call: call.name, Nth: call.nth, Phase: phase, Err: errors.New("injected")})
				rsvc := ephService(t, "ephemeralrevoke")
				_, _ = rsvc.Revoke(revokeCtx, ephemeral.LeaseInput{LeaseId: l.LeaseId})
				if env.Faults.Fired() == 0 {
					t.Fatalf("the fault did not fire")
				}
				env.Faults.Reset()
				// The state machine's retry, or the sweeper.
				if _, err := rsvc.Revoke(ctx, ephemeral.LeaseInput{LeaseId: l.LeaseId}); err != nil {
					t.Fatalf("revoke again: %v", err)
				}
				assertGone(t, ctx, "postgres", l.LeaseId, login)
			})
		}
	}
	env.Faults.Reset()
	t.Logf("%d cells", cells)
}

type callN struct {
	name string
	nth  int
}

// nth numbers each call by its occurrence among calls of the same name.
func nth(calls []string) []callN {
	seen := map[string]int{}
	out := make([]callN, 0, len(calls))
	for _, c := range calls {
		seen[c]++
		out = append(out, callN{c, seen[c]})
	}
	return out
}

// recordCalls runs f and returns the external calls function made in it.
func recordCalls(t *testing.T, f func(), function string) []string {
	t.Helper()
	env.Faults.Reset()
	var calls []string
	stop := env.Faults.Observe(func(c faultinject.Call) {
		if c.Function == function {
			calls = append(calls, c.Name)
		}
	})
	f()
	stop()
	env.Faults.Reset()
	return calls
}

// TestEphemeralRetriedIssue: per engine, the login is created but the
// issue fails right after (a lost reply): the retried issue sets the same
// login again (a new password, the same role) and finishes; then revoked.
func TestEphemeralRetriedIssue(t *testing.T) {
	for _, engine := range ephemeralEngines {
		t.Run(engine, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			tpl, role := ephTemplate(t, ctx, engine, "", "1h")
			issueCtx := faultinject.WithFunction(ctx, "ephemeralissue")
			env.Faults.Reset()
			defer env.Faults.Reset()
			env.Faults.Add(faultinject.Rule{Function: "ephemeralissue", Call: "target.NewUser", Nth: 1, Phase: faultinject.After, Err: errors.New("injected")})
			svc := ephService(t, "ephemeralissue")
			id := target.NewEphemeralName()
			in := ephemeral.IssueInput{TemplateId: tpl, LeaseId: id, TTL: "10m", ExecutionArn: "test:" + t.Name()}
			if _, err := svc.Issue(issueCtx, in); err == nil {
				t.Fatal("the injected fault did not fail the issue")
			}
			if !slices.Contains(ephUsers(t, ctx, engine), id) {
				t.Fatalf("the first attempt did not create %s", id)
			}
			l, err := svc.Issue(issueCtx, in)
			if err != nil {
				t.Fatalf("retried issue: %v", err)
			}
			if err := env.CanLoginEphemeral(ctx, l.SecretArn, role); err != nil {
				t.Fatalf("the retried issue's login: %v", err)
			}
			login := secretValue(t, ctx, l.SecretArn)
			if _, err := ephService(t, "ephemeralrevoke").Revoke(ctx, ephemeral.LeaseInput{LeaseId: id}); err != nil {
				t.Fatal(err)
			}
			assertGone(t, ctx, engine, id, login)
		})
	}
}
