package main

import (
	"strings"
	"testing"
)

func TestReadLine(t *testing.T) {
	for in, want := range map[string]string{"pw\n": "pw", "pw\r\n": "pw", "pw": "pw", "a b c\nrest": "a b c"} {
		got, err := readLine(strings.NewReader(in))
		if err != nil || string(got) != want {
			t.Errorf("readLine(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := readLine(strings.NewReader("")); err == nil {
		t.Error("empty input accepted")
	}
	if _, err := readLine(strings.NewReader(strings.Repeat("x", 2000))); err == nil {
		t.Error("over-long password accepted")
	}
}
