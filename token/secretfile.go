package main

import (
	"bytes"
	"fmt"

	"stx-registry/shared/files"
)

// maxSecretFileBytes bounds a password file: Keystone's own password limit
// is 4096 bytes.
const maxSecretFileBytes = 4096

// readSecretFile returns the first line of the password file at path. The
// file must be a regular file that group and others cannot read.
func readSecretFile(path string) (string, error) {
	data, err := files.ReadPrivate(path, maxSecretFileBytes)
	if err != nil {
		return "", err
	}
	line, _, _ := bytes.Cut(data, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	if len(line) == 0 {
		return "", fmt.Errorf("%s: the first line is empty, put the password there", path)
	}
	return string(line), nil
}
