//go:build !otel

package tracing

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// TestWithoutTracing: a build without the otel tag runs the handler as it
// is, and refuses an environment that asks for spans it cannot make
// (naming the variable and the build that can), while a function with
// active tracing (the daemon's address only) starts.
func TestWithoutTracing(t *testing.T) {
	for _, tc := range []struct {
		env     map[string]string
		wantErr bool
	}{
		{env: nil},
		{env: map[string]string{EnvDaemon: "169.254.79.129:2000"}},
		{env: map[string]string{EnvExporter: "off"}},
		{env: map[string]string{EnvExporter: "xray", EnvDaemon: "169.254.79.129:2000"}, wantErr: true},
		{env: map[string]string{EnvExporter: "stdout"}, wantErr: true},
	} {
		err := Setup(func(k string) string { return tc.env[k] }, "setsecret")
		if (err != nil) != tc.wantErr || (err != nil && !(strings.Contains(err.Error(), EnvExporter) && strings.Contains(err.Error(), "TRACING=otel"))) {
			t.Errorf("%v: %v", tc.env, err)
		}
	}
	boom := errors.New("boom")
	h := Handler("testsecret", func(_ context.Context, in int) (int, error) { return in + 1, boom }, nil)
	if out, err := h(context.Background(), 1); out != 2 || err != boom {
		t.Errorf("handler changed: %d %v", out, err)
	}
	if Enabled {
		t.Error("Enabled in a build without the otel tag")
	}
}
