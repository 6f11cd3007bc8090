package dbtls_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secretsaga/secretsaga/shared/dbtls"
	"github.com/secretsaga/secretsaga/shared/dbtls/dbtlstest"
	"github.com/secretsaga/secretsaga/shared/secret"
)

func TestIsManagedEndpoint(t *testing.T) {
	tests := []struct {
		host string
		want bool
	}{
		{"mydb.c9akciq32.us-east-1.rds.amazonaws.com", true},
		{"my-cluster.cluster-ro-c9akciq32.eu-west-1.rds.amazonaws.com", true},
		{"proxy.proxy-c9akciq32.us-east-1.rds.amazonaws.com", true},
		{"MyDB.C9AKCIQ32.US-EAST-1.RDS.AMAZONAWS.COM.", true},
		{"mydb.c9akciq32.us-gov-west-1.rds.amazonaws.com", true},
		{"mydb.c9akciq32.rds.cn-north-1.amazonaws.com.cn", true},
		{"mydb.c9akciq32.rds.amazonaws.com.cn", true},
		{"master.my-redis.abc123.use1.cache.amazonaws.com", true},
		{"my-cache-abc123.serverless.use1.cache.amazonaws.com", true},
		{"my-redis.abc123.cnn1.cache.amazonaws.com.cn", true},
		{"rds.amazonaws.com", false},
		{".rds.amazonaws.com", false},
		{"cache.amazonaws.com", false},
		{"mydb.rds.amazonaws.com.evil.example", false},
		{"mydb.xrds.amazonaws.com", false},
		{"mydb.rds.cn-north-1.amazonaws.com", false},
		{"secretsmanager.us-east-1.amazonaws.com", false},
		{"localhost", false},
		{"127.0.0.1", false},
		{"db.internal", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := dbtls.IsManagedEndpoint(tt.host); got != tt.want {
			t.Errorf("IsManagedEndpoint(%q) = %v, want %v", tt.host, got, tt.want)
		}
	}
}

func TestEffective(t *testing.T) {
	const rds, local = "db.abc.us-east-1.rds.amazonaws.com", "127.0.0.1"
	tests := []struct {
		mode secret.TLSMode
		host string
		want secret.TLSMode
	}{
		{secret.TLSDefault, rds, secret.TLSVerifyFull},
		{secret.TLSDefault, "r.abc.use1.cache.amazonaws.com", secret.TLSVerifyFull},
		{secret.TLSDefault, local, secret.TLSDefault},
		{secret.TLSDefault, "db.internal", secret.TLSDefault},
		{secret.TLSRequire, rds, secret.TLSRequire},
		{secret.TLSDisable, rds, secret.TLSDisable},
		{secret.TLSVerifyFull, local, secret.TLSVerifyFull},
		{secret.TLSRequire, local, secret.TLSRequire},
		{secret.TLSDisable, local, secret.TLSDisable},
	}
	for _, tt := range tests {
		if got := dbtls.Effective(tt.mode, tt.host); got != tt.want {
			t.Errorf("Effective(%q, %q) = %q, want %q", tt.mode, tt.host, got, tt.want)
		}
	}
}

// The built-in bundle is the RDS global bundle plus the Amazon Trust
// Services roots, and every block in it is a certificate.
func TestBundle(t *testing.T) {
	data, err := os.ReadFile("rds-ca-bundle.pem")
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	n := 0
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatalf("block %d: %v", n, err)
		}
		names[c.Subject.CommonName] = true
		n++
	}
	for _, want := range []string{
		"Amazon RDS us-east-1 Root CA RSA2048 G1", "Amazon RDS us-east-1 Root CA RSA4096 G1",
		"Amazon RDS us-east-1 Root CA ECC384 G1", "Amazon RDS eu-west-1 Root CA RSA2048 G1",
		"Amazon Root CA 1", "Starfield Services Root Certificate Authority - G2",
	} {
		if !names[want] {
			t.Errorf("bundle lacks %q", want)
		}
	}
	if n < 80 {
		t.Errorf("bundle holds %d certificates; the RDS global bundle's unexpired roots are over 80", n)
	}
}

func TestRootsFrom(t *testing.T) {
	ca, err := dbtlstest.NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	good, bad := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "bad.pem")
	if err := os.WriteFile(good, ca.PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := dbtls.RootsFrom(""); err != nil {
		t.Fatal(err)
	}
	pool, err := dbtls.RootsFrom(good)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.Cert.Verify(x509.VerifyOptions{Roots: pool}); err != nil {
		t.Errorf("the file's CA is not trusted: %v", err)
	}
	builtIn, _ := dbtls.RootsFrom("")
	if _, err := ca.Cert.Verify(x509.VerifyOptions{Roots: builtIn}); err == nil {
		t.Error("the built-in pool trusts a test CA")
	}
	for _, f := range []string{bad, filepath.Join(dir, "missing.pem")} {
		if _, err := dbtls.RootsFrom(f); err == nil || !strings.Contains(err.Error(), dbtls.EnvCAFile) {
			t.Errorf("RootsFrom(%s) = %v, want an error naming %s", filepath.Base(f), err, dbtls.EnvCAFile)
		}
	}
	t.Setenv(dbtls.EnvCAFile, good)
	if pool, err := dbtls.Roots(); err != nil {
		t.Fatal(err)
	} else if _, err := ca.Cert.Verify(x509.VerifyOptions{Roots: pool}); err != nil {
		t.Errorf("Roots() ignores %s: %v", dbtls.EnvCAFile, err)
	}
}

// tlsServer accepts TLS connections on loopback with a certificate for
// 127.0.0.1 signed by ca, and writes "ok" on each.
func tlsServer(t *testing.T, ca *dbtlstest.CA) string {
	t.Helper()
	srv, err := ca.Server("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := srv.TLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.WriteString(c, "ok")
			}()
		}
	}()
	return ln.Addr().String()
}

// Config's modes against a real TLS handshake: verify-full checks the
// chain and the host name, require checks neither.
func TestConfigHandshake(t *testing.T) {
	ca, err := dbtlstest.NewCA("server CA")
	if err != nil {
		t.Fatal(err)
	}
	other, err := dbtlstest.NewCA("other CA")
	if err != nil {
		t.Fatal(err)
	}
	addr := tlsServer(t, ca)
	_, port, _ := net.SplitHostPort(addr)
	tests := []struct {
		name   string
		mode   secret.TLSMode
		host   string
		roots  *x509.CertPool
		reason string // "" when the handshake must succeed
	}{
		{"verify-full with the CA", secret.TLSVerifyFull, "127.0.0.1", ca.Pool, ""},
		{"verify-full with another CA", secret.TLSVerifyFull, "127.0.0.1", other.Pool, "not signed by a trusted CA"},
		{"verify-full with the built-in bundle", secret.TLSVerifyFull, "127.0.0.1", nil, "not signed by a trusted CA"},
		{"verify-full with the wrong host", secret.TLSVerifyFull, "localhost", ca.Pool, "does not name the host"},
		{"require without the CA", secret.TLSRequire, "localhost", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := dbtls.Config(tt.mode, tt.host, tt.roots)
			if err != nil {
				t.Fatal(err)
			}
			c, err := tls.Dial("tcp", net.JoinHostPort(tt.host, port), cfg)
			if err == nil {
				_, err = io.ReadAll(c)
				_ = c.Close()
			}
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("handshake failed: %v", err)
				}
				return
			}
			reason, ok := dbtls.Failure(err)
			if !ok || !strings.Contains(reason, tt.reason) {
				t.Fatalf("Failure(%v) = %q, %v; want a reason with %q", err, reason, ok, tt.reason)
			}
		})
	}
}

func TestConfigPlainModes(t *testing.T) {
	for _, m := range []secret.TLSMode{secret.TLSDefault, secret.TLSDisable} {
		if cfg, err := dbtls.Config(m, "h", nil); cfg != nil || err != nil {
			t.Errorf("Config(%q) = %v, %v; want nil (the engine's own setting)", m, cfg, err)
		}
	}
}

func TestFailureIgnoresOtherErrors(t *testing.T) {
	for _, err := range []error{nil, io.EOF, errors.New("password authentication failed for user \"app\"")} {
		if r, ok := dbtls.Failure(err); ok {
			t.Errorf("Failure(%v) = %q, want not a TLS failure", err, r)
		}
	}
}
