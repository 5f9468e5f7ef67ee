package jws

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	_ "crypto/sha512" // links SHA-384 and SHA-512 for crypto.Hash.New
	"encoding/asn1"
	"encoding/json"
	"errors"
	"math/big"
)

// Signer signs JWS compact tokens with one key, in the algorithm
// Algorithm gives for it and with the kid KeyID gives.
type Signer struct {
	key    crypto.Signer
	alg    string
	kid    string
	hash   crypto.Hash // 0 for Ed25519, which signs the message itself
	ecSize int         // ECDSA field size in bytes for r||s; 0 otherwise
	header string      // base64url of the JSON header, the same for every token
}

// NewSigner returns a Signer for key, refusing keys Algorithm refuses.
func NewSigner(key crypto.Signer) (*Signer, error) {
	pub := key.Public()
	alg, err := Algorithm(pub)
	if err != nil {
		return nil, err
	}
	kid, err := KeyID(pub)
	if err != nil {
		return nil, err
	}
	s := &Signer{key: key, alg: alg, kid: kid}
	switch alg {
	case "ES256", "RS256":
		s.hash = crypto.SHA256
	case "ES384":
		s.hash = crypto.SHA384
	case "ES512":
		s.hash = crypto.SHA512
	}
	if k, ok := pub.(*ecdsa.PublicKey); ok {
		s.ecSize = (k.Curve.Params().BitSize + 7) / 8
	}
	h, err := json.Marshal(struct {
		Typ string `json:"typ"`
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}{"JWT", alg, kid})
	if err != nil {
		return nil, err
	}
	s.header = b64.EncodeToString(h)
	return s, nil
}

// Algorithm returns the JWS algorithm s signs with.
func (s *Signer) Algorithm() string { return s.alg }

// KeyID returns the kid s puts in the header.
func (s *Signer) KeyID() string { return s.kid }

// Public returns the public half of the key.
func (s *Signer) Public() crypto.PublicKey { return s.key.Public() }

// Sign returns the compact JWS of payload (the JSON claims):
// base64url(header) "." base64url(payload) "." base64url(signature), with
// the header {"typ":"JWT","alg":ALG,"kid":KID}.
func (s *Signer) Sign(payload []byte) (string, error) {
	buf := make([]byte, 0, len(s.header)+1+b64.EncodedLen(len(payload))+1+b64.EncodedLen(512))
	buf = append(buf, s.header...)
	buf = append(buf, '.')
	buf = b64.AppendEncode(buf, payload)
	sig, err := s.Signature(buf)
	if err != nil {
		return "", err
	}
	buf = append(buf, '.')
	buf = b64.AppendEncode(buf, sig)
	return string(buf), nil
}

// Signature signs the JWS signing input (header "." payload, both
// base64url) and returns the raw signature: r||s of fixed width for ECDSA
// (RFC 7518 §3.4), PKCS #1 v1.5 with SHA-256 for RSA, Ed25519 of the input
// itself.
func (s *Signer) Signature(input []byte) ([]byte, error) {
	if s.hash == 0 {
		return s.key.Sign(rand.Reader, input, crypto.Hash(0)) // Ed25519
	}
	h := s.hash.New()
	h.Write(input)
	sig, err := s.key.Sign(rand.Reader, h.Sum(nil), s.hash)
	if err != nil || s.ecSize == 0 {
		return sig, err // RSA PKCS#1 v1.5
	}
	// crypto.Signer gives ECDSA signatures in ASN.1; JWS wants r and s as
	// fixed-size big-endian integers, concatenated (RFC 7518 §3.4).
	var rs struct{ R, S *big.Int }
	rest, err := asn1.Unmarshal(sig, &rs)
	if err != nil || len(rest) != 0 || !fits(rs.R, s.ecSize) || !fits(rs.S, s.ecSize) {
		return nil, errors.New("ecdsa signer returned a malformed signature")
	}
	out := make([]byte, 2*s.ecSize)
	rs.R.FillBytes(out[:s.ecSize])
	rs.S.FillBytes(out[s.ecSize:])
	return out, nil
}

// fits reports whether n is positive and fits in size bytes.
func fits(n *big.Int, size int) bool {
	return n.Sign() > 0 && n.BitLen() <= 8*size
}
