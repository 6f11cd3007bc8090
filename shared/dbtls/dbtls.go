// Package dbtls turns a secret's "tls" field into the TLS settings every
// database and cache connection of secretsaga uses: the rotation's target
// engines (shared/target/...) and the application connectors
// (shared/client/...), so that both sides of a rotation trust the same
// servers.
//
// The modes are secret.TLSMode's. verify-full checks the server's chain
// against Roots (the Amazon RDS certificate authorities built into the
// binary, plus the PEM file named by DB_TLS_CA_FILE) and that its
// certificate names the secret's host, as AWS's own rotation templates do;
// it is the default for AWS managed endpoints (IsManagedEndpoint).
package dbtls

import (
	"bytes"
	"compress/flate"
	"crypto/tls"
	"crypto/x509"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/secretsaga/secretsaga/shared/secret"
)

// EnvCAFile names a PEM file whose certificates verify-full trusts besides
// the built-in bundle: a private CA, a self-signed test CA, or the China
// or AWS GovCloud (US) Regions' RDS bundles, which the built-in one lacks.
const EnvCAFile = "DB_TLS_CA_FILE"

// rdsBundleFlate is rds-ca-bundle.pem (the RDS global bundle and the
// Amazon Trust Services roots; the file says where it comes from),
// DEFLATE-compressed: 66 KB instead of 140 in every function that talks
// to a database, whose bootstrap must stay at most 10 MB (README "Binary
// sizes"). The decompressor is linked anyway (net/http's gzip).
//
//go:embed rds-ca-bundle.pem.flate
var rdsBundleFlate []byte

// rdsBundle returns the built-in bundle's PEM text.
func rdsBundle() ([]byte, error) {
	pem, err := io.ReadAll(flate.NewReader(bytes.NewReader(rdsBundleFlate)))
	if err != nil {
		return nil, fmt.Errorf("dbtls: the built-in RDS CA bundle does not decompress: %w", err)
	}
	return pem, nil
}

// Effective is the mode a connection to host uses: the secret's, when it
// names one; verify-full for an AWS managed endpoint; otherwise
// secret.TLSDefault, which each engine maps to what it did before the
// field existed (so a local or self-hosted server without certificates
// keeps working).
func Effective(mode secret.TLSMode, host string) secret.TLSMode {
	if mode == secret.TLSDefault && IsManagedEndpoint(host) {
		return secret.TLSVerifyFull
	}
	return mode
}

// managedSuffixes are the DNS suffixes of the endpoints RDS, Aurora, RDS
// Proxy and ElastiCache give out, by partition, as label lists; "*" is
// any one label (a Region). Commercial and AWS GovCloud (US) endpoints
// end in amazonaws.com (…us-gov-west-1.rds.amazonaws.com), the China
// Regions' in amazonaws.com.cn with the Region after the service
// (…rds.cn-north-1.amazonaws.com.cn, …cnn1.cache.amazonaws.com.cn).
var managedSuffixes = [][]string{
	{"rds", "amazonaws", "com"},
	{"rds", "*", "amazonaws", "com", "cn"},
	{"rds", "amazonaws", "com", "cn"},
	{"cache", "amazonaws", "com"},
	{"cache", "amazonaws", "com", "cn"},
}

// IsManagedEndpoint reports whether host is the DNS name of an Amazon RDS,
// Aurora, RDS Proxy or ElastiCache endpoint: servers that always offer TLS
// with a certificate naming that endpoint.
func IsManagedEndpoint(host string) bool {
	labels := strings.Split(strings.TrimSuffix(strings.ToLower(host), "."), ".")
	for _, suf := range managedSuffixes {
		// At least one label (the instance's) before the suffix.
		if len(labels) <= len(suf) {
			continue
		}
		tail := labels[len(labels)-len(suf):]
		match := true
		for i, l := range suf {
			if tail[i] == "" || (l != "*" && tail[i] != l) {
				match = false
				break
			}
		}
		if match && labels[0] != "" {
			return true
		}
	}
	return false
}

var (
	rootsMu    sync.Mutex
	rootsCache = map[string]*x509.CertPool{}
)

// Roots returns the pool verify-full trusts: the built-in bundle plus the
// certificates of the file DB_TLS_CA_FILE names, if set. The system's
// roots are not in it: a database's certificate comes from its own CA, and
// trusting every public CA would accept anyone's certificate for a host
// they control. Pools are cached by file name.
func Roots() (*x509.CertPool, error) {
	return RootsFrom(os.Getenv(EnvCAFile))
}

// RootsFrom is Roots with the extra file given ("" for none).
func RootsFrom(caFile string) (*x509.CertPool, error) {
	rootsMu.Lock()
	defer rootsMu.Unlock()
	if p, ok := rootsCache[caFile]; ok {
		return p, nil
	}
	bundle, err := rdsBundle()
	if err != nil {
		return nil, err
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(bundle) {
		return nil, errors.New("dbtls: the built-in RDS CA bundle holds no certificate")
	}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("dbtls: %s: %w", EnvCAFile, err)
		}
		if !p.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("dbtls: %s=%s holds no PEM certificate", EnvCAFile, caFile)
		}
	}
	rootsCache[caFile] = p
	return p, nil
}

// Config returns the tls.Config for an effective mode (see Effective):
// nil for secret.TLSDisable and secret.TLSDefault, whose meaning is the
// engine's; for verify-full, roots (nil: Roots()) and host as the name
// the certificate must carry (an IP address is matched against the
// certificate's IP SANs).
func Config(mode secret.TLSMode, host string, roots *x509.CertPool) (*tls.Config, error) {
	switch mode {
	case secret.TLSVerifyFull:
		if roots == nil {
			var err error
			if roots, err = Roots(); err != nil {
				return nil, err
			}
		}
		return &tls.Config{RootCAs: roots, ServerName: host, MinVersion: tls.VersionTLS12}, nil
	case secret.TLSRequire:
		// Encryption only, as libpq's sslmode=require: the secret asked
		// for no verification.
		return &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}, nil
	default:
		return nil, nil
	}
}

// Failure explains err if it is TLS failing (a certificate that was not
// trusted or does not name the host, or a server that does not speak TLS),
// in words that hold nothing but the certificate's names; ok is false for
// any other error.
func Failure(err error) (reason string, ok bool) {
	if err == nil {
		return "", false
	}
	var (
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		verify   *tls.CertificateVerificationError
		record   tls.RecordHeaderError
	)
	switch {
	case errors.As(err, &unknown):
		return "the server's certificate is not signed by a trusted CA (" + unknown.Error() + ")", true
	case errors.As(err, &hostname):
		return "the server's certificate does not name the host (" + hostname.Error() + ")", true
	case errors.As(err, &invalid):
		return "the server's certificate is not valid (" + invalid.Error() + ")", true
	case errors.As(err, &verify):
		return "the server's certificate did not verify (" + verify.Err.Error() + ")", true
	case errors.As(err, &record):
		return "the server did not answer in TLS", true
	}
	// Drivers that flatten the error to text (pgx, for one, on a server
	// that refuses TLS: "server refused TLS connection").
	msg := err.Error()
	for _, s := range []string{"x509: ", "tls: failed to verify", "server refused TLS connection", "TLS requested but server does not support TLS", "first record does not look like a TLS handshake"} {
		if i := strings.Index(msg, s); i >= 0 {
			return "TLS failed: " + msg[i:], true
		}
	}
	return "", false
}

// Fix says what to change after a Failure in mode.
func Fix(mode secret.TLSMode) string {
	switch mode {
	case secret.TLSVerifyFull:
		return `use the endpoint's DNS name as the secret's "host" (the name in its certificate), make its CA trusted (the RDS CAs are built in; add others in the PEM file named by ` + EnvCAFile + `), or set the secret's "tls" to "require" to encrypt without verifying the server`
	case secret.TLSRequire:
		return `the server must accept TLS; set the secret's "tls" to "disable" for plain TCP`
	default:
		return `set the secret's "tls" to "verify-full", "require" or "disable"`
	}
}
