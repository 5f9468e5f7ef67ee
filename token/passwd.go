package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"unsafe"

	"stx-registry/token/access"
	"stx-registry/token/authn"
)

// passwdMain implements "stx-token-server passwd -f FILE [-d] USER". The
// password is read from the terminal without echo, or as one line from
// standard input when that is not a terminal; never from the command line.
func passwdMain(args []string, stdin *os.File, stdout, stderr io.Writer) error {
	fs := newFlags("stx-token-server passwd", "usage: stx-token-server passwd -f USERS_FILE [-d] USER\n", stdout, stderr)
	file := fs.String("f", "", "users `file` (created with mode 0600 if missing)")
	del := fs.Bool("d", false, "delete USER instead of setting a password")
	if err := fs.parse(args); err != nil {
		return err
	}
	if *file == "" || fs.NArg() != 1 {
		return fs.fail(nil)
	}
	user := fs.Arg(0)
	if *del {
		if err := authn.SetPassword(*file, user, nil); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "stx-token-server: %s removed from %s\n", user, *file)
		return nil
	}
	pw, err := readPassword(stdin, stderr)
	if err != nil {
		return err
	}
	if len(pw) == 0 {
		return errors.New("empty password")
	}
	if err := authn.SetPassword(*file, user, pw); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "stx-token-server: password of %s set in %s\n", user, *file)
	if !access.ValidComponent(user) {
		fmt.Fprintf(stderr, "stx-token-server: note: %q is not a valid repository path component (lowercase letters, digits, separators), so this user owns no namespace\n", user)
	}
	return nil
}

// maxPasswordLine bounds what is read from standard input.
const maxPasswordLine = 1024

func readPassword(in *os.File, prompt io.Writer) ([]byte, error) {
	if old, ok := termios(in); ok {
		noEcho := old
		noEcho.Lflag &^= syscall.ECHO
		noEcho.Lflag |= syscall.ICANON | syscall.ISIG
		setTermios(in, &noEcho)
		defer setTermios(in, &old)
		var pw [2][]byte
		for i, p := range []string{"Password: ", "Again: "} {
			fmt.Fprint(prompt, p)
			line, err := readLine(in)
			fmt.Fprintln(prompt)
			if err != nil {
				return nil, err
			}
			pw[i] = line
		}
		if !bytes.Equal(pw[0], pw[1]) {
			return nil, errors.New("the passwords do not match")
		}
		return pw[0], nil
	}
	return readLine(in)
}

func readLine(in io.Reader) ([]byte, error) {
	r := bufio.NewReaderSize(io.LimitReader(in, maxPasswordLine+1), maxPasswordLine+1)
	line, err := r.ReadBytes('\n')
	if err != nil && !(errors.Is(err, io.EOF) && len(line) > 0) {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("no password on standard input")
		}
		return nil, err
	}
	if len(line) > maxPasswordLine {
		return nil, fmt.Errorf("password longer than %d bytes", maxPasswordLine)
	}
	return bytes.TrimRight(line, "\r\n"), nil
}

// termios reads the terminal settings of f; ok is false when f is not a
// terminal. Linux only, like the rest of the daemon.
func termios(f *os.File) (t syscall.Termios, ok bool) {
	_, _, e := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), syscall.TCGETS, uintptr(unsafe.Pointer(&t)))
	return t, e == 0
}

func setTermios(f *os.File, t *syscall.Termios) {
	syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), syscall.TCSETS, uintptr(unsafe.Pointer(t)))
}
