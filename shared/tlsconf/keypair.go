package tlsconf

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"stx-registry/shared/files"
)

// MaxPEMBytes bounds a certificate, key or CA file. A chain of a few
// certificates is a few KiB; a CA bundle of every public root is ~200 KiB.
const MaxPEMBytes = 1 << 20

// maxChain bounds the certificates in the certificate file, leaf included.
const maxChain = 10

// MinRSABits is the smallest RSA key accepted, for TLS and for token
// signing, as NIST SP 800-131A asks.
const MinRSABits = 2048

// loadPair reads and checks a certificate chain and its private key. The
// errors name the files by their configuration keywords and never include
// key material.
func loadPair(certFile, keyFile string, now time.Time) (*tls.Certificate, error) {
	certPEM, err := readPEM(certFile)
	if err != nil {
		return nil, fmt.Errorf("tls_certificate: %w", err)
	}
	keyPEM, err := readPEM(keyFile)
	if err != nil {
		return nil, fmt.Errorf("tls_key: %w", err)
	}
	chain, leaf, err := parseChain(certPEM)
	if err != nil {
		return nil, fmt.Errorf("tls_certificate %s: %w", certFile, err)
	}
	key, err := ParsePrivateKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("tls_key %s: %w", keyFile, err)
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(leaf.PublicKey) {
		return nil, fmt.Errorf("tls_key %s does not match tls_certificate %s", keyFile, certFile)
	}
	if now.Before(leaf.NotBefore) {
		return nil, fmt.Errorf("tls_certificate %s is not valid before %s", certFile, leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	if now.After(leaf.NotAfter) {
		return nil, fmt.Errorf("tls_certificate %s expired on %s", certFile, leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return &tls.Certificate{Certificate: chain, PrivateKey: key, Leaf: leaf}, nil
}

// parseChain returns the DER of every CERTIFICATE block, leaf first, and the
// parsed leaf. Other block types are skipped, so a file that also holds the
// key works.
func parseChain(data []byte) ([][]byte, *x509.Certificate, error) {
	var chain [][]byte
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		if len(chain) == maxChain {
			return nil, nil, fmt.Errorf("more than %d certificates", maxChain)
		}
		chain = append(chain, b.Bytes)
	}
	if len(chain) == 0 {
		return nil, nil, errors.New("holds no PEM CERTIFICATE block")
	}
	var leaf *x509.Certificate
	for i, der := range chain {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, nil, fmt.Errorf("certificate %d: %w", i+1, err)
		}
		if i == 0 {
			leaf = c
		}
	}
	return chain, leaf, nil
}

// ParsePrivateKey returns the one private key in data: PKCS #8 "PRIVATE
// KEY", SEC 1 "EC PRIVATE KEY" or PKCS #1 "RSA PRIVATE KEY". Blocks of other
// types, such as "EC PARAMETERS" or "CERTIFICATE", are skipped. An encrypted
// key (PKCS #8 "ENCRYPTED PRIVATE KEY" or a legacy Proc-Type/DEK-Info
// header) is refused, as are RSA keys under MinRSABits and keys other than
// ECDSA, RSA and Ed25519. Errors never include key material. Both the TLS
// key and the token server's signing keys are parsed here.
func ParsePrivateKey(data []byte) (crypto.Signer, error) {
	var key any
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if !strings.HasSuffix(b.Type, "PRIVATE KEY") {
			continue
		}
		if key != nil {
			return nil, errors.New("holds more than one private key, give exactly one")
		}
		if encrypted(b) {
			return nil, errors.New("key is encrypted, give an unencrypted key")
		}
		var err error
		switch b.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(b.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(b.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(b.Bytes)
		default:
			return nil, fmt.Errorf("PEM block %s is not supported, convert the key with \"openssl pkey\" to PRIVATE KEY", quote(b.Type))
		}
		if err != nil {
			return nil, fmt.Errorf("%s block: %w", b.Type, err)
		}
	}
	switch k := key.(type) {
	case nil:
		return nil, errors.New("holds no PEM private key block")
	case *rsa.PrivateKey:
		if err := CheckRSAKey(&k.PublicKey); err != nil {
			return nil, err
		}
		return k, nil
	case *ecdsa.PrivateKey:
		return k, nil
	case ed25519.PrivateKey:
		return k, nil
	default:
		return nil, fmt.Errorf("key type %T is not supported, use ECDSA, RSA or Ed25519", key)
	}
}

// encrypted reports a PEM block holding an encrypted key: PKCS #8
// "ENCRYPTED PRIVATE KEY", or OpenSSL's legacy encryption headers on any
// block type.
func encrypted(b *pem.Block) bool {
	_, procType := b.Headers["Proc-Type"]
	_, dekInfo := b.Headers["DEK-Info"]
	return procType || dekInfo || b.Type == "ENCRYPTED PRIVATE KEY"
}

// CheckRSAKey refuses an RSA key of fewer than MinRSABits.
func CheckRSAKey(k *rsa.PublicKey) error {
	if bits := k.N.BitLen(); bits < MinRSABits {
		return fmt.Errorf("rsa key has %d bits, use at least %d", bits, MinRSABits)
	}
	return nil
}

// maxQuoted bounds how much of an unexpected PEM block type an error echoes.
const maxQuoted = 64

// quote returns s quoted for an error message, cut at maxQuoted bytes.
func quote(s string) string {
	if len(s) > maxQuoted {
		return strconv.QuoteToASCII(s[:maxQuoted]) + "..."
	}
	return strconv.QuoteToASCII(s)
}

// ReadCertificates returns every certificate of the PEM file at path, leaf
// first, with the same bounds as the server's own certificate file. The
// health probe uses it to pin the configured tls_certificate.
func ReadCertificates(path string) ([]*x509.Certificate, error) {
	data, err := readPEM(path)
	if err != nil {
		return nil, err
	}
	chain, _, err := parseChain(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	certs := make([]*x509.Certificate, len(chain))
	for i, der := range chain {
		if certs[i], err = x509.ParseCertificate(der); err != nil {
			return nil, err
		}
	}
	return certs, nil
}

// readPEM reads a regular file of at most MaxPEMBytes.
func readPEM(path string) ([]byte, error) {
	return files.Read(path, MaxPEMBytes)
}
