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

func TestCrashAndHook(t *testing.T) {
	var in Injector
	hooked := 0
	in.Add(Rule{Call: "c", Nth: 1, Phase: Crash, Hook: func(context.Context) error { hooked++; return nil }})
	in.Add(Rule{Call: "d", Nth: 1, Phase: Before, Hook: func(context.Context) error { hooked++; return nil }})
	ctx := WithFunction(context.Background(), "f")
	effect := false
	func() {
		defer func() {
			c, ok := recover().(CrashError)
			if !ok || c.ErrorType() != "Sandbox.Timedout" || c.Call != "c" {
				t.Errorf("recovered %v, want a CrashError", c)
			}
		}()
		_ = in.Do(ctx, "c", func() error { effect = true; return nil })
		t.Error("Do returned after a crash")
	}()
	if !effect {
		t.Error("a crash must strike after the effect")
	}
	// A hook without an error lets the call proceed.
	if err := in.Do(ctx, "d", func() error { return nil }); err != nil {
		t.Errorf("hook-only rule: %v", err)
	}
	if hooked != 2 || in.Fired() != 2 {
		t.Errorf("hooked %d, fired %d; want 2, 2", hooked, in.Fired())
	}
}
