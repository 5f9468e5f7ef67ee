// Package jws is the one place that decides how tokens are signed and
// checked between the token server and the registry: which JWS algorithm a
// key signs with (ES256/ES384/ES512 by curve, RS256 for RSA of at least
// tlsconf.MinRSABits, EdDSA for Ed25519), the "kid" exactly as
// distribution computes it, the signature itself, loading a private signing
// key, and reading the registry's token_certificate bundle. A key the token
// server refuses, the registry refuses too, with the same message.
package jws

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"math/big"

	"stx-registry/shared/tlsconf"
)

var b64 = base64.RawURLEncoding

// Algorithm returns the JWS algorithm for pub: ES256/ES384/ES512 by curve,
// RS256 for RSA, EdDSA for Ed25519. Other keys, and RSA keys under
// tlsconf.MinRSABits, are refused.
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
		if err := tlsconf.CheckRSAKey(k); err != nil {
			return "", err
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
