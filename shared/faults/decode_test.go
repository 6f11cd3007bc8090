package faults

import (
	"errors"
	"strings"
	"testing"
)

type decodeTarget struct {
	SecretId    string
	Rollback    bool
	BakeSeconds int
	BakeAlarms  []string
	Nested      struct{ Port uint16 }
}

func (d *decodeTarget) UnmarshalJSON(b []byte) error {
	type plain decodeTarget
	return DecodeInput(b, (*plain)(d), "acquire", "the execution input")
}

func TestDecodeInput(t *testing.T) {
	tests := []struct {
		name, in, secret string
		says             []string // nil: decodes
	}{
		{"valid", `{"SecretId":"app/db","Rollback":true,"BakeSeconds":10,"BakeAlarms":["a"]}`, "", nil},
		{"quoted boolean", `{"SecretId":"app/db","Rollback":"false"}`, "app/db",
			[]string{`field "Rollback" of the execution input must be a JSON boolean (true or false, unquoted), not a string`}},
		{"quoted number", `{"SecretId":"app/db","BakeSeconds":"10"}`, "app/db",
			[]string{`field "BakeSeconds"`, "must be a whole JSON number (unquoted), not a string"}},
		{"fraction", `{"BakeSeconds":1.5}`, "", []string{`field "BakeSeconds"`, "whole JSON number", "not a number"}},
		{"array for a string", `{"SecretId":["a","b"]}`, "", []string{`field "SecretId"`, "must be a JSON string, not an array"}},
		{"number in a string array", `{"SecretId":"s","BakeAlarms":["a",1]}`, "s", []string{`BakeAlarms`, "must be a JSON string, not a number"}},
		{"string for an array", `{"BakeAlarms":"a"}`, "", []string{`field "BakeAlarms"`, "a JSON array of strings, not a string"}},
		{"nested", `{"Nested":{"Port":-1}}`, "", []string{`field "Nested.Port"`, "not negative"}},
		{"not an object", `["app/db"]`, "", []string{"the execution input must be a JSON object, not an array"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d decodeTarget
			err := (&d).UnmarshalJSON([]byte(tt.in))
			if tt.says == nil {
				if err != nil || !d.Rollback || d.BakeSeconds != 10 {
					t.Fatalf("decode = %v, %+v", err, d)
				}
				return
			}
			var ie *InputError
			if !errors.As(err, &ie) || Name(err) != NameInput {
				t.Fatalf("err = %T %v, want *InputError", err, err)
			}
			if ie.SecretID != tt.secret || ie.Step != "acquire" {
				t.Errorf("secret %q step %q, want %q acquire", ie.SecretID, ie.Step, tt.secret)
			}
			for _, s := range tt.says {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("%q does not say %q", err, s)
				}
			}
			// The value is never quoted (a value could be anything).
			if strings.Contains(err.Error(), "1.5") || strings.Contains(err.Error(), `"10"`) {
				t.Errorf("%q quotes the value", err)
			}
		})
	}
}
