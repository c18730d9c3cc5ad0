package tokenpipe_test

import (
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tokenpipe/tokenpipe"
)

// An interrupt on an end (setInterrupted, what TokenReadContext does when
// its context ends) cancels a WriteFile under way on the handle, which may
// have put part of its bytes into the pipe: write goes on after those, and
// the reader gets every byte once. (It wrote all of them again.)
func TestInterruptedWriteWritesOnce(t *testing.T) {
	r, w := mustMake(t)
	const size = 1 << 15
	big := make([]byte, size)
	for i := range big {
		big[i] = byte(i % 251)
	}
	done := make(chan error, 1)
	go func() { done <- tokenpipe.WriteAll(w, big); w.Close() }()
	got := make([]byte, 0, 2*size)
	setInterrupted := tokenpipe.Interrupter(w)
	for i := 0; ; i++ {
		b, err := r.TokenRead()
		if err != nil {
			break
		}
		got = append(got, b)
		if i == 9999 {
			setInterrupted(true) // cancels the WriteFile under way
			time.Sleep(10 * time.Millisecond)
			setInterrupted(false)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(got) != size {
		t.Errorf("read %d bytes, wrote %d", len(got), size)
	}
	for i := range got {
		if i >= size || got[i] != byte(i%251) {
			t.Errorf("byte %d is %d, want %d: bytes repeated or lost", i, got[i], byte(i%251))
			break
		}
	}
}

// A pipe in no-wait mode cannot wait for a token: FromEnv refuses one, and a
// read on a pipe switched to that mode later says so, rather than calling
// the empty pipe broken.
func TestNoWaitPipe(t *testing.T) {
	h, _ := tokenpipe.RawPipe(t, tokenpipe.ReadEnd)
	tokenpipe.SetNoWait(t, h)
	if err := refused(t, strconv.FormatUint(uint64(h), 10)); !strings.Contains(err.Error(), "no-wait") {
		t.Errorf("error %q does not say the pipe is in no-wait mode", err)
	}

	h, _ = tokenpipe.RawPipe(t, tokenpipe.ReadEnd)
	t.Setenv(endEnv, strconv.FormatUint(uint64(h), 10))
	r, err := tokenpipe.FromEnv(endEnv)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	tokenpipe.SetNoWait(t, h)
	_, err = r.TokenRead()
	if err == nil || errors.Is(err, io.ErrClosedPipe) || err == io.EOF || !strings.Contains(err.Error(), "no-wait") {
		t.Fatalf("read of an empty pipe in no-wait mode: got %v, want an error saying no-wait", err)
	}
}

// A pipe of message type (PIPE_TYPE_MESSAGE), which a C or .NET parent may
// hand down, carries tokens as any pipe does. In message-read mode a
// one-byte ReadFile takes one byte of a longer message and fails with
// ERROR_MORE_DATA: that byte is a token, not an error (of "\x01abc" the
// reads returned three "More data available." errors, then 99). So it is
// when the mode is set after FromEnv took the handle; an empty message is
// neither a token nor end of stream; and the tokens an end writes on such a
// pipe reach a reader in message-read mode, one message each, as does
// Ready's report, whole.
func TestMessageModePipe(t *testing.T) {
	t.Run("read end in message-read mode", func(t *testing.T) {
		server, client := tokenpipe.MessagePipe(t)
		closeClient := tokenpipe.CloseOnCleanup(t, client)
		tokenpipe.WriteMessage(t, client, []byte("\x01abc"))
		r := fromEnvHandle(t, server)
		defer r.Close()
		expectTokens(t, r, "\x01abc")
		tokenpipe.WriteMessage(t, client, nil)
		tokenpipe.WriteMessage(t, client, []byte("\x02"))
		expectTokens(t, r, "\x02")
		closeClient()
		if tok, err := readWithin(t, r, hangGuard); err != io.EOF {
			t.Fatalf("read after the writer closed: got (%d, %v), want io.EOF", tok, err)
		}
	})
	t.Run("switched to message-read mode after FromEnv", func(t *testing.T) {
		server, client := tokenpipe.MessagePipe(t)
		tokenpipe.CloseOnCleanup(t, server)
		r := fromEnvHandle(t, client)
		defer r.Close()
		tokenpipe.SetMessageRead(t, client)
		tokenpipe.WriteMessage(t, server, []byte("\x05xy"))
		expectTokens(t, r, "\x05xy")
	})
	t.Run("write end", func(t *testing.T) {
		server, client := tokenpipe.MessagePipe(t)
		tokenpipe.CloseOnCleanup(t, server)
		w := fromEnvHandle(t, client)
		defer w.Close()
		for _, tok := range []byte{7, 8} {
			if err := w.TokenWrite(tok); err != nil {
				t.Fatal(err)
			}
		}
		for _, want := range []string{"\x07", "\x08"} {
			if got := tokenpipe.ReadMessage(t, server); string(got) != want {
				t.Fatalf("the peer read message %q, want %q", got, want)
			}
		}
	})
	t.Run("Ready's report is one message", func(t *testing.T) {
		server, client := tokenpipe.MessagePipe(t)
		tokenpipe.CloseOnCleanup(t, server)
		t.Setenv(endEnv, strconv.FormatUint(uint64(client), 10))
		freshReports(t)
		if err := tokenpipe.Ready(endEnv, "up"); err != nil {
			t.Fatal(err)
		}
		if got := tokenpipe.ReadMessage(t, server); string(got) != "\x01up\n" {
			t.Fatalf("the peer read message %q, want %q", got, "\x01up\n")
		}
	})
}
