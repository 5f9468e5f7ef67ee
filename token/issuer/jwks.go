package issuer

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"math/big"

	"stx-registry/shared/jws"
)

// jwk is one public key of a JWKS (RFC 7517). Its "kid" is KeyID, the value
// distribution's verifier looks a token's kid up by; x and y are padded to
// the field size as RFC 7518 requires (only the kid keeps distribution's
// unpadded quirk).
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	Crv string `json:"crv,omitempty"`
	X   string `json:"x,omitempty"`
	Y   string `json:"y,omitempty"`
	N   string `json:"n,omitempty"`
	E   string `json:"e,omitempty"`
}

// JWKS returns the JSON Web Key Set of pubs, in order: the registry's
// token_jwks, or a published list of the keys in use during a rotation.
func JWKS(pubs []crypto.PublicKey) ([]byte, error) {
	set := struct {
		Keys []jwk `json:"keys"`
	}{Keys: []jwk{}}
	for _, pub := range pubs {
		alg, err := jws.Algorithm(pub)
		if err != nil {
			return nil, err
		}
		kid, err := jws.KeyID(pub)
		if err != nil {
			return nil, err
		}
		k := jwk{Kid: kid, Use: "sig", Alg: alg}
		switch p := pub.(type) {
		case *ecdsa.PublicKey:
			point, err := p.Bytes() // 0x04 || X || Y, each of the field size
			if err != nil {
				return nil, err
			}
			size := (len(point) - 1) / 2
			k.Kty, k.Crv = "EC", p.Curve.Params().Name
			k.X, k.Y = b64.EncodeToString(point[1:1+size]), b64.EncodeToString(point[1+size:])
		case *rsa.PublicKey:
			k.Kty = "RSA"
			k.N, k.E = b64.EncodeToString(p.N.Bytes()), b64.EncodeToString(big.NewInt(int64(p.E)).Bytes())
		case ed25519.PublicKey:
			k.Kty, k.Crv, k.X = "OKP", "Ed25519", b64.EncodeToString(p)
		}
		set.Keys = append(set.Keys, k)
	}
	return json.MarshalIndent(set, "", "  ")
}
