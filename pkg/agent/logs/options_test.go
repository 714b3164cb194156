package logs

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	hubv1 "github.com/edgefabric/edgefabric/pkg/apis/hub/v1"
)

func TestOptionsFrom(t *testing.T) {
	now := epoch
	tests := []struct {
		name    string
		in      *hubv1.LogOptions
		want    Options
		wantErr string
	}{
		{name: "nil is all", in: nil, want: Options{TailLines: -1}},
		{name: "tail", in: &hubv1.LogOptions{TailLines: 10, Follow: true, Timestamps: true, Previous: true}, want: Options{TailLines: 10, Follow: true, Timestamps: true, Previous: true}},
		{name: "huge tail", in: &hubv1.LogOptions{TailLines: math.MaxInt64}, want: Options{TailLines: math.MaxInt64}},
		{name: "any negative tail is all", in: &hubv1.LogOptions{TailLines: math.MinInt64}, want: Options{TailLines: -1}},
		{name: "since seconds", in: &hubv1.LogOptions{TailLines: -1, SinceSeconds: 60}, want: Options{TailLines: -1, Since: now.Add(-time.Minute)}},
		{name: "since seconds beyond any duration keeps all", in: &hubv1.LogOptions{TailLines: -1, SinceSeconds: math.MaxInt64}, want: Options{TailLines: -1}},
		{name: "since seconds just beyond a duration", in: &hubv1.LogOptions{TailLines: -1, SinceSeconds: math.MaxInt64/int64(time.Second) + 1}, want: Options{TailLines: -1}},
		{name: "negative since seconds", in: &hubv1.LogOptions{SinceSeconds: -1}, wantErr: "sinceSeconds -1 is negative"},
		{name: "since time", in: &hubv1.LogOptions{TailLines: -1, SinceTime: timestamppb.New(now)}, want: Options{TailLines: -1, Since: now}},
		{name: "since time out of range", in: &hubv1.LogOptions{SinceTime: &timestamppb.Timestamp{Seconds: math.MaxInt64}}, wantErr: "sinceTime"},
		{name: "since time with bad nanos", in: &hubv1.LogOptions{SinceTime: &timestamppb.Timestamp{Nanos: -1}}, wantErr: "sinceTime"},
		{name: "both since", in: &hubv1.LogOptions{SinceSeconds: 1, SinceTime: timestamppb.New(now)}, wantErr: "both sinceSeconds and sinceTime"},
		{name: "limit bytes", in: &hubv1.LogOptions{TailLines: -1, LimitBytes: math.MaxInt64}, want: Options{TailLines: -1, LimitBytes: math.MaxInt64}},
		{name: "negative limit bytes", in: &hubv1.LogOptions{LimitBytes: -5}, wantErr: "limitBytes -5 is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := OptionsFrom(tt.in, now)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("OptionsFrom(%v) = %+v, %v; want an error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("OptionsFrom(%v): %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("OptionsFrom(%v) mismatch (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}
