//go:build unix

package tokenpipe_test

import (
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// benchBareSyscalls is the floor for BenchmarkWriteRead: write(2) and read(2)
// of one byte on a non-blocking pipe, with nothing around them but Go's
// system-call path.
func benchBareSyscalls(b *testing.B) {
	p := nonblockingPipe(b)
	buf := make([]byte, 1)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := syscall.Write(p[1], buf); err != nil {
			b.Fatal(err)
		}
		if _, err := syscall.Read(p[0], buf); err != nil {
			b.Fatal(err)
		}
	}
}

// nonblockingPipe makes a non-blocking pipe, closed after the benchmark.
func nonblockingPipe(b *testing.B) [2]int {
	b.Helper()
	var p [2]int
	if err := unix.Pipe(p[:]); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { unix.Close(p[0]); unix.Close(p[1]) })
	for _, fd := range p {
		if err := unix.SetNonblock(fd, true); err != nil {
			b.Fatal(err)
		}
	}
	return p
}
