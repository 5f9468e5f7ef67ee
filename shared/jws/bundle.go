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
// to sign with is refused here too. Only CERTIFICATE blocks are allowed.
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
		alg, err := Algorithm(cert.PublicKey)
		if err != nil {
			return Bundle{}, fmt.Errorf("certificate %d (%s): %w", n, cert.Subject, err)
		}
		if !slices.Contains(b.Algorithms, any(alg)) {
			b.Algorithms = append(b.Algorithms, alg)
		}
		b.Certificates++
	}
	if b.Certificates == 0 {
		return Bundle{}, errors.New("no PEM certificate found: give the token server's signing certificate")
	}
	return b, nil
}
