//go:build unix || windows

package tokenpipe_test

import (
	"bufio"
	"context"
	"os"
	"testing"
	"time"
)

func init() {
	// r2-trickle writes token arg1, says "written" on standard output, then
	// writes 'x' every 15 ms until the pipe breaks: a child that never
	// finishes its report.
	register("r2-trickle", func() int {
		e := childEndNamed(readyEnv)
		tok := byte(0)
		if os.Args[1] == "1" {
			tok = 1
		}
		if err := e.TokenWrite(tok); err != nil {
			return helperExit(3, err)
		}
		os.Stdout.WriteString("written\n")
		for e.TokenWrite('x') == nil {
			time.Sleep(15 * time.Millisecond)
		}
		holdStdin()
		return 0
	})
}

// trickleAfterCancel cancels ctx once the helper has written its token and
// reports how long StartAndWait took from then on; after hangGuard it kills
// the child to get StartAndWait back, and says so.
func trickleAfterCancel(t *testing.T, token string) (msg string, err error, hung bool) {
	cmd, _ := hsCommand(t, "r2-trickle", token)
	stdout, perr := cmd.StdoutPipe()
	if perr != nil {
		t.Fatal(perr)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := goStartAndWait(ctx, cmd)
	if line, rerr := bufio.NewReader(stdout).ReadString('\n'); line != "written\n" {
		t.Fatalf("helper: %q, %v", line, rerr)
	}
	cancel()
	var r started
	select {
	case r = <-done:
	case <-time.After(hangGuard):
		hung = true
		cmd.Process.Kill() // ends the trickle: end of stream
		r = <-done
	}
	return r.msg, r.err, hung
}

// ctx is the caller's bound on StartAndWait: after it ends, only what the
// pipe holds is read, without waiting, so a child that goes on writing a byte
// every 15 ms cannot hold StartAndWait. (It could, for minutes: the drain
// waited up to 100 ms for each byte, bounded per byte, never in total.)
func TestStartAndWaitTrickleAfterCtx(t *testing.T) {
	for _, token := range []string{"1", "0"} {
		t.Run("token "+token, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			msg, err, hung := trickleAfterCancel(t, token)
			if hung {
				t.Errorf("StartAndWait had not returned %v after ctx ended (a child writing a byte every 15 ms); it returned %d bytes (err %v) once the child was killed", time.Since(start).Round(time.Second), len(msg), err != nil)
			}
		})
	}
}
