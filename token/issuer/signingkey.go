package issuer

// Signing keys: loading them and naming them the way distribution's
// verifier expects.

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"strings"

	"stx-registry/token/access"
)

// LoadSigningKey reads a PEM private key from path: PKCS#1 ("RSA PRIVATE
// KEY"), PKCS#8 ("PRIVATE KEY") or SEC1 ("EC PRIVATE KEY"). The file must not
// be readable by group or others.
func LoadSigningKey(path string) (crypto.Signer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("signing key %s: not a regular file", path)
	}
	if m := st.Mode().Perm(); m&0o077 != 0 {
		return nil, fmt.Errorf("signing key %s: mode %04o lets group or others read it, chmod 600 it", path, m)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxKeyFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	if len(data) > MaxKeyFileBytes {
		return nil, fmt.Errorf("signing key %s: larger than %d bytes", path, MaxKeyFileBytes)
	}
	k, err := ParseSigningKey(data)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", path, err)
	}
	return k, nil
}

// ParseSigningKey parses the one PEM private key block in pemBytes; other
// blocks (EC PARAMETERS, CERTIFICATE) are skipped. The key must be ECDSA
// P-256/P-384/P-521, RSA of at least 2048 bits, or Ed25519.
func ParseSigningKey(pemBytes []byte) (crypto.Signer, error) {
	if len(pemBytes) > MaxKeyFileBytes {
		return nil, fmt.Errorf("larger than %d bytes", MaxKeyFileBytes)
	}
	var key any
	var err error
	found := false
	for rest := pemBytes; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if !strings.HasSuffix(b.Type, "PRIVATE KEY") {
			continue
		}
		if found {
			return nil, errors.New("more than one private key, give exactly one")
		}
		found = true
		if _, ok := b.Headers["Proc-Type"]; ok || b.Type == "ENCRYPTED PRIVATE KEY" {
			return nil, errors.New("key is encrypted, give an unencrypted key")
		}
		switch b.Type {
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(b.Bytes)
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(b.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(b.Bytes)
		default:
			return nil, fmt.Errorf("PEM block %s is not supported, convert the key with \"openssl pkey\" to PRIVATE KEY", access.Echo(b.Type))
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", b.Type, err)
		}
	}
	if !found {
		return nil, errors.New("no PEM private key found")
	}
	s, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("unsupported key type %T", key)
	}
	if _, err := Algorithm(s.Public()); err != nil {
		return nil, err
	}
	return s, nil
}

// Algorithm returns the JWS algorithm for pub: ES256/ES384/ES512 by curve,
// RS256 for RSA, EdDSA for Ed25519. Other keys, and RSA keys under 2048
// bits, are refused.
func Algorithm(pub crypto.PublicKey) (string, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch name := k.Curve.Params().Name; name {
		case "P-256":
			return "ES256", nil
		case "P-384":
			return "ES384", nil
		case "P-521":
			return "ES512", nil
		default:
			return "", fmt.Errorf("ecdsa curve %s is not supported, use P-256, P-384 or P-521", name)
		}
	case *rsa.PublicKey:
		if n := k.N.BitLen(); n < minRSABits {
			return "", fmt.Errorf("rsa key has %d bits, use at least %d", n, minRSABits)
		}
		return "RS256", nil
	case ed25519.PublicKey:
		return "EdDSA", nil
	default:
		return "", fmt.Errorf("key type %T is not supported, use ECDSA, RSA or Ed25519", pub)
	}
}

// KeyID computes the "kid" header exactly as distribution v3.1.2's
// token.GetJWKThumbprint does, since the registry looks keys from its
// rootcertbundle up by that value. It is an RFC 7638 SHA-256 thumbprint
// except that distribution encodes EC coordinates with big.Int.Bytes(),
// which drops leading zero bytes instead of padding to the field size; for
// about 2 in 256 EC keys (half of P-521 keys) a standard thumbprint would
// therefore not be found. We strip leading zeros the same way.
func KeyID(pub crypto.PublicKey) (string, error) {
	var jwk string
	switch k := pub.(type) {
	case *rsa.PublicKey:
		e := b64.EncodeToString(big.NewInt(int64(k.E)).Bytes())
		n := b64.EncodeToString(k.N.Bytes())
		jwk = `{"e":"` + e + `","kty":"RSA","n":"` + n + `"}`
	case *ecdsa.PublicKey:
		point, err := k.Bytes() // 0x04 || X || Y, each of the field size
		if err != nil {
			return "", fmt.Errorf("ecdsa public key: %w", err)
		}
		size := (len(point) - 1) / 2
		x := b64.EncodeToString(trimZeros(point[1 : 1+size]))
		y := b64.EncodeToString(trimZeros(point[1+size:]))
		jwk = `{"crv":"` + k.Curve.Params().Name + `","kty":"EC","x":"` + x + `","y":"` + y + `"}`
	case ed25519.PublicKey:
		jwk = `{"crv":"Ed25519","kty":"OKP","x":"` + b64.EncodeToString(k) + `"}`
	default:
		return "", fmt.Errorf("key type %T is not supported, use ECDSA, RSA or Ed25519", pub)
	}
	sum := sha256.Sum256([]byte(jwk))
	return b64.EncodeToString(sum[:]), nil
}

// trimZeros drops leading zero bytes, as big.Int.Bytes() would.
func trimZeros(b []byte) []byte {
	for len(b) > 0 && b[0] == 0 {
		b = b[1:]
	}
	return b
}
