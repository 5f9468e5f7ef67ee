// Package usage owns "stx-registry usage": how many bytes each namespace
// (a repository name's first path component) holds, so that an operator
// sees who filled the storage. A blob linked by several repositories of
// one namespace counts once in it; a blob shared by two namespaces counts
// in both, so the namespaces can add up to more than the total, which
// counts every stored blob once.
package usage

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"

	"stx-registry/registry/gc"
)

// Namespace is one namespace's share of the storage.
type Namespace struct {
	Name         string
	Repositories int
	Blobs        int
	Bytes        int64
}

// Report is the storage use of a root.
type Report struct {
	Namespaces []Namespace // largest first
	Blobs      int         // every stored blob
	Bytes      int64       // their size
}

// Measure reads the storage root at rootDir.
func Measure(rootDir string) (Report, error) {
	links, err := gc.ReadLinks(rootDir)
	if err != nil {
		return Report{}, err
	}
	sizes, err := gc.BlobSizes(rootDir)
	if err != nil {
		return Report{}, err
	}
	type acc struct {
		repos int
		blobs map[string]bool
	}
	byNS := map[string]*acc{}
	for repo, l := range links {
		ns, _, _ := strings.Cut(repo, "/")
		a := byNS[ns]
		if a == nil {
			a = &acc{blobs: map[string]bool{}}
			byNS[ns] = a
		}
		a.repos++
		for _, d := range append(slices.Clone(l.Manifests), l.Blobs...) {
			if _, stored := sizes[d]; stored {
				a.blobs[d] = true
			}
		}
	}
	var r Report
	for ns, a := range byNS {
		n := Namespace{Name: ns, Repositories: a.repos, Blobs: len(a.blobs)}
		for d := range a.blobs {
			n.Bytes += sizes[d]
		}
		r.Namespaces = append(r.Namespaces, n)
	}
	slices.SortFunc(r.Namespaces, func(a, b Namespace) int {
		return cmp.Or(cmp.Compare(b.Bytes, a.Bytes), cmp.Compare(a.Name, b.Name))
	})
	for _, s := range sizes {
		r.Blobs++
		r.Bytes += s
	}
	return r, nil
}

// Write prints r as a table: namespace, repositories, blobs, bytes and
// the same in binary units, then the total.
func (r Report) Write(w io.Writer) error {
	_, err := fmt.Fprintf(w, "%-32s %6s %7s %14s %10s\n", "NAMESPACE", "REPOS", "BLOBS", "BYTES", "SIZE")
	for _, n := range r.Namespaces {
		if err == nil {
			_, err = fmt.Fprintf(w, "%-32s %6d %7d %14d %10s\n", n.Name, n.Repositories, n.Blobs, n.Bytes, Human(n.Bytes))
		}
	}
	if err == nil {
		_, err = fmt.Fprintf(w, "%-32s %6s %7d %14d %10s\n", "total", "", r.Blobs, r.Bytes, Human(r.Bytes))
	}
	return err
}

// Human writes n bytes in binary units, as df -h does: 1.5G, 300M, 12K.
func Human(n int64) string {
	const units = "KMGTPE"
	if n < 1024 {
		return fmt.Sprintf("%dB", n)
	}
	f, i := float64(n)/1024, 0
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	return fmt.Sprintf("%.1f%c", f, units[i])
}
