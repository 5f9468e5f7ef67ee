package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
)

// maxSecretFileBytes bounds a password file: Keystone's own password limit
// is 4096 bytes.
const maxSecretFileBytes = 4096

// readSecretFile returns the first line of the password file at path. The
// file must be a regular file that group and others cannot read.
func readSecretFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", path)
	}
	if m := fi.Mode().Perm(); m&0o077 != 0 {
		return "", fmt.Errorf("%s has mode %04o, group or others may read it: chmod 600 %s", path, m, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxSecretFileBytes+1))
	if err != nil {
		return "", err
	}
	if len(data) > maxSecretFileBytes {
		return "", fmt.Errorf("%s is larger than %d bytes", path, maxSecretFileBytes)
	}
	line, _, _ := bytes.Cut(data, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	if len(line) == 0 {
		return "", fmt.Errorf("%s: the first line is empty, put the password there", path)
	}
	return string(line), nil
}
