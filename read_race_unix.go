//go:build unix && race

package tokenpipe

import "syscall"

// readDirect reads a token from fd with one read(2), through rs if the read
// is sole (see enter), or a scratch of its own: under the race detector
// syscall.Read hands its buffer to the detector, so a buffer on the stack
// would escape to the heap and cost an allocation a token
// (TestZeroAllocsPerToken).
func readDirect(fd int, rs *scratch, sole bool) (byte, int, error) {
	b := rs
	if !sole {
		b = new(scratch)
	}
	n, err := syscall.Read(fd, b.b[:])
	return b.b[0], n, err
}
