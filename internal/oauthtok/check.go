package oauthtok

import (
	"fmt"
	"time"
)

// CheckCertificate reads an Entra certificate credential (PEM: the
// certificate and its unencrypted RSA key) as Entra does before signing a
// client assertion: nil when one could be signed with it at now. For
// `gateway check-config`; errors never carry key material.
func CheckCertificate(pem []byte, now time.Time) error {
	_, err := parseCertificatePEM(pem, now)
	return err
}

// CheckServiceAccountKey reads a Google service account's JSON key as
// Google does before asking for a token. For `gateway check-config`;
// errors never carry the key file's text.
func CheckServiceAccountKey(js []byte) error {
	conf, err := jwtConfig(js, nil)
	if err != nil {
		return err
	}
	if err := checkKey(conf.PrivateKey); err != nil {
		return fmt.Errorf("private_key: %v", err)
	}
	return nil
}
