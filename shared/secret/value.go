package secret

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
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
)

// Value is a parsed secret. It keeps every top-level member of the original
// JSON document in order with its exact bytes, so fields this program does not
// know (and their formatting) survive a rotation byte-for-byte: only the
// password member is ever rewritten.
type Value struct {
	Engine    string
	Host      string
	Port      int
	Username  string
	Password  Password
	DBName    string
	MasterARN string

	members []member // the document as it was, in order
}

type member struct {
	key string
	raw json.RawMessage // exact bytes from the input
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
	v := &Value{}
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
		v.members = append(v.members, member{key: key, raw: raw})
		if err := v.setKnown(key, raw); err != nil {
			return nil, err
		}
	}
	if _, err := dec.Token(); err != nil { // closing brace
		return nil, &FieldError{Reason: "is not valid JSON (" + syntaxOnly(err) + ")"}
	}
	if _, err := dec.Token(); err == nil {
		return nil, &FieldError{Reason: "has data after the JSON object; store exactly one object"}
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

func (v *Value) with(key, value string) *Value {
	n := *v
	enc, _ := json.Marshal(value) // marshalling a string cannot fail
	n.members = make([]member, 0, len(v.members)+1)
	replaced := false
	for _, m := range v.members {
		if m.key == key {
			m.raw = enc
			replaced = true
		}
		n.members = append(n.members, m)
	}
	if !replaced {
		n.members = append(n.members, member{key: key, raw: enc})
	}
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

// SecretString renders the value for Secrets Manager. This is the one place
// that writes the plaintext password into bytes.
func (v *Value) SecretString() string {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range v.members {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(m.key)
		b.Write(k)
		b.WriteByte(':')
		b.Write(m.raw)
	}
	b.WriteByte('}')
	return b.String()
}

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
