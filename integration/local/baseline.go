package local

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/jackc/pgx/v5"

	"github.com/secretsaga/secretsaga/integration/sfnlocal"
	"github.com/secretsaga/secretsaga/shared/secret"
)

// Baseline is a secret and its target as they were before a scenario. It
// lets the invariant checker tell a secret the product refused and left
// alone (it was already broken, e.g. its AWSCURRENT never logged in, and
// nothing changed) from one the product broke (it worked before, or
// something changed).
type Baseline struct {
	// Broken lists the secret's invariants (1 to 3: one AWSCURRENT, it
	// logs in, no AWSPENDING) that did not hold before the scenario.
	Broken []string
	// secret is every version with its stages and a digest of its value;
	// target is a digest of the credential the target stores for every
	// user a version names (and the other user, with masterarn), read as
	// the target's administrator. Digests, not values: a baseline holds
	// no password.
	secret, target map[string]string
}

// Baseline records the secret and its target now.
func (e *Env) Baseline(ctx context.Context, secretARN string) (*Baseline, error) {
	stages, err := e.Stages(ctx, secretARN)
	if err != nil {
		return nil, err
	}
	b := &Baseline{secret: map[string]string{}, target: map[string]string{}}
	for id, ss := range stages {
		sorted := slices.Sorted(slices.Values(ss))
		out, err := e.SMClient.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: &secretARN, VersionId: &id})
		if err != nil {
			// A secret scheduled for deletion has no readable value.
			b.secret[id] = strings.Join(sorted, ",") + " unreadable"
			continue
		}
		b.secret[id] = strings.Join(sorted, ",") + " " + digest(aws.ToString(out.SecretString)) + " " + digest(string(out.SecretBinary))
		v, err := secret.Parse(aws.ToString(out.SecretString))
		if err != nil {
			continue // not a login: nothing on the target to record
		}
		users := []string{v.Username}
		if v.MasterARN != "" {
			users = append(users, secret.AlternateUsername(v.Username))
		}
		for _, u := range users {
			key := fmt.Sprintf("%s %s:%d %s", v.Engine, v.Host, v.Port, u)
			if _, done := b.target[key]; !done {
				b.target[key] = e.storedCredential(ctx, v, u)
			}
		}
	}
	b.Broken = e.secretInvariants(ctx, secretARN, stages, false)
	return b, nil
}

// Changes lists what differs between b and now (none: byte-for-byte the
// same secret and the same stored credentials on the target).
func (b *Baseline) Changes(now *Baseline) []string {
	var out []string
	for _, d := range []struct {
		what        string
		before, now map[string]string
	}{{"version", b.secret, now.secret}, {"target user", b.target, now.target}} {
		for _, k := range slices.Sorted(mapKeys(d.before, d.now)) {
			if d.before[k] != d.now[k] {
				out = append(out, d.what+" "+k)
			}
		}
	}
	return out
}

// SecretChanges is Changes limited to the secret's own versions: what a
// rotation that was refused must not have changed, while another secret's
// rotation may rightly have changed a login the two share.
func (b *Baseline) SecretChanges(now *Baseline) []string {
	var out []string
	for _, c := range b.Changes(now) {
		if strings.HasPrefix(c, "version ") {
			out = append(out, c)
		}
	}
	return out
}

func mapKeys(ms ...map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		seen := map[string]bool{}
		for _, m := range ms {
			for k := range m {
				if !seen[k] {
					seen[k] = true
					if !yield(k) {
						return
					}
				}
			}
		}
	}
}

func digest(s string) string {
	if s == "" {
		return "-"
	}
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:8])
}

// storedCredential is a digest of what the local target stores for user
// (PostgreSQL's rolpassword, MariaDB's authentication_string, Redis's ACL
// password hashes): a password set again, even to the same value, changes
// it (a new salt), so it shows whether the product touched the login.
func (e *Env) storedCredential(ctx context.Context, v *secret.Value, user string) string {
	var stored string
	var err error
	switch {
	case (v.Engine == "postgres" || v.Engine == "postgresql") && e.Postgres != nil && v.Port == e.Postgres.Port:
		var conn *pgx.Conn
		if conn, err = pgx.Connect(ctx, e.Postgres.AdminDSN()); err == nil {
			var pw *string
			err = conn.QueryRow(ctx, "SELECT rolpassword FROM pg_authid WHERE rolname = $1", user).Scan(&pw)
			_ = conn.Close(ctx)
			if pw != nil {
				stored = *pw
			}
		}
	case (v.Engine == "mariadb" || v.Engine == "mysql") && e.MariaDB != nil && v.Port == e.MariaDB.Port:
		db, oerr := e.MariaDB.OpenRoot()
		if err = oerr; err == nil {
			var auth []byte
			err = db.QueryRowContext(ctx, "SELECT CONCAT(Host, ':', authentication_string) FROM mysql.user WHERE User = ? ORDER BY Host LIMIT 1", user).Scan(&auth)
			_ = db.Close()
			stored = string(auth)
		}
	case v.Engine == "redis" && e.Redis != nil && v.Port == e.Redis.Port:
		c := e.Redis.AdminClient()
		var res any
		res, err = c.Do(ctx, "ACL", "GETUSER", user).Result()
		_ = c.Close()
		stored = fmt.Sprint(res)
	default:
		return "not a local target"
	}
	switch {
	case err != nil && (errors.Is(err, pgx.ErrNoRows) || strings.Contains(err.Error(), "no rows") || strings.Contains(err.Error(), "redis: nil")):
		return "absent"
	case err != nil:
		return "unreadable: " + err.Error()
	}
	return digest(stored)
}

// Verdict is what CheckAgainst finds.
type Verdict struct {
	// Violations are broken invariants (none: safe).
	Violations []string
	// RefusedUnchanged: the secret was already broken before the scenario
	// (its AWSCURRENT did not log in, say) and the secret and the target
	// are byte-for-byte as they were: the product rightly refused and left
	// them alone, which is not a violation.
	RefusedUnchanged bool
}

// CheckAgainst is CheckInvariants with the baseline taken before the
// scenario (nil: none). A secret that was already broken and is unchanged
// is reported as refused-and-unchanged, its pre-existing breakage (the
// secret's invariants 1 to 3) not counted; the ledger's and the leak
// scan's invariants (4, 5) always count. If the product changed anything
// about a secret that was already broken, every violation counts and
// names what changed.
func (e *Env) CheckAgainst(ctx context.Context, before *Baseline, secretARN string, execs ...*sfnlocal.Execution) Verdict {
	bad := e.CheckInvariants(ctx, secretARN, execs...)
	if before == nil || len(before.Broken) == 0 {
		return Verdict{Violations: bad}
	}
	now, err := e.Baseline(ctx, secretARN)
	if err != nil {
		return Verdict{Violations: append(bad, "baseline: "+err.Error())}
	}
	return judge(before, now, bad)
}

// judge decides a verdict from the baseline, the state now and the
// violations found now.
func judge(before, now *Baseline, bad []string) Verdict {
	if len(before.Broken) == 0 {
		return Verdict{Violations: bad}
	}
	if changes := before.Changes(now); len(changes) > 0 {
		var out []string
		for _, v := range bad {
			out = append(out, v+" (already broken before the scenario: "+strings.Join(before.Broken, "; ")+"; the product changed "+strings.Join(changes, ", ")+")")
		}
		return Verdict{Violations: out}
	}
	var kept []string
	for _, v := range bad {
		if !strings.HasPrefix(v, "invariant 1:") && !strings.HasPrefix(v, "invariant 2:") && !strings.HasPrefix(v, "invariant 3:") {
			kept = append(kept, v)
		}
	}
	return Verdict{Violations: kept, RefusedUnchanged: true}
}
