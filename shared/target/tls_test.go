package target_test

import (
	"crypto/x509"
	"errors"
	"fmt"
	"testing"

	"github.com/secretsaga/secretsaga/shared/secret"
	"github.com/secretsaga/secretsaga/shared/target"
)

// TestAsTLSError: a TLS failure is the error only in a mode that insists
// on TLS. Without one the driver falls back to plain TCP, and its error
// (pgx's, flattened to text) tells of both attempts: the plain login's
// refusal is what counts, or a rotation's set, which expects "refused" for
// the new password before it logs in with the current one, would stop
// with an InputError (make soak met this on every PostgreSQL rotation).
func TestAsTLSError(t *testing.T) {
	preferThenRefused := errors.New(`failed to connect to ` + "`user=app database=postgres`" + `: 127.0.0.1:5432 (127.0.0.1): server refused TLS connection
	127.0.0.1:5432 (127.0.0.1): failed SASL auth: FATAL: password authentication failed for user "app" (SQLSTATE 28P01)`)
	untrusted := fmt.Errorf("tls handshake: %w", x509.UnknownAuthorityError{})
	for _, tc := range []struct {
		name string
		mode secret.TLSMode
		err  error
		want bool
	}{
		{"default mode, TLS refused then password refused", secret.TLSDefault, preferThenRefused, false},
		{"disable", secret.TLSDisable, preferThenRefused, false},
		{"require, TLS refused", secret.TLSRequire, preferThenRefused, true},
		{"verify-full, TLS refused", secret.TLSVerifyFull, preferThenRefused, true},
		{"verify-full, untrusted certificate", secret.TLSVerifyFull, untrusted, true},
		{"verify-full, a refused password", secret.TLSVerifyFull, errors.New(`FATAL: password authentication failed for user "app" (SQLSTATE 28P01)`), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			te, ok := target.AsTLSError("postgres", "127.0.0.1:5432", target.Credential{Username: "app"}, tc.mode, tc.err)
			if ok != tc.want {
				t.Fatalf("AsTLSError ok = %v (%v), want %v", ok, te, tc.want)
			}
		})
	}
}
