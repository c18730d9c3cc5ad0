package tokenpipe_test

import (
	"testing"

	"golang.org/x/sys/windows"
)

// benchBareSyscalls is the floor for BenchmarkWriteRead: WriteFile and
// ReadFile of one byte on an anonymous pipe, with nothing around them but
// Go's system-call path.
func benchBareSyscalls(b *testing.B) {
	var r, w windows.Handle
	if err := windows.CreatePipe(&r, &w, nil, 0); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { windows.CloseHandle(r); windows.CloseHandle(w) })
	buf := make([]byte, 1)
	var n uint32
	b.ReportAllocs()
	for b.Loop() {
		if err := windows.WriteFile(w, buf, &n, nil); err != nil {
			b.Fatal(err)
		}
		if err := windows.ReadFile(r, buf, &n, nil); err != nil {
			b.Fatal(err)
		}
	}
}
