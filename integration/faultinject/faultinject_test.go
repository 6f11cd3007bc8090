package faultinject

import (
	"context"
	"errors"
	"testing"
)

func TestRules(t *testing.T) {
	errX := errors.New("x")
	tests := []struct {
		name       string
		rule       Rule
		wantErr    []bool // per call
		wantEffect []bool
	}{
		{"before first", Rule{Call: "c", Nth: 1, Phase: Before, Err: errX}, []bool{true, false}, []bool{false, true}},
		{"after second", Rule{Call: "c", Nth: 2, Phase: After, Err: errX}, []bool{false, true, false}, []bool{true, true, true}},
		{"other function", Rule{Function: "g", Call: "c", Nth: 1, Err: errX}, []bool{false}, []bool{true}},
		{"every call twice", Rule{Call: "c", Times: 2, Err: errX}, []bool{true, true, false}, []bool{false, false, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var in Injector
			in.Add(tt.rule)
			ctx := WithFunction(context.Background(), "f")
			for i := range tt.wantErr {
				effect := false
				err := in.Do(ctx, "c", func() error { effect = true; return nil })
				if (err != nil) != tt.wantErr[i] || effect != tt.wantEffect[i] {
					t.Fatalf("call %d: err=%v effect=%v", i, err, effect)
				}
				if err != nil && !errors.Is(err, errX) {
					t.Fatalf("injected error does not wrap the rule's: %v", err)
				}
			}
			if got := len(in.Calls()); got != len(tt.wantErr) {
				t.Fatalf("recorded %d calls", got)
			}
		})
	}
}
