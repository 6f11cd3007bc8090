package target

import (
	"github.com/secretsaga/secretsaga/shared/dbtls"
	"github.com/secretsaga/secretsaga/shared/secret"
)

// AsTLSError returns err as a *TLSError when it is TLS failing for a login
// to addr with the credential's TLS setting c.TLS, whose effective mode was
// mode; ok is false for any other error.
func AsTLSError(engine, addr string, c Credential, mode secret.TLSMode, err error) (*TLSError, bool) {
	if mode != secret.TLSVerifyFull && mode != secret.TLSRequire {
		// Without a mode that insists on TLS the driver falls back to plain
		// TCP when TLS fails (libpq's sslmode=prefer, MySQL's preferred),
		// so the error ends with the plain login's answer, a refused
		// password say, even though its text also tells of the TLS attempt
		// ("server refused TLS connection"): that answer is the one that
		// counts.
		return nil, false
	}
	reason, ok := dbtls.Failure(err)
	if !ok {
		return nil, false
	}
	return &TLSError{Engine: engine, Addr: addr, Mode: mode, Default: c.TLS == secret.TLSDefault && mode != secret.TLSDefault,
		Reason: reason, Fix: dbtls.Fix(mode)}, true
}
