package secret

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
)

// MaxValueBytes is Secrets Manager's limit on a SecretString.
const MaxValueBytes = 65536

// Known fields of the AWS database-secret structure.
const (
	FieldEngine    = "engine"
	FieldHost      = "host"
	FieldPort      = "port"
	FieldUsername  = "username"
	FieldPassword  = "password"
	FieldDBName    = "dbname"
	FieldMasterARN = "masterarn"
	// FieldTLS is how the rotation (and shared/client) connects to the
	// target: one of the TLSMode values. Absent means the default for the
	// host (see TLSMode).
	FieldTLS = "tls"
)

// TLSMode is the secret's "tls" field. The names are libpq's sslmode
// values, which PostgreSQL and RDS users already know.
type TLSMode string

// TLS modes. TLSDefault (the field is absent) means verify-full for an AWS
// managed endpoint (RDS, Aurora, ElastiCache) and, for any other host, what
// each engine did before the field existed (PostgreSQL sslmode=prefer,
// MySQL tls=preferred, Redis plain TCP), so existing secrets keep working.
const (
	TLSDefault TLSMode = ""
	// TLSVerifyFull: TLS, the server's chain verified against the CA bundle
	// and its certificate checked to name the secret's host.
	TLSVerifyFull TLSMode = "verify-full"
	// TLSRequire: TLS without any certificate check. It encrypts, but a
	// machine in the path can impersonate the server and read the password.
	TLSRequire TLSMode = "require"
	// TLSDisable: plain TCP, no TLS.
	TLSDisable TLSMode = "disable"
)

// TLSModes are the values the "tls" field accepts.
var TLSModes = []TLSMode{TLSVerifyFull, TLSRequire, TLSDisable}

// Value is a parsed secret. It keeps the original JSON document byte for
// byte, with where each top-level member's value lies in it, so fields this
// program does not know, their order and all whitespace survive a rotation:
// only the bytes of the password's value (or, for alternating users, the
// username's) are ever replaced.
type Value struct {
	Engine    string
	Host      string
	Port      int
	Username  string
	Password  Password
	DBName    string
	MasterARN string
	TLS       TLSMode

	doc     string   // the document, exactly as stored but for replaced values
	members []member // top-level members in document order
	end     int      // offset in doc just past the last member's value, or of the closing brace when there is none
}

// member locates one top-level member's value in doc.
type member struct {
	key        string
	start, end int // doc[start:end] is the value's exact JSON text
}

// FieldError says which field of a secret is wrong and how to fix it. Its
// text never contains a field's value.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return "secret value: " + e.Reason
	}
	return fmt.Sprintf("secret value field %q: %s", e.Field, e.Reason)
}

// Parse reads a SecretString. Errors are *FieldError and never quote the input.
func Parse(s string) (*Value, error) {
	if len(s) > MaxValueBytes {
		return nil, &FieldError{Reason: fmt.Sprintf("is %d bytes; Secrets Manager allows at most %d", len(s), MaxValueBytes)}
	}
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return nil, &FieldError{Reason: "is not a JSON object; store the database-secret structure {\"engine\",\"host\",\"port\",\"username\",\"password\",\"dbname\"}"}
	}
	v := &Value{doc: s}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, &FieldError{Reason: "is not valid JSON (" + syntaxOnly(err) + ")"}
		}
		key := tok.(string) // object keys are always strings once Token succeeded
		if seen[key] {
			return nil, &FieldError{Field: key, Reason: "appears twice; keep one"}
		}
		seen[key] = true
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, &FieldError{Field: key, Reason: "is not valid JSON (" + syntaxOnly(err) + ")"}
		}
		// The decoder has just consumed the value, which RawMessage holds
		// verbatim, so it ends at the input offset.
		end := int(dec.InputOffset())
		v.members = append(v.members, member{key: key, start: end - len(raw), end: end})
		v.end = end
		if err := v.setKnown(key, raw); err != nil {
			return nil, err
		}
	}
	if _, err := dec.Token(); err != nil { // closing brace
		return nil, &FieldError{Reason: "is not valid JSON (" + syntaxOnly(err) + ")"}
	}
	if len(v.members) == 0 {
		v.end = int(dec.InputOffset()) - 1
	}
	// Only JSON whitespace may follow the object: anything else (a second
	// object, a stray character) would be dropped silently by a rewrite.
	if rest := strings.TrimLeft(s[dec.InputOffset():], " \t\r\n"); rest != "" {
		return nil, &FieldError{Reason: fmt.Sprintf("has data after the JSON object (at byte %d); store exactly one object and nothing after it", len(s)-len(rest))}
	}
	return v, nil
}

// syntaxOnly keeps the position of a JSON error but drops any quoted input.
func syntaxOnly(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return "syntax error at byte " + strconv.FormatInt(se.Offset, 10)
	}
	return "unexpected end or token"
}

func (v *Value) setKnown(key string, raw json.RawMessage) error {
	str := func(dst *string) error {
		if err := json.Unmarshal(raw, dst); err != nil {
			return &FieldError{Field: key, Reason: "must be a JSON string"}
		}
		return nil
	}
	switch key {
	case FieldEngine:
		return str(&v.Engine)
	case FieldHost:
		return str(&v.Host)
	case FieldUsername:
		return str(&v.Username)
	case FieldDBName:
		return str(&v.DBName)
	case FieldMasterARN:
		return str(&v.MasterARN)
	case FieldTLS:
		var m string
		if json.Unmarshal(raw, &m) != nil || !slices.Contains(TLSModes, TLSMode(m)) {
			// The value is not quoted back: it could be anything,
			// a misplaced password included.
			return &FieldError{Field: key, Reason: `must be one of "verify-full" (verify the server's certificate and host name), "require" (encrypt without verifying) or "disable" (plain TCP); remove the field for the default (verify-full for RDS, Aurora and ElastiCache endpoints)`}
		}
		v.TLS = TLSMode(m)
	case FieldPassword:
		var p string
		if err := json.Unmarshal(raw, &p); err != nil {
			return &FieldError{Field: key, Reason: "must be a JSON string"}
		}
		v.Password = NewPassword(p)
	case FieldPort:
		// AWS's own templates store the port as a number, some clients as a string.
		var n json.Number
		if err := json.Unmarshal(raw, &n); err != nil {
			var s string
			if json.Unmarshal(raw, &s) != nil {
				return &FieldError{Field: key, Reason: "must be a number between 1 and 65535"}
			}
			n = json.Number(s)
		}
		p, err := strconv.Atoi(n.String())
		if err != nil || p < 1 || p > 65535 {
			return &FieldError{Field: key, Reason: "must be a whole number between 1 and 65535"}
		}
		v.Port = p
	}
	return nil
}

// Validate checks the fields every rotation needs. defaultPort fills a
// missing port (engines have well-known ones).
func (v *Value) Validate(defaultPort int) error {
	for _, f := range []struct{ name, val string }{
		{FieldEngine, v.Engine}, {FieldHost, v.Host}, {FieldUsername, v.Username},
	} {
		if strings.TrimSpace(f.val) == "" {
			return &FieldError{Field: f.name, Reason: "is missing or empty; add it to the secret value"}
		}
	}
	if v.Password.IsZero() {
		return &FieldError{Field: FieldPassword, Reason: "is missing or empty; put the credential that currently works into the secret"}
	}
	if v.Port == 0 {
		if defaultPort == 0 {
			return &FieldError{Field: FieldPort, Reason: "is missing; add the port"}
		}
		v.Port = defaultPort
	}
	return nil
}

// WithPassword returns a copy whose password member is p; every other member
// keeps its exact bytes and position.
func (v *Value) WithPassword(p Password) *Value {
	n := v.with(FieldPassword, p.Reveal())
	n.Password = p
	return n
}

// WithUsername returns a copy whose username member is u (the
// alternating-users strategy switches between two users).
func (v *Value) WithUsername(u string) *Value {
	n := v.with(FieldUsername, u)
	n.Username = u
	return n
}

// with replaces the bytes of key's value in the document (or, when the
// document has no such member, inserts one after the last member) and moves
// the offsets after it; every other byte stays as it was.
func (v *Value) with(key, value string) *Value {
	n := *v
	enc, _ := json.Marshal(value) // marshalling a string cannot fail
	n.members = slices.Clone(v.members)
	i := slices.IndexFunc(n.members, func(m member) bool { return m.key == key })
	if i < 0 {
		k, _ := json.Marshal(key)
		prefix := string(k) + ":"
		if len(n.members) > 0 {
			prefix = "," + prefix
		}
		start := n.end + len(prefix)
		n.doc = n.doc[:n.end] + prefix + string(enc) + n.doc[n.end:]
		n.members = append(n.members, member{key: key, start: start, end: start + len(enc)})
		n.end = start + len(enc)
		return &n
	}
	m := n.members[i]
	n.doc = n.doc[:m.start] + string(enc) + n.doc[m.end:]
	shift := len(enc) - (m.end - m.start)
	n.members[i].end += shift
	for j := i + 1; j < len(n.members); j++ {
		n.members[j].start += shift
		n.members[j].end += shift
	}
	n.end += shift // the last member's end, at or after this one's
	return &n
}

// CloneSuffix marks the alternating strategy's second user, as in AWS's
// rotation templates.
const CloneSuffix = "_clone"

// AlternateUsername is the other user of the alternating strategy: the
// clone of a user, or the user of a clone.
func AlternateUsername(u string) string {
	if base, ok := strings.CutSuffix(u, CloneSuffix); ok && base != "" {
		return base
	}
	return u + CloneSuffix
}

// SameServer reports whether two values point at the same server and
// database (the users may differ: the alternating strategy).
func (v *Value) SameServer(o *Value) bool {
	return v.Engine == o.Engine && v.Host == o.Host && v.Port == o.Port && v.DBName == o.DBName
}

// SecretString renders the value for Secrets Manager: the stored document
// with only the replaced values changed. This is the one place that hands
// out the plaintext password as text.
func (v *Value) SecretString() string { return v.doc }

// SameTarget reports whether two values point at the same account on the same
// server; a rotation must never switch a secret to a different target.
func (v *Value) SameTarget(o *Value) bool {
	return v.Engine == o.Engine && v.Host == o.Host && v.Port == o.Port &&
		v.Username == o.Username && v.DBName == o.DBName
}

// String, Format, LogValue and MarshalJSON never print the password, and they
// are on the value receiver so that %+v of a Value (which would otherwise dump
// the raw members) is covered too.
func (v Value) String() string {
	return fmt.Sprintf("{engine:%s host:%s port:%d username:%s dbname:%s password:%s}",
		v.Engine, v.Host, v.Port, v.Username, v.DBName, Redacted)
}

func (v Value) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(v.String())) }
func (v Value) LogValue() slog.Value       { return slog.StringValue(v.String()) }
func (v Value) MarshalJSON() ([]byte, error) {
	return json.Marshal(v.String())
}
