package tokenpipe_test

import (
	"syscall"
	"testing"
	"unsafe"
)

func init() {
	benchRawSyscalls = func(b *testing.B) {
		p := nonblockingPipe(b)
		buf := make([]byte, 1)
		b.ReportAllocs()
		for b.Loop() {
			if _, _, e := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(p[1]), uintptr(unsafe.Pointer(&buf[0])), 1); e != 0 {
				b.Fatal(e)
			}
			if _, _, e := syscall.RawSyscall(syscall.SYS_READ, uintptr(p[0]), uintptr(unsafe.Pointer(&buf[0])), 1); e != 0 {
				b.Fatal(e)
			}
		}
	}
}
