package secret

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
)

const plain = "hunter2-Very-Secret"

func TestParseValid(t *testing.T) {
	tests := []struct {
		name, in string
		port     int
	}{
		{"number port", `{"engine":"postgres","host":"db","port":5432,"username":"app","password":"` + plain + `","dbname":"d"}`, 5432},
		{"string port", `{"engine":"postgres","host":"db","port":"6432","username":"app","password":"x"}`, 6432},
		{"no port uses default", `{"engine":"postgres","host":"db","username":"app","password":"x"}`, 5432},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := Parse(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if err := v.Validate(5432); err != nil {
				t.Fatal(err)
			}
			if v.Port != tt.port {
				t.Fatalf("port = %d, want %d", v.Port, tt.port)
			}
		})
	}
}

func TestParseInvalid(t *testing.T) {
	tests := []struct{ name, in, field string }{
		{"truncated", `{"engine":`, FieldEngine},
		{"array", `[1,2]`, ""},
		{"trailing", `{"engine":"postgres"} {}`, ""},
		{"trailing character", `{"engine":"postgres"} x`, ""},
		{"trailing brace", `{"engine":"postgres"}}`, ""},
		{"trailing after whitespace", "{}\n\t x", ""},
		{"port text", `{"port":"abc"}`, FieldPort},
		{"port range", `{"port":70000}`, FieldPort},
		{"password number", `{"password":12}`, FieldPassword},
		{"duplicate", `{"host":"a","host":"b"}`, FieldHost},
		{"oversized", `{"x":"` + strings.Repeat("a", MaxValueBytes) + `"}`, ""},
		{"tls unknown mode", `{"tls":"prefer"}`, FieldTLS},
		{"tls upper case", `{"tls":"VERIFY-FULL"}`, FieldTLS},
		{"tls empty", `{"tls":""}`, FieldTLS},
		{"tls boolean", `{"tls":true}`, FieldTLS},
		{"tls object", `{"tls":{"mode":"require"}}`, FieldTLS},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.in)
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("err = %v, want *FieldError", err)
			}
			if fe.Field != tt.field {
				t.Fatalf("field = %q, want %q (%v)", fe.Field, tt.field, err)
			}
		})
	}
}

// The "tls" field takes exactly the three mode names; a wrong one is a
// FieldError that names the field and the accepted values and never
// quotes what was there.
func TestParseTLS(t *testing.T) {
	tests := []struct {
		in   string
		want TLSMode
		bad  bool
	}{
		{`{"host":"h"}`, TLSDefault, false},
		{`{"tls":"verify-full"}`, TLSVerifyFull, false},
		{`{"tls":"require"}`, TLSRequire, false},
		{`{"tls":"disable"}`, TLSDisable, false},
		{`{"tls":"verify-ca"}`, "", true},
		{`{"tls":" require"}`, "", true},
		{`{"tls":"` + plain + `"}`, "", true},
		{`{"tls":null}`, "", true},
		{`{"tls":1}`, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			v, err := Parse(tt.in)
			if tt.bad {
				var fe *FieldError
				if !errors.As(err, &fe) || fe.Field != FieldTLS {
					t.Fatalf("err = %v, want a FieldError on %q", err, FieldTLS)
				}
				for _, m := range TLSModes {
					if !strings.Contains(err.Error(), string(m)) {
						t.Errorf("error %q does not name the mode %q", err, m)
					}
				}
				if strings.Contains(err.Error(), plain) {
					t.Errorf("error quotes the value: %q", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if v.TLS != tt.want {
				t.Fatalf("TLS = %q, want %q", v.TLS, tt.want)
			}
			if got, _ := Parse(v.WithPassword(NewPassword("x")).SecretString()); got.TLS != tt.want {
				t.Fatalf("after a password rewrite TLS = %q, want %q", got.TLS, tt.want)
			}
		})
	}
}

func TestValidateMissing(t *testing.T) {
	for _, field := range []string{FieldEngine, FieldHost, FieldUsername, FieldPassword} {
		t.Run(field, func(t *testing.T) {
			m := map[string]any{"engine": "postgres", "host": "h", "username": "u", "password": "p"}
			delete(m, field)
			b, _ := json.Marshal(m)
			v, err := Parse(string(b))
			if err != nil {
				t.Fatal(err)
			}
			var fe *FieldError
			if err := v.Validate(5432); !errors.As(err, &fe) || fe.Field != field {
				t.Fatalf("Validate = %v, want FieldError on %s", err, field)
			}
		})
	}
}

func TestWithPasswordPreservesOtherMembers(t *testing.T) {
	in := `{"engine":"postgres", "extra":{"b": [1, 2.50]},"password":"old","host":"h","username":"u","zz":null}`
	v, err := Parse(in)
	if err != nil {
		t.Fatal(err)
	}
	out := v.WithPassword(NewPassword(`n"e\w`)).SecretString()
	want := `{"engine":"postgres", "extra":{"b": [1, 2.50]},"password":"n\"e\\w","host":"h","username":"u","zz":null}`
	if out != want {
		t.Fatalf("got  %s\nwant %s", out, want)
	}
	if v.Password.Reveal() != "old" {
		t.Fatal("WithPassword changed the original")
	}
	again, err := Parse(out)
	if err != nil || again.Password.Reveal() != `n"e\w` {
		t.Fatalf("round trip: %v", err)
	}
}

// A rotation rewrites only the password's value: indentation, spacing, key
// spelling (escapes included) and trailing whitespace are the user's and
// survive byte for byte.
func TestRewriteKeepsFormatting(t *testing.T) {
	tests := []struct{ name, in, user, want string }{
		{"pretty", "{\n  \"engine\" : \"postgres\",\n  \"password\" :  \"old\" ,\n  \"username\": \"u\"\n}\n", "",
			"{\n  \"engine\" : \"postgres\",\n  \"password\" :  \"NEW\" ,\n  \"username\": \"u\"\n}\n"},
		{"escaped key", `{"p\u0061ssword":"old","host":"h"}`, "", `{"p\u0061ssword":"NEW","host":"h"}`},
		{"no password member", "{\"host\":\"h\" \n}", "", "{\"host\":\"h\",\"password\":\"NEW\" \n}"},
		{"empty object", `{ }`, "", `{ "password":"NEW"}`},
		{"username too", "{\"username\": \"u\",\t\"password\":\"longer-old\", \"x\":1}", "u_clone",
			"{\"username\": \"u_clone\",\t\"password\":\"NEW\", \"x\":1}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := Parse(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if got := v.SecretString(); got != tt.in {
				t.Fatalf("unchanged value renders as %q, want the input %q", got, tt.in)
			}
			if tt.user != "" {
				v = v.WithUsername(tt.user)
			}
			got := v.WithPassword(NewPassword("NEW")).SecretString()
			if got != tt.want {
				t.Fatalf("got  %q\nwant %q", got, tt.want)
			}
			// The rewritten document's offsets must still be right: a
			// second rewrite of the same value replaces the same bytes.
			again := v.WithPassword(NewPassword("NEW")).WithPassword(NewPassword("NEW"))
			if again.SecretString() != tt.want {
				t.Fatalf("second rewrite gives %q", again.SecretString())
			}
		})
	}
}

func TestNothingLeaks(t *testing.T) {
	v, err := Parse(`{"engine":"postgres","host":"h","username":"u","password":"` + plain + `"}`)
	if err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	log.Info("x", "value", v, "deref", *v, "password", v.Password)
	j1, _ := json.Marshal(v)
	j2, _ := json.Marshal(struct{ P Password }{v.Password})
	outputs := []string{
		fmt.Sprint(v), fmt.Sprintf("%+v %#v %v %s %q", *v, *v, v.Password, v.Password, v.Password),
		fmt.Sprintf("%#v", v.Password), string(j1), string(j2), logs.String(),
		fmt.Errorf("wrapped: %v", v).Error(),
	}
	for i, out := range outputs {
		if strings.Contains(out, plain) {
			t.Fatalf("output %d leaks the password: %s", i, out)
		}
	}
	if _, err := Parse(`{"password":"` + plain + `",`); err != nil && strings.Contains(err.Error(), plain) {
		t.Fatal("parse error leaks the password")
	}
}

func FuzzParse(f *testing.F) {
	f.Add(`{"engine":"postgres","host":"h","port":5432,"username":"u","password":"p","dbname":"d","x":[1]}`)
	f.Add(`{"port":"12","password":"\u00e9"}`)
	f.Add(`{}`)
	f.Add(`{"a":`)
	f.Add("{\n  \"password\" : \"p\" ,\n  \"host\":\"h\"\n}\n")
	f.Add(`{"p\u0061ssword":"x"} `)
	f.Add(`{"host":"h"} x`)
	f.Add(`{"engine":"mysql","host":"x.rds.amazonaws.com","tls":"verify-full","password":"p"}`)
	f.Add(`{"tls":"require","tls":"disable"}`)
	f.Fuzz(func(t *testing.T, in string) {
		v, err := Parse(in)
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error of type %T", err)
			}
			return
		}
		// Rewriting the password must give a document that parses again with
		// every other known field unchanged.
		out, err := Parse(v.WithPassword(NewPassword("fuzz-\"pw\\")).SecretString())
		if err != nil {
			t.Fatalf("rewritten value does not parse: %v", err)
		}
		if out.Password.Reveal() != "fuzz-\"pw\\" || !out.SameTarget(v) || out.MasterARN != v.MasterARN || out.TLS != v.TLS {
			t.Fatal("rewrite changed more than the password")
		}
		// Byte for byte: an untouched value renders as its input, and a
		// rewrite changes only the password's value (or adds the member
		// after the last one).
		if v.SecretString() != in {
			t.Fatal("an unchanged value does not render as its input")
		}
		const pw = "fuzz-pw"
		got := v.WithPassword(NewPassword(pw)).SecretString()
		want := ""
		if i := slices.IndexFunc(v.members, func(m member) bool { return m.key == FieldPassword }); i >= 0 {
			m := v.members[i]
			want = in[:m.start] + `"` + pw + `"` + in[m.end:]
		} else {
			sep := ","
			if len(v.members) == 0 {
				sep = ""
			}
			want = in[:v.end] + sep + `"password":"` + pw + `"` + in[v.end:]
			if !strings.HasSuffix(strings.TrimRight(in[v.end:], " \t\r\n"), "}") {
				t.Fatal("the insertion point is not inside the object")
			}
		}
		if got != want {
			t.Fatalf("rewrite changed more than the password:\n in  %q\n got %q", in, got)
		}
	})
}
