package ldisc

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"
)

func TestLineInput(t *testing.T) {
	tests := []struct {
		name       string
		input      []string // fed in turn
		wantEcho   string
		wantData   string
		wantEOF    bool
		wantIntr   bool
		wantUnread string // of the last input
	}{
		{name: "line with CR", input: []string{"echo hi\r"}, wantEcho: "echo hi\r\n", wantData: "echo hi\n"},
		{name: "line with NL", input: []string{"a\n"}, wantEcho: "a\r\n", wantData: "a\n"},
		{name: "no line yet", input: []string{"partial"}, wantEcho: "partial"},
		{name: "line over two reads", input: []string{"ec", "ho\r"}, wantEcho: "echo\r\n", wantData: "echo\n"},
		{name: "two lines", input: []string{"a\rb\r"}, wantEcho: "a\r\nb\r\n", wantData: "a\nb\n"},
		{name: "empty line", input: []string{"\r"}, wantEcho: "\r\n", wantData: "\n"},
		{name: "DEL erases", input: []string{"ab\x7fc\r"}, wantEcho: "ab\b \bc\r\n", wantData: "ac\n"},
		{name: "backspace erases", input: []string{"ab\bc\r"}, wantEcho: "ab\b \bc\r\n", wantData: "ac\n"},
		{name: "erase at line start", input: []string{"\x7f\x7fx\r"}, wantEcho: "x\r\n", wantData: "x\n"},
		{name: "erase a UTF-8 character", input: []string{"aé\x7f\r"}, wantEcho: "aé\b \b\r\n", wantData: "a\n"},
		{name: "erase a control character", input: []string{"a\x1b\x7f\r"}, wantEcho: "a^[\b \b\b \b\r\n", wantData: "a\n"},
		{name: "erase across reads", input: []string{"abc", "\x7f\r"}, wantEcho: "abc\b \b\r\n", wantData: "ab\n"},
		{name: "kill line", input: []string{"abc\x15x\r"}, wantEcho: "abc\b \b\b \b\b \bx\r\n", wantData: "x\n"},
		{name: "control characters echo as ^X", input: []string{"\x1b[A\r"}, wantEcho: "^[[A\r\n", wantData: "\x1b[A\n"},
		{name: "tab echoes as is", input: []string{"a\tb\r"}, wantEcho: "a\tb\r\n", wantData: "a\tb\n"},
		{name: "EOF at line start", input: []string{"\x04rest"}, wantEOF: true, wantUnread: "rest"},
		{name: "EOF after a line", input: []string{"a\r\x04"}, wantEcho: "a\r\n", wantData: "a\n", wantEOF: true},
		{name: "^D mid-line passes the line", input: []string{"ab\x04"}, wantEcho: "ab", wantData: "ab"},
		{name: "^D mid-line, then at start", input: []string{"ab\x04\x04"}, wantEcho: "ab", wantData: "ab", wantEOF: true},
		{name: "interrupt", input: []string{"abc\x03more\r"}, wantEcho: "abc^C\r\n", wantIntr: true, wantUnread: "more\r"},
		{name: "interrupt keeps earlier lines", input: []string{"a\r\x03"}, wantEcho: "a\r\n^C\r\n", wantData: "a\n", wantIntr: true},
		{name: "long line is cut", input: []string{strings.Repeat("x", MaxLine+10) + "\r"},
			wantEcho: strings.Repeat("x", MaxLine) + "\r\n", wantData: strings.Repeat("x", MaxLine) + "\n"},
		{name: "NUL byte", input: []string{"\x00\r"}, wantEcho: "^@\r\n", wantData: "\x00\n"},
		{name: "high bytes", input: []string{"\xff\xfe\x7f\r"}, wantEcho: "\xff\xfe\b \b\r\n", wantData: "\xff\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var l Line
			var echo, data bytes.Buffer
			var r Result
			for _, in := range tt.input {
				r = l.Input([]byte(in))
				echo.Write(r.Echo)
				data.Write(r.Data)
			}
			if echo.String() != tt.wantEcho {
				t.Errorf("echo: got %q, want %q", echo.String(), tt.wantEcho)
			}
			if data.String() != tt.wantData {
				t.Errorf("data: got %q, want %q", data.String(), tt.wantData)
			}
			if r.EOF != tt.wantEOF || r.Interrupt != tt.wantIntr {
				t.Errorf("EOF, interrupt: got %v, %v; want %v, %v", r.EOF, r.Interrupt, tt.wantEOF, tt.wantIntr)
			}
			last := tt.input[len(tt.input)-1]
			if unread := last[r.Consumed:]; unread != tt.wantUnread {
				t.Errorf("unread: got %q, want %q", unread, tt.wantUnread)
			}
		})
	}
}

func TestOutput(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"hi", "hi"},
		{"hi\n", "hi\r\n"},
		{"a\nb\n\n", "a\r\nb\r\n\r\n"},
		{"already\r\n", "already\r\r\n"}, // as ONLCR does
	}
	for _, tt := range tests {
		if got := string(Output([]byte(tt.in))); got != tt.want {
			t.Errorf("Output(%q): got %q, want %q", tt.in, got, tt.want)
		}
	}
}

type syncBuffer struct {
	mu chan struct{}
	b  bytes.Buffer
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{mu: make(chan struct{}, 1)} }

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu <- struct{}{}
	defer func() { <-s.mu }()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu <- struct{}{}
	defer func() { <-s.mu }()
	return s.b.String()
}

// TestSession runs a line-answering command behind a session.
func TestSession(t *testing.T) {
	tests := []struct {
		name     string
		keys     string
		wantTerm string
		wantIntr bool
	}{
		{name: "lines then EOF", keys: "one\rtwo\r\x04", wantTerm: "one\r\n> one\r\ntwo\r\n> two\r\nbye\r\n"},
		{name: "input ends", keys: "one\r", wantTerm: "one\r\n> one\r\nbye\r\n"},
		{name: "interrupt", keys: "one\rtw\x03three\r", wantTerm: "one\r\n> one\r\ntw^C\r\n", wantIntr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			term := newSyncBuffer()
			keys, keysW := io.Pipe()
			interrupted := make(chan struct{})
			s := New(keys, term, func() { close(interrupted) })
			done := make(chan struct{})
			go func() { s.Run(); close(done) }()
			cmdDone := make(chan struct{})
			go func() { // the command: answers each line, says bye at EOF
				defer close(cmdDone)
				buf := make([]byte, 100)
				var line []byte
				for {
					n, err := s.Stdin().Read(buf)
					for _, c := range buf[:n] {
						line = append(line, c)
						if c == '\n' {
							_, _ = io.WriteString(s.Stdout(), "> "+string(line))
							line = nil
						}
					}
					if err != nil {
						if !s.Interrupted() {
							_, _ = io.WriteString(s.Stdout(), "bye\n")
						}
						return
					}
				}
			}()
			// Keys one at a time, as a user types them.
			for k := range len(tt.keys) {
				if _, err := keysW.Write([]byte{tt.keys[k]}); err != nil {
					break // the session stopped reading (^D, ^C)
				}
				if tt.keys[k] == '\r' {
					want := strings.Count(tt.keys[:k+1], "\r")
					deadline := time.Now().Add(10 * time.Second)
					for strings.Count(term.String(), "> ") < want && time.Now().Before(deadline) {
						time.Sleep(time.Millisecond)
					}
				}
				if s.Interrupted() {
					break
				}
			}
			keysW.Close()
			select {
			case <-cmdDone:
			case <-time.After(10 * time.Second):
				t.Fatal("the command's input never ended")
			}
			<-done
			if got := term.String(); got != tt.wantTerm {
				t.Errorf("terminal: got %q, want %q", got, tt.wantTerm)
			}
			if s.Interrupted() != tt.wantIntr {
				t.Errorf("Interrupted: got %v, want %v", s.Interrupted(), tt.wantIntr)
			}
			if tt.wantIntr {
				select {
				case <-interrupted:
				default:
					t.Error("onInterrupt was not called")
				}
			}
		})
	}
}

func FuzzLine(f *testing.F) {
	f.Add([]byte("echo hi\r\x7f\x15\x04\x03é"))
	f.Fuzz(func(t *testing.T, p []byte) {
		var l Line
		for len(p) > 0 {
			r := l.Input(p)
			if r.Consumed == 0 || r.Consumed > len(p) {
				t.Fatalf("consumed %d of %d", r.Consumed, len(p))
			}
			if len(l.buf) > MaxLine {
				t.Fatalf("line of %d bytes", len(l.buf))
			}
			p = p[r.Consumed:]
		}
	})
}
