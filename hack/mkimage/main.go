// Command mkimage writes the offline busybox image that the examples and the
// demo use, as an OCI archive, from the host's busybox-static binary.
//
//	go run ./hack/mkimage -o busybox.tar
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/podsup/podsup/internal/testenv"
)

func main() {
	out := flag.String("o", "busybox.tar", "archive to write")
	ref := flag.String("ref", testenv.BusyboxRef, "image reference")
	flag.Parse()
	b, err := testenv.Busybox()
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
	b.Ref = *ref
	f, err := os.Create(*out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
	if err := b.WriteArchive(f); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
	if err := f.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
	fmt.Printf("wrote %s (%s)\n", *out, b.Ref)
}
