//go:build unix || windows

package tokenpipe_test

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/tokenpipe/tokenpipe"
)

// Every benchmark has a tokenpipe and an os.Pipe variant doing the same work,
// so that one run shows the ratio.

// One goroutine writes a token and reads it back.
func BenchmarkWriteRead(b *testing.B) {
	b.Run("impl=tokenpipe", func(b *testing.B) {
		r, w := mustMake(b)
		b.ReportAllocs()
		for b.Loop() {
			if err := w.TokenWrite(1); err != nil {
				b.Fatal(err)
			}
			if _, err := r.TokenRead(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("impl=os.Pipe", func(b *testing.B) {
		r, w := osPipe(b)
		buf := make([]byte, 1)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := w.Write(buf); err != nil {
				b.Fatal(err)
			}
			if _, err := r.Read(buf); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("impl=syscall", benchBareSyscalls)
	if benchRawSyscalls != nil {
		b.Run("impl=rawsyscall", benchRawSyscalls)
	}
}

// benchRawSyscalls, where set (Linux), is benchBareSyscalls with raw system
// calls, which tokenpipe does not make (see sysFile): the floor below that
// one, to show what Go's system-call path costs.
var benchRawSyscalls func(b *testing.B)

// Two goroutines pass a token back and forth over two pipes. Run it with
// -cpu 1,2: with one P (a container with a one-CPU quota) a reader that
// spins before it parks only delays the goroutine that would answer. Besides
// the time, it reports the CPU time the process spent per round trip
// (cpu-ns/op): a reader that spins is fast at the cost of CPU, which on a
// busy machine other work needs.
func BenchmarkRoundTrip(b *testing.B) {
	b.Run("impl=tokenpipe", func(b *testing.B) {
		pingR, pingW := mustMake(b)
		pongR, pongW := mustMake(b)
		go echoTokens(pingR, pongW)
		reportCPU(b, pingPongTokens(b, pingW, pongR))
	})
	b.Run("impl=os.Pipe", func(b *testing.B) {
		pingR, pingW := osPipe(b)
		pongR, pongW := osPipe(b)
		go echoBytes(pingR, pongW)
		reportCPU(b, pingPongBytes(b, pingW, pongR))
	})
}

// A token goes to a child process, which sends it back: the handshake's cost
// between two processes. The parent must not allocate. cpu-ns/op is the CPU
// time of both processes per round trip, the child's start and exit
// included (the same Go program for both implementations).
func BenchmarkRoundTripProcess(b *testing.B) {
	b.Run("impl=tokenpipe", func(b *testing.B) {
		pingR, pingW := mustMake(b)
		pongR, pongW := mustMake(b)
		cmd := helperCommand(b, "echo-tokens")
		if err := pingR.ExportTo(cmd, "TOKENPIPE_BENCH_IN"); err != nil {
			b.Fatal(err)
		}
		if err := pongW.ExportTo(cmd, "TOKENPIPE_BENCH_OUT"); err != nil {
			b.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		pingR.Close()
		pongW.Close()
		cpu := pingPongTokens(b, pingW, pongR)
		if err := cmd.Wait(); err != nil {
			b.Fatal(err)
		}
		reportCPU(b, cpu+childCPU(cmd))
	})
	b.Run("impl=os.Pipe", func(b *testing.B) {
		pingR, pingW := osPipe(b)
		pongR, pongW := osPipe(b)
		cmd := helperCommand(b, "echo-bytes")
		cmd.Stdin, cmd.Stdout = pingR, pongW
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		pingR.Close()
		pongW.Close()
		cpu := pingPongBytes(b, pingW, pongR)
		if err := cmd.Wait(); err != nil {
			b.Fatal(err)
		}
		reportCPU(b, cpu+childCPU(cmd))
	})
}

func init() {
	register("echo-tokens", func() int {
		in, err := tokenpipe.FromEnv("TOKENPIPE_BENCH_IN")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		out, err := tokenpipe.FromEnv("TOKENPIPE_BENCH_OUT")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		echoTokens(in, out)
		return 0
	})
	register("echo-bytes", func() int {
		echoBytes(os.Stdin, os.Stdout)
		return 0
	})
}

// pingPongTokens is the measured loop of the round trips: a token out on
// ping, its echo back on pong. It closes ping, which ends the echo, and
// returns the CPU time this process spent in the loop. The first exchange,
// which waits for the echo to start, is not timed (b.Loop resets the timer).
func pingPongTokens(b *testing.B, ping, pong *tokenpipe.TokenPipeEnd) time.Duration {
	ping.TokenWrite(1)
	if _, err := pong.TokenRead(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	cpu0 := tokenpipe.ProcessCPUTime(b)
	for b.Loop() {
		ping.TokenWrite(1)
		if _, err := pong.TokenRead(); err != nil {
			b.Fatal(err)
		}
	}
	cpu := tokenpipe.ProcessCPUTime(b) - cpu0
	ping.Close()
	return cpu
}

// pingPongBytes is pingPongTokens for files.
func pingPongBytes(b *testing.B, ping, pong *os.File) time.Duration {
	buf := make([]byte, 1)
	ping.Write(buf)
	if _, err := pong.Read(buf); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	cpu0 := tokenpipe.ProcessCPUTime(b)
	for b.Loop() {
		ping.Write(buf)
		if _, err := pong.Read(buf); err != nil {
			b.Fatal(err)
		}
	}
	cpu := tokenpipe.ProcessCPUTime(b) - cpu0
	ping.Close()
	return cpu
}

// reportCPU reports cpu, spent over the b.N operations, per operation.
func reportCPU(b *testing.B, cpu time.Duration) {
	b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/op")
}

// childCPU returns the CPU time, user and system, of a child cmd waited for.
func childCPU(cmd *exec.Cmd) time.Duration {
	return cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
}

// echoTokens sends back every token until end of stream, then closes both.
func echoTokens(in, out *tokenpipe.TokenPipeEnd) {
	defer in.Close()
	defer out.Close()
	for {
		tok, err := in.TokenRead()
		if err != nil || out.TokenWrite(tok) != nil {
			return
		}
	}
}

// echoBytes is echoTokens for files.
func echoBytes(in io.ReadCloser, out io.WriteCloser) {
	defer in.Close()
	defer out.Close()
	buf := make([]byte, 1)
	for {
		if _, err := in.Read(buf); err != nil {
			return
		}
		if _, err := out.Write(buf); err != nil {
			return
		}
	}
}

// A writer sends a token about once a millisecond, far too seldom for a
// reader's spin before parking to pay: what counts is the CPU time the
// process spends per token (cpu-ns/op), not the wall time (ns/op, which is
// the writer's pace).
func BenchmarkSlowWriter(b *testing.B) {
	const pace = time.Millisecond
	b.Run("impl=tokenpipe", func(b *testing.B) {
		r, w := mustMake(b)
		go func() {
			for range b.N {
				time.Sleep(pace)
				if w.TokenWrite(1) != nil {
					return
				}
			}
		}()
		perToken(b, func() error { _, err := r.TokenRead(); return err })
	})
	b.Run("impl=os.Pipe", func(b *testing.B) {
		r, w := osPipe(b)
		go func() {
			buf := []byte{1}
			for range b.N {
				time.Sleep(pace)
				if _, err := w.Write(buf); err != nil {
					return
				}
			}
		}()
		buf := make([]byte, 1)
		perToken(b, func() error { _, err := r.Read(buf); return err })
	})
}

// perToken calls read b.N times and reports the process's CPU time per call.
func perToken(b *testing.B, read func() error) {
	cpu0 := tokenpipe.ProcessCPUTime(b)
	b.ResetTimer()
	for range b.N {
		if err := read(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	reportCPU(b, tokenpipe.ProcessCPUTime(b)-cpu0)
}

func BenchmarkMakeClose(b *testing.B) {
	b.Run("impl=tokenpipe", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			p, err := tokenpipe.Make()
			if err != nil {
				b.Fatal(err)
			}
			p.Close()
		}
	})
	b.Run("impl=os.Pipe", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			r, w, err := os.Pipe()
			if err != nil {
				b.Fatal(err)
			}
			r.Close()
			w.Close()
		}
	})
}

func osPipe(b *testing.B) (r, w *os.File) {
	b.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { r.Close(); w.Close() })
	return r, w
}
