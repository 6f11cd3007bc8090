package faults

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
)

// DecodeInput decodes a handler's JSON input into v, for the UnmarshalJSON
// of the handler's input type (v must be that type's plain alias, or it
// would call itself). aws-lambda-go decodes the event before the handler
// runs and reports a decoding error's own type as errorType
// ("UnmarshalTypeError"), which no Retry or Catch of the state machine
// names; through here, a field of the wrong JSON type is an InputError that
// names the field, the type it needs and where to fix it (source, e.g.
// "the execution input"). The field's value is never quoted.
func DecodeInput(data []byte, v any, step, source string) error {
	err := json.Unmarshal(data, v)
	if err == nil {
		return nil
	}
	if f := asFault(err); f != nil {
		// A nested input type said it already.
		return f
	}
	d := Detail{SecretID: secretIDOf(data), Step: step}
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &te) && te.Field == "":
		d.Reason = fmt.Sprintf("%s must be %s, not %s", source, jsonKind(te.Type), valueKind(te.Value))
	case errors.As(err, &te):
		d.Reason = fmt.Sprintf("field %q of %s must be %s, not %s; correct %s", te.Field, source, jsonKind(te.Type), valueKind(te.Value), source)
	default:
		// Syntax errors cannot reach a handler (the runtime reads one whole
		// JSON value first); keep the decoder's text, which has no value.
		d.Reason = source + " is not valid JSON"
		d.Err = err
	}
	return &InputError{d}
}

// jsonKind names the JSON type that decodes into t.
func jsonKind(t reflect.Type) string {
	if t == nil {
		return "another JSON type"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Bool:
		return "a JSON boolean (true or false, unquoted)"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "a whole JSON number (unquoted)"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole JSON number, not negative (unquoted)"
	case reflect.Float32, reflect.Float64:
		return "a JSON number (unquoted)"
	case reflect.String:
		return "a JSON string"
	case reflect.Slice, reflect.Array:
		return "a JSON array of " + plural(jsonKind(t.Elem()))
	case reflect.Struct, reflect.Map:
		return "a JSON object"
	}
	return "another JSON type"
}

func plural(kind string) string {
	switch kind {
	case "a JSON string":
		return "strings"
	case "a JSON object":
		return "objects"
	}
	return "values that are each " + kind
}

// valueKind is the JSON type of the value found; encoding/json appends a
// number's text ("number 1.5"), which is dropped: only the kind is said.
func valueKind(v string) string {
	for i := range len(v) {
		if v[i] == ' ' {
			v = v[:i]
			break
		}
	}
	switch v {
	case "array", "object", "number", "string", "bool":
		if v == "bool" {
			return "a boolean"
		}
		if v == "array" || v == "object" {
			return "an " + v
		}
		return "a " + v
	}
	return "a value of another type"
}

// secretIDOf finds the secret an input names, for the error: SecretId or
// SecretArn at the top, or in Rotation (a close step's input); "" when
// none is a string.
func secretIDOf(data []byte) string {
	var in struct {
		SecretArn, SecretId any
		Rotation            struct{ SecretArn, SecretId any }
	}
	_ = json.Unmarshal(data, &in) // best effort: the input is wrong already
	for _, id := range []any{in.SecretArn, in.SecretId, in.Rotation.SecretArn, in.Rotation.SecretId} {
		if s, ok := id.(string); ok && s != "" {
			return s
		}
	}
	return ""
}
