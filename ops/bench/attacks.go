package main

// A correct login while the token server is under attack (issue 10).

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"stx-registry/shared/testrig"
)

// attackLogins is how many correct, uncached logins are timed under each
// attack; each is a user of its own, so each pays bcrypt.
const attackLogins = 10

// fromAddr is a keep-alive client whose connections come from the
// loopback address ip, so that the token server sees another client.
func (w *workspace) fromAddr(ip string) (*http.Client, error) {
	c, err := w.client(false)
	if err != nil {
		return nil, err
	}
	tr := c.Transport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: requestTimeout, LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}).DialContext
	c.Transport = tr
	return c, nil
}

// benchAttacks times correct logins from 127.0.0.1 while bad logins come
// from other addresses: a flood of made-up names, a burst of 500 clients
// with bad passwords for distinct users, and one user's bad-password loop.
// It reports the p99 of each (the issue asks for 1 s at most).
func (w *workspace) benchAttacks(ctx context.Context, s settings, rep *report) error {
	attacks := []struct {
		name    string
		from    string
		workers int
		user    func(worker, i int) string
	}{
		{"none", "", 0, nil},
		{"flood", "127.0.0.2", 4, func(wk, i int) string { return fmt.Sprintf("made-up-%d-%d", wk, i) }},
		{"burst", "127.0.0.3", s.parallelTokens, func(wk, i int) string { return fmt.Sprintf("burst-%d-%d", wk, i) }},
		{"loop", "127.0.0.4", 8, func(int, int) string { return "mallory" }},
	}
	password := testrig.RandomHex(16)
	good, err := w.client(false)
	if err != nil {
		return err
	}
	for _, at := range attacks {
		users := make([]string, attackLogins)
		for i := range users {
			users[i] = fmt.Sprintf("victim-%s-%d", at.name, i)
			if err := testrig.Passwd(ctx, w.layout.Bin.TokenServer, w.layout.Users(), users[i], password); err != nil {
				return err
			}
		}
		actx, stop := context.WithCancel(ctx)
		var wg sync.WaitGroup
		if at.workers > 0 {
			bad, err := w.fromAddr(at.from)
			if err != nil {
				stop()
				return err
			}
			for wk := range at.workers {
				wg.Go(func() {
					for i := 0; actx.Err() == nil; i++ {
						getToken(actx, bad, w.tokenQuery(""), at.user(wk, i), "wrong-"+testrig.RandomHex(4))
					}
				})
			}
			time.Sleep(time.Second) // let the attack get going
		}
		var lat []time.Duration
		var failed error
		for _, u := range users {
			t0 := time.Now()
			if _, err := getToken(ctx, good, w.tokenQuery(""), u, password); err != nil && failed == nil {
				failed = fmt.Errorf("a correct login under the %s attack: %w", at.name, err)
			}
			lat = append(lat, time.Since(t0))
		}
		stop()
		wg.Wait()
		if failed != nil {
			return failed
		}
		slices.Sort(lat)
		rep.add("login_p99_under_"+at.name, "ms", percentile(lat, 99))
	}
	return nil
}
