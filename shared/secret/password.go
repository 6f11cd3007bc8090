// Package secret holds the secret value format (the AWS database-secret JSON
// structure) and a password type that cannot leak by accident.
package secret

import (
	"fmt"
	"log/slog"
)

// Redacted is what a Password prints as, everywhere.
const Redacted = "[REDACTED]"

// Password is a credential. Every way Go formats, logs or marshals a value is
// overridden to print Redacted, so passing one to a logger, an error, an event
// or a ledger item cannot leak it; Reveal is the one explicit way out, for the
// code that hands it to a database or to Secrets Manager.
type Password struct{ v string }

// NewPassword wraps a plaintext credential.
func NewPassword(plain string) Password { return Password{v: plain} }

// Reveal returns the plaintext. Call it only at the boundary that needs it.
func (p Password) Reveal() string { return p.v }

// IsZero reports whether the password is empty.
func (p Password) IsZero() bool { return p.v == "" }

// Equal compares two passwords without revealing either to the caller.
func (p Password) Equal(o Password) bool { return p.v == o.v }

func (Password) String() string                  { return Redacted }
func (Password) GoString() string                { return "secret.Password{" + Redacted + "}" }
func (Password) LogValue() slog.Value            { return slog.StringValue(Redacted) }
func (Password) MarshalJSON() ([]byte, error)    { return []byte(`"` + Redacted + `"`), nil }
func (Password) MarshalText() ([]byte, error)    { return []byte(Redacted), nil }
func (p Password) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte(Redacted)) }
