package logs

import (
	"errors"
	"fmt"
	"math"
	"time"

	hubv1 "github.com/edgefabric/edgefabric/pkg/apis/hub/v1"
)

// OptionsFrom checks the log options of a stream request, which come from
// the hub and ultimately from whoever may call `kubectl logs`, and turns
// them into Options; now is the time sinceSeconds counts back from. Every
// number is accepted or refused here, before Read allocates anything by it:
//
//   - tailLines: any negative value means all, any positive one at most that
//     many lines (however large: a tail beyond the log is the whole log);
//   - sinceSeconds: negative is refused; beyond what a time.Duration holds
//     (about 292 years) keeps every line;
//   - sinceTime: a timestamp outside years 1-9999 or with nanoseconds out of
//     range is refused, and so is sinceTime with sinceSeconds;
//   - limitBytes: negative is refused, 0 means no limit.
//
// A nil lo reads every line.
func OptionsFrom(lo *hubv1.LogOptions, now time.Time) (Options, error) {
	if lo == nil {
		return Options{TailLines: -1}, nil
	}
	o := Options{
		Follow: lo.GetFollow(), TailLines: lo.GetTailLines(), Timestamps: lo.GetTimestamps(),
		Previous: lo.GetPrevious(), LimitBytes: lo.GetLimitBytes(),
	}
	if o.TailLines < 0 {
		o.TailLines = -1
	}
	if o.LimitBytes < 0 {
		return Options{}, fmt.Errorf("limitBytes %d is negative", o.LimitBytes)
	}
	s := lo.GetSinceSeconds()
	if s < 0 {
		return Options{}, fmt.Errorf("sinceSeconds %d is negative", s)
	}
	if s > 0 && lo.GetSinceTime() != nil {
		return Options{}, errors.New("both sinceSeconds and sinceTime are set")
	}
	if s > 0 && s <= math.MaxInt64/int64(time.Second) {
		o.Since = now.Add(-time.Duration(s) * time.Second)
	}
	if t := lo.GetSinceTime(); t != nil {
		if err := t.CheckValid(); err != nil {
			return Options{}, fmt.Errorf("sinceTime: %w", err)
		}
		o.Since = t.AsTime()
	}
	return o, nil
}
