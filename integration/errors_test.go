//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/google/uuid"

	"github.com/secretsaga/secretsaga/shared/faults"
)

// point5 is one of issue 13's "wrong or unclear errors": a secret or an
// execution input that must fail at once with a named fault whose cause says
// what to fix, and change nothing.
type point5 struct {
	name string
	// secret makes the secret (AWSCURRENT logs in as role with pw unless
	// the row spoils it) and returns its ARN.
	secret func(ctx context.Context, t *testing.T, id string) (arn, role, pw string)
	// input is the execution input beyond SecretId (nil: none).
	input   func(ctx context.Context, t *testing.T, arn string) map[string]any
	wantErr string // errorType; "" means the rotation must succeed
	inCause string
}

// postgresSecret is a working single-user secret, its value passed through
// spoil (which may return a whole different SecretString).
func postgresSecret(spoil func(raw string) string) func(context.Context, *testing.T, string) (string, string, string) {
	return func(ctx context.Context, t *testing.T, id string) (string, string, string) {
		role := "p5_" + id
		v, err := env.PostgresRole(ctx, role)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(v)
		raw := string(b)
		if spoil != nil {
			raw = spoil(raw)
		}
		arn, err := env.CreateSecret(ctx, "it/point5/"+id, raw, "issue 13 point 5")
		if err != nil {
			t.Fatal(err)
		}
		return arn, role, v["password"].(string)
	}
}

func TestPoint5Errors(t *testing.T) {
	tests := []point5{
		{name: "SecretBinary instead of SecretString", secret: func(ctx context.Context, t *testing.T, id string) (string, string, string) {
			arn, role, pw := postgresSecret(nil)(ctx, t, id)
			// A version holding SecretBinary becomes AWSCURRENT.
			if _, err := env.SMClient.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: &arn,
				SecretBinary: []byte(`{"engine":"postgres"}`)}); err != nil {
				t.Fatal(err)
			}
			return arn, role, pw
		}, wantErr: faults.NameInput, inCause: "holds SecretBinary"},
		{name: "token of an unlabelled version", secret: postgresSecret(nil), input: func(ctx context.Context, t *testing.T, arn string) map[string]any {
			// The first version loses every label after two more values.
			first, err := env.SMClient.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: &arn})
			if err != nil {
				t.Fatal(err)
			}
			for range 2 {
				if _, err := env.SMClient.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: &arn, SecretString: first.SecretString}); err != nil {
					t.Fatal(err)
				}
			}
			return map[string]any{"ClientRequestToken": aws.ToString(first.VersionId)}
		}, wantErr: faults.NameInput, inCause: "no longer carries a staging label"},
		{name: `execution input "Rollback": "false"`, secret: postgresSecret(nil), input: func(context.Context, *testing.T, string) map[string]any {
			return map[string]any{"Rollback": "false"}
		}, wantErr: faults.NameInput, inCause: `field "Rollback" of the execution input must be a JSON boolean`},
		{name: `execution input "BakeSeconds": "10"`, secret: postgresSecret(nil), input: func(context.Context, *testing.T, string) map[string]any {
			return map[string]any{"BakeSeconds": "10", "HealthCheckUrl": "http://127.0.0.1:1/health"}
		}, wantErr: faults.NameInput, inCause: `field "BakeSeconds" of the execution input must be a whole JSON number`},
		{name: "alternating users: PostgreSQL user of 58 bytes", secret: func(ctx context.Context, t *testing.T, id string) (string, string, string) {
			role := "p5_" + id + "_" + strings.Repeat("x", 58-len("p5_")-len(id)-1)
			arn, err := env.PostgresAlternatingSecret(ctx, "it/point5/"+id, role)
			if err != nil {
				t.Fatal(err)
			}
			return arn, "", ""
		}, wantErr: faults.NameInput, inCause: "(64 bytes), longer than the 63 bytes of PostgreSQL's limit on role names"},
		{name: "alternating users: MariaDB user of 75 characters", secret: func(ctx context.Context, t *testing.T, id string) (string, string, string) {
			// The fixture's own grants table could not be named after so
			// long a user; the secret names it (acquire reads no database).
			arn, err := env.MariaDBAlternatingSecret(ctx, "it/point5/"+id, "p5_"+id)
			if err != nil {
				t.Fatal(err)
			}
			cur, err := env.SMClient.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: &arn})
			if err != nil {
				t.Fatal(err)
			}
			var v map[string]any
			if err := json.Unmarshal([]byte(aws.ToString(cur.SecretString)), &v); err != nil {
				t.Fatal(err)
			}
			v["username"] = "p5_" + id + "_" + strings.Repeat("x", 75-len("p5_")-len(id)-1)
			b, _ := json.Marshal(v)
			if _, err := env.SMClient.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: &arn, SecretString: aws.String(string(b))}); err != nil {
				t.Fatal(err)
			}
			return arn, "", ""
		}, wantErr: faults.NameInput, inCause: "(81 characters), longer than the 80 characters of MariaDB's limit"},
		{name: "engine postgres at the MariaDB port", secret: postgresSecret(func(raw string) string {
			return strings.Replace(raw, fmt.Sprintf(`"port":%d`, env.Postgres.Port), fmt.Sprintf(`"port":%d`, env.MariaDB.Port), 1)
		}), wantErr: faults.NameInput, inCause: "speaks the MySQL protocol, not PostgreSQL; check the secret's engine and port"},
		{name: "engine mariadb at the PostgreSQL port", secret: func(ctx context.Context, t *testing.T, id string) (string, string, string) {
			v, err := env.MariaDBUser(ctx, "p5_"+id)
			if err != nil {
				t.Fatal(err)
			}
			v["port"] = env.Postgres.Port
			b, _ := json.Marshal(v)
			arn, err := env.CreateSecret(ctx, "it/point5/"+id, string(b), "issue 13 point 5")
			if err != nil {
				t.Fatal(err)
			}
			return arn, "", ""
		}, wantErr: faults.NameInput, inCause: "speaks the PostgreSQL protocol, not MySQL; check the secret's engine and port"},
		{name: "fullwidth password set through SQL", secret: func(ctx context.Context, t *testing.T, id string) (string, string, string) {
			role := "p5_" + id
			v, err := env.PostgresRole(ctx, role)
			if err != nil {
				t.Fatal(err)
			}
			// PostgreSQL stores the SASLprep form ("Fullwidth-..."), as
			// psql and libpq send it.
			pw := "Ｆｕｌｌｗｉｄｔｈ-" + id
			if err := env.SetRolePassword(ctx, role, pw); err != nil {
				t.Fatal(err)
			}
			v["password"] = pw
			b, _ := json.Marshal(v)
			arn, err := env.CreateSecret(ctx, "it/point5/"+id, string(b), "issue 13 point 5")
			if err != nil {
				t.Fatal(err)
			}
			return arn, role, pw
		}},
		{name: "bytes after the JSON object", secret: postgresSecret(func(raw string) string { return raw + " x" }),
			wantErr: faults.NameInput, inCause: "has data after the JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { runPoint5(t, tt) })
	}
}

func runPoint5(t *testing.T, tt point5) {
	withFaults(t)
	want := tt.wantErr
	if want == "" {
		want = "SUCCEEDED"
	}
	// One report row per case, with the errorType it must end in.
	violations := cell(t, "point-5 errors: "+tt.name+" → "+want)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	id := uuid.NewString()[:8]
	arn, role, pw := tt.secret(ctx, t, id)
	trackSecret(arn)
	input := map[string]any{}
	if tt.input != nil {
		input = tt.input(ctx, t, arn)
	}
	input["SecretId"] = arn
	before, err := env.Stages(ctx, arn)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	x, err := env.Execute(ctx, "p5-"+id, input)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s after %v: %s: %s", x.Status, time.Since(start).Round(time.Millisecond), x.Error, x.Cause)
	if tt.wantErr == "" {
		if x.Status != "SUCCEEDED" {
			t.Fatalf("ended %s %s: %s, want SUCCEEDED\n%s", x.Status, x.Error, x.Cause, x.Timeline())
		}
		for _, v := range env.CheckInvariants(ctx, arn, x) {
			violations.violations++
			t.Error(v)
		}
		return
	}
	if x.Status != "FAILED" || x.Error != tt.wantErr {
		t.Errorf("ended %s %s, want FAILED %s\n%s", x.Status, x.Error, tt.wantErr, x.Timeline())
	}
	// The cause is the Lambda error payload; its message is what a person
	// reads.
	var payload struct{ ErrorMessage string }
	if json.Unmarshal([]byte(x.Cause), &payload) != nil || payload.ErrorMessage == "" {
		t.Errorf("the cause %q is not a Lambda error payload", x.Cause)
	}
	if !strings.Contains(payload.ErrorMessage, tt.inCause) {
		t.Errorf("the cause %q does not say %q", x.Cause, tt.inCause)
	}
	// Refused at once: the state machine retried nothing.
	for _, ev := range x.Events {
		if ev.Type == "StateRetried" {
			t.Errorf("%s was retried (%s); a refusal must not be\n%s", ev.State, ev.Error, x.Timeline())
			break
		}
	}
	after, err := env.Stages(ctx, arn)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Errorf("the secret changed: %v → %v", before, after)
	}
	if role != "" {
		if err := env.CanLoginAs(ctx, role, pw); err != nil {
			t.Errorf("the role's password changed: %v", err)
		}
		if strings.Contains(x.Cause, pw) {
			violations.violations++
			t.Errorf("the error holds the password")
		}
	}
	if lease, leased, _ := env.Ledger.Get(ctx, arn); leased && lease.Holder != "" {
		t.Errorf("the lease is still held by %s (%s)", lease.Holder, lease.State)
	}
}
