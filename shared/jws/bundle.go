package jws

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"

	"stx-registry/shared/files"
)

// MaxBundleBytes bounds token_certificate: a few certificates take a few
// kilobytes.
const MaxBundleBytes = 1 << 20

// Bundle is what the registry needs to know of its token_certificate.
type Bundle struct {
	// Algorithms are the JWS algorithms the bundle's keys sign with,
	// without duplicates, in the order first seen. They are []any of
	// strings because that is what distribution's signingalgorithms
	// option wants (a []string is rejected).
	Algorithms []any
	// Certificates is the number of certificates in the bundle.
	Certificates int
	// Certs are the bundle's certificates, in order: a token that names
	// its key by x5c or jwk must name one of these exactly.
	Certs []*x509.Certificate
}

// ReadBundle reads the token server's signing certificate bundle at path.
// Errors name the file by its keyword, token_certificate.
func ReadBundle(path string) (Bundle, error) {
	data, err := files.Read(path, MaxBundleBytes)
	if errors.Is(err, files.ErrTooLarge) {
		return Bundle{}, fmt.Errorf("token_certificate: %w: give only the token server's signing certificates", err)
	}
	if err != nil {
		return Bundle{}, fmt.Errorf("token_certificate: %w", err)
	}
	b, err := ParseBundle(data)
	if err != nil {
		return Bundle{}, fmt.Errorf("token_certificate %s: %w", path, err)
	}
	return b, nil
}

// ParseBundle maps each certificate's public key in a PEM bundle to its
// JWS algorithm with Algorithm, so that a key the token server would refuse
// to sign with is refused here too. Only CERTIFICATE blocks are allowed,
// and no CA certificate: distribution verifies a token's x5c chain against
// the bundle, so a CA in it would let every key the CA certified sign
// tokens.
func ParseBundle(data []byte) (Bundle, error) {
	var b Bundle
	for n := 1; ; n++ {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return Bundle{}, fmt.Errorf("PEM block %d is %q, want only CERTIFICATE blocks", n, block.Type)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return Bundle{}, fmt.Errorf("certificate %d: %w", n, err)
		}
		if err := notCA(cert); err != nil {
			return Bundle{}, fmt.Errorf("certificate %d (%s): %w", n, cert.Subject, err)
		}
		alg, err := Algorithm(cert.PublicKey)
		if err != nil {
			return Bundle{}, fmt.Errorf("certificate %d (%s): %w", n, cert.Subject, err)
		}
		if !slices.Contains(b.Algorithms, any(alg)) {
			b.Algorithms = append(b.Algorithms, alg)
		}
		b.Certificates++
		b.Certs = append(b.Certs, cert)
	}
	if b.Certificates == 0 {
		return Bundle{}, errors.New("no PEM certificate found: give the token server's signing certificate")
	}
	return b, nil
}

// notCA refuses a certificate that Go's verifier would accept as the
// issuer of another: CA:TRUE, the keyCertSign usage, or version 1 (which
// has no basic constraints and is taken as a CA).
func notCA(cert *x509.Certificate) error {
	const hint = "the token_certificate bundle must hold only the token server's own signing certificates (CA:FALSE, keyUsage digitalSignature), never a CA: distribution would accept tokens from every key the CA certified"
	switch {
	case cert.IsCA:
		return fmt.Errorf("is a CA certificate (basicConstraints CA:TRUE): %s", hint)
	case cert.KeyUsage&x509.KeyUsageCertSign != 0:
		return fmt.Errorf("may sign certificates (keyUsage keyCertSign): %s", hint)
	case cert.Version < 3:
		return fmt.Errorf("is a version %d certificate, which Go takes as a CA: %s", cert.Version, hint)
	}
	return nil
}
