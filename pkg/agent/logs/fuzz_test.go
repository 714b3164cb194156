package logs

import (
	"bytes"
	"context"
	"math"
	"os"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	hubv1 "github.com/edgefabric/edgefabric/pkg/apis/hub/v1"
)

// FuzzParseRecord parses arbitrary bytes as one CRI log record: it never
// panics, and content it returns is the end of the record.
func FuzzParseRecord(f *testing.F) {
	f.Add([]byte("2026-11-27T00:00:00.123456789Z stdout F hello"))
	f.Add([]byte("2026-11-27T00:00:00Z stderr P part"))
	f.Add([]byte("2026-11-27T00:00:00Z stdout X bad tag"))
	f.Add([]byte("not a time stdout F x"))
	f.Add([]byte("2026-11-27T00:00:00Z"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, stream, _, content, ok := parseRecord(b)
		if !ok {
			return
		}
		if stream != 0 && stream != 1 {
			t.Fatalf("stream %d", stream)
		}
		if !bytes.HasSuffix(b, content) {
			t.Fatalf("content %q is not the end of %q", content, b)
		}
	})
}

// FuzzRead reads an arbitrary log file with arbitrary options, as a request
// from the hub may ask: Read never panics and never writes more than
// LimitBytes.
func FuzzRead(f *testing.F) {
	f.Add([]byte("2026-11-27T00:00:00Z stdout F one\n2026-11-27T00:00:01Z stderr P tw\n2026-11-27T00:00:02Z stderr F o\n"), int64(1), int64(0), int64(0), true)
	f.Add([]byte("2026-11-27T00:00:00Z stdout P unterminated"), int64(math.MaxInt64), int64(3), int64(math.MaxInt64), false)
	f.Add([]byte("garbage\n\n\n2026-11-27T00:00:00Z stdout F x\n"), int64(-1), int64(math.MaxInt64), int64(-1), true)
	f.Add([]byte{}, int64(math.MinInt64), int64(-1), int64(1), false)
	now := time.Date(2026, 11, 27, 0, 0, 1, 0, time.UTC)
	f.Fuzz(func(t *testing.T, data []byte, tail, limit, sinceSeconds int64, timestamps bool) {
		opts, err := OptionsFrom(&hubv1.LogOptions{TailLines: tail, LimitBytes: limit, SinceSeconds: sinceSeconds, Timestamps: timestamps}, now)
		if err != nil {
			return
		}
		lf := Files{Dir: t.TempDir(), Prefix: "pod_app."}
		if err := os.WriteFile(lf.Current(0), data, 0o600); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if err := Read(context.Background(), lf, opts, &out); err != nil {
			t.Fatalf("Read: %v", err)
		}
		if limit > 0 && int64(out.Len()) > limit {
			t.Fatalf("wrote %d bytes, limit %d", out.Len(), limit)
		}
	})
}

// FuzzOptionsFrom checks arbitrary log options: OptionsFrom never panics,
// and what it accepts Read can use as is.
func FuzzOptionsFrom(f *testing.F) {
	f.Add(int64(-1), int64(0), int64(0), int64(0), int32(0), false)
	f.Add(int64(math.MaxInt64), int64(math.MaxInt64), int64(math.MaxInt64), int64(math.MaxInt64), int32(-1), true)
	f.Add(int64(10), int64(-1), int64(-1), int64(-62135596801), int32(0), true)
	f.Fuzz(func(t *testing.T, tail, since, limit, secs int64, nanos int32, withTime bool) {
		lo := &hubv1.LogOptions{TailLines: tail, SinceSeconds: since, LimitBytes: limit}
		if withTime {
			lo.SinceTime = &timestamppb.Timestamp{Seconds: secs, Nanos: nanos}
		}
		o, err := OptionsFrom(lo, time.Unix(1e9, 0))
		if err != nil {
			return
		}
		if o.LimitBytes < 0 || o.TailLines < -1 {
			t.Fatalf("accepted %+v", o)
		}
	})
}
