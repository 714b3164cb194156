package membership

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestScenarios runs testdata/liveness.txt: commands and the output each
// must produce. See the file's header for the format.
func TestScenarios(t *testing.T) {
	f, err := os.Open("testdata/liveness.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	var (
		table   *Table
		cmdLine int
		cmd     string
		want    []string
		checked int
	)
	epoch := time.Unix(1_000_000, 0)
	format := func(m Member) string {
		since := func(ts time.Time) string { return fmt.Sprintf("%gs", ts.Sub(epoch).Seconds()) }
		return fmt.Sprintf("%s %s since=%s seen=%s changed=%s", m.ID, m.State, since(m.Since), since(m.LastSeen), since(m.Changed))
	}
	run := func() {
		if cmd == "" {
			return
		}
		f := strings.Fields(cmd)
		var got []string
		switch {
		case f[0] == "config":
			var cfg Config
			for _, kv := range f[1:] {
				k, v, _ := strings.Cut(kv, "=")
				d, err := time.ParseDuration(v)
				if err != nil {
					t.Fatalf("line %d: %v", cmdLine, err)
				}
				switch k {
				case "suspect":
					cfg.SuspectAfter = d
				case "leave":
					cfg.LeaveAfter = d
				case "forget":
					cfg.ForgetAfter = d
				}
			}
			table, err = New(cfg)
			if err != nil {
				t.Fatalf("line %d: %v", cmdLine, err)
			}
		case f[0] == "members" || f[0] == "snapshot":
			ms := table.Members()
			if f[0] == "snapshot" {
				ms = table.Snapshot()
			}
			for _, m := range ms {
				got = append(got, format(m))
			}
		case f[0] == "at" && len(f) >= 3:
			d, err := time.ParseDuration(f[1])
			if err != nil {
				t.Fatalf("line %d: %v", cmdLine, err)
			}
			now := epoch.Add(d)
			var changes []Change
			switch f[2] {
			case "observe", "remove":
				op := table.Observe
				if f[2] == "remove" {
					op = table.Remove
				}
				if c, ok := op(f[3], now); ok {
					changes = append(changes, c)
				}
			case "expire":
				changes = table.Expire(now)
			default:
				t.Fatalf("line %d: unknown command %q", cmdLine, cmd)
			}
			for _, c := range changes {
				got = append(got, c.Type.String()+" "+format(c.Member))
			}
		default:
			t.Fatalf("line %d: unknown command %q", cmdLine, cmd)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("line %d: %s (-want +got):\n%s", cmdLine, cmd, diff)
		}
		checked++
		cmd, want = "", nil
	}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "  "):
			want = append(want, strings.TrimSpace(line))
		default:
			run()
			cmd, cmdLine = line, n
		}
	}
	run()
	if checked < 20 {
		t.Errorf("only %d commands checked; is testdata/liveness.txt complete?", checked)
	}
}

func TestConfig(t *testing.T) {
	tests := []struct {
		cfg     Config
		wantErr bool
	}{
		{Config{}, false},
		{Config{SuspectAfter: time.Second, LeaveAfter: 2 * time.Second}, false},
		{Config{SuspectAfter: time.Minute}, true}, // longer than the default LeaveAfter
		{Config{SuspectAfter: time.Second, LeaveAfter: time.Second}, true},
		{Config{ForgetAfter: -time.Second}, true},
	}
	for _, tt := range tests {
		if err := tt.cfg.Validate(); (err != nil) != tt.wantErr {
			t.Errorf("%+v.Validate() = %v, want error %v", tt.cfg, err, tt.wantErr)
		}
	}
}

func TestNextExpiry(t *testing.T) {
	table, err := New(Config{SuspectAfter: 10 * time.Second, LeaveAfter: 30 * time.Second, ForgetAfter: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := table.NextExpiry(); ok {
		t.Error("NextExpiry of an empty table: ok")
	}
	t0 := time.Unix(0, 0)
	table.Observe("a", t0)
	table.Observe("b", t0.Add(3*time.Second))
	steps := []struct {
		now  time.Duration
		want time.Duration
	}{
		{0, 10 * time.Second},                // a suspected
		{10 * time.Second, 13 * time.Second}, // b suspected
		{13 * time.Second, 30 * time.Second}, // a leaves
		{30 * time.Second, 33 * time.Second}, // b leaves
		{33 * time.Second, 90 * time.Second}, // a forgotten
	}
	for _, s := range steps {
		table.Expire(t0.Add(s.now))
		got, ok := table.NextExpiry()
		if !ok || got.Sub(t0) != s.want {
			t.Errorf("after Expire at %v: NextExpiry = %v, %v; want %v", s.now, got.Sub(t0), ok, s.want)
		}
	}
}
