package jws

import (
	"crypto"
	"fmt"

	"stx-registry/shared/files"
	"stx-registry/shared/tlsconf"
)

// MaxKeyFileBytes bounds a signing key file: an RSA 8192 key is about
// 6 KiB of PEM; the rest leaves room for a certificate alongside.
const MaxKeyFileBytes = 64 << 10

// LoadSigningKey reads a PEM private key from path: PKCS#1 ("RSA PRIVATE
// KEY"), PKCS#8 ("PRIVATE KEY") or SEC1 ("EC PRIVATE KEY"). The file must be
// a regular file that group and others cannot read.
func LoadSigningKey(path string) (crypto.Signer, error) {
	data, err := files.ReadPrivate(path, MaxKeyFileBytes)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	k, err := ParseSigningKey(data)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", path, err)
	}
	return k, nil
}

// ParseSigningKey parses the one PEM private key block in pemBytes with
// tlsconf.ParsePrivateKey; other blocks (EC PARAMETERS, CERTIFICATE) are
// skipped. The key must be one Algorithm accepts: ECDSA
// P-256/P-384/P-521, RSA of at least tlsconf.MinRSABits, or Ed25519.
func ParseSigningKey(pemBytes []byte) (crypto.Signer, error) {
	if len(pemBytes) > MaxKeyFileBytes {
		return nil, fmt.Errorf("larger than %d bytes", MaxKeyFileBytes)
	}
	s, err := tlsconf.ParsePrivateKey(pemBytes)
	if err != nil {
		return nil, err
	}
	if _, err := Algorithm(s.Public()); err != nil {
		return nil, err
	}
	return s, nil
}
