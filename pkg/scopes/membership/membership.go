// Package membership tracks which peers are alive, from observations the
// caller makes and the time the caller passes in. It does no I/O and reads no
// clock, so the agent can keep its LAN's membership while its uplink to the
// provider is down, report it when the link comes back, and tests can drive
// it step by step.
//
// A peer becomes a member (Joined) when first observed. A member not observed
// for Config.SuspectAfter is Suspect (Suspected); observed again, it is Alive
// (Recovered). Not observed for Config.LeaveAfter, it has Left; a departed
// member is kept, as a record of when it left, for Config.ForgetAfter and
// then dropped. Observing it again makes it join anew.
//
// A Table is not safe for concurrent use; its owner serialises calls.
package membership

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Config tunes a Table. Zero fields take the defaults below.
type Config struct {
	// SuspectAfter is how long a member may go unobserved before it is
	// suspected; zero means 15 s.
	SuspectAfter time.Duration
	// LeaveAfter is how long a member may go unobserved before it has left;
	// zero means 45 s. It must be longer than SuspectAfter.
	LeaveAfter time.Duration
	// ForgetAfter is how long a departed member is remembered; zero means
	// 10 minutes.
	ForgetAfter time.Duration
}

// Defaults of Config.
const (
	DefaultSuspectAfter = 15 * time.Second
	DefaultLeaveAfter   = 45 * time.Second
	DefaultForgetAfter  = 10 * time.Minute
)

// WithDefaults returns c with its zero fields set to the defaults.
func (c Config) WithDefaults() Config {
	if c.SuspectAfter == 0 {
		c.SuspectAfter = DefaultSuspectAfter
	}
	if c.LeaveAfter == 0 {
		c.LeaveAfter = DefaultLeaveAfter
	}
	if c.ForgetAfter == 0 {
		c.ForgetAfter = DefaultForgetAfter
	}
	return c
}

// Validate reports whether c, with its defaults, is usable.
func (c Config) Validate() error {
	c = c.WithDefaults()
	var errs []error
	if c.SuspectAfter < 0 || c.LeaveAfter < 0 || c.ForgetAfter < 0 {
		errs = append(errs, errors.New("durations must not be negative"))
	}
	if c.LeaveAfter <= c.SuspectAfter {
		errs = append(errs, fmt.Errorf("LeaveAfter (%v) must be longer than SuspectAfter (%v)", c.LeaveAfter, c.SuspectAfter))
	}
	return errors.Join(errs...)
}

// State is a member's liveness.
type State int

const (
	// Alive members were observed within SuspectAfter.
	Alive State = iota + 1
	// Suspect members were last observed between SuspectAfter and LeaveAfter ago.
	Suspect
	// Left members were not observed for LeaveAfter.
	Left
)

func (s State) String() string {
	switch s {
	case Alive:
		return "alive"
	case Suspect:
		return "suspect"
	case Left:
		return "left"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Member is what the table knows of one peer.
type Member struct {
	ID    string
	State State
	// Since is when the member joined (or joined anew after it had left).
	Since time.Time
	// LastSeen is when it was last observed.
	LastSeen time.Time
	// Changed is when State last changed; for a departed member, when it left.
	Changed time.Time
}

// ChangeType says how a member's state changed.
type ChangeType int

const (
	// Joined: a new member, or one that had left, was observed.
	Joined ChangeType = iota + 1
	// Suspected: an Alive member went unobserved for SuspectAfter.
	Suspected
	// Recovered: a Suspect member was observed again.
	Recovered
	// Departed: a member went unobserved for LeaveAfter, or was removed.
	Departed
)

func (t ChangeType) String() string {
	switch t {
	case Joined:
		return "joined"
	case Suspected:
		return "suspected"
	case Recovered:
		return "recovered"
	case Departed:
		return "departed"
	}
	return fmt.Sprintf("ChangeType(%d)", int(t))
}

// Change is one member's change of state; Member is the member after it.
type Change struct {
	Type   ChangeType
	Member Member
}

// Table is a liveness table. The zero value is not usable; call New.
type Table struct {
	cfg     Config
	members map[string]*Member
}

// New returns an empty table. It returns an error if cfg is invalid.
func New(cfg Config) (*Table, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("membership config: %w", err)
	}
	return &Table{cfg: cfg.WithDefaults(), members: map[string]*Member{}}, nil
}

// Observe records that id was seen alive at now and returns the change that
// caused, if any (Joined or Recovered). An observation older than the last
// one is ignored.
func (t *Table) Observe(id string, now time.Time) (Change, bool) {
	m, ok := t.members[id]
	if ok && now.Before(m.LastSeen) {
		return Change{}, false
	}
	if !ok || m.State == Left {
		m = &Member{ID: id, State: Alive, Since: now, LastSeen: now, Changed: now}
		t.members[id] = m
		return Change{Type: Joined, Member: *m}, true
	}
	m.LastSeen = now
	if m.State == Suspect {
		m.State, m.Changed = Alive, now
		return Change{Type: Recovered, Member: *m}, true
	}
	return Change{}, false
}

// Remove records that id left at now, e.g. because it said goodbye or failed
// to prove its identity, and returns the change if it was a member.
func (t *Table) Remove(id string, now time.Time) (Change, bool) {
	m, ok := t.members[id]
	if !ok || m.State == Left {
		return Change{}, false
	}
	m.State, m.Changed = Left, now
	return Change{Type: Departed, Member: *m}, true
}

// Expire moves members that went unobserved too long on to Suspect or Left,
// forgets members that left more than ForgetAfter ago, and returns the
// changes sorted by member ID. A member unobserved for LeaveAfter departs
// without first being reported as suspected.
func (t *Table) Expire(now time.Time) []Change {
	var out []Change
	for id, m := range t.members {
		idle := now.Sub(m.LastSeen)
		switch {
		case m.State == Left:
			if now.Sub(m.Changed) >= t.cfg.ForgetAfter {
				delete(t.members, id)
			}
		case idle >= t.cfg.LeaveAfter:
			m.State, m.Changed = Left, m.LastSeen.Add(t.cfg.LeaveAfter)
			out = append(out, Change{Type: Departed, Member: *m})
		case m.State == Alive && idle >= t.cfg.SuspectAfter:
			m.State, m.Changed = Suspect, m.LastSeen.Add(t.cfg.SuspectAfter)
			out = append(out, Change{Type: Suspected, Member: *m})
		}
	}
	slices.SortFunc(out, func(a, b Change) int { return cmp.Compare(a.Member.ID, b.Member.ID) })
	return out
}

// NextExpiry returns the earliest time at which Expire would change something,
// so a driver can set its timer; false if the table is empty.
func (t *Table) NextExpiry() (time.Time, bool) {
	var next time.Time
	for _, m := range t.members {
		var at time.Time
		switch m.State {
		case Alive:
			at = m.LastSeen.Add(t.cfg.SuspectAfter)
		case Suspect:
			at = m.LastSeen.Add(t.cfg.LeaveAfter)
		case Left:
			at = m.Changed.Add(t.cfg.ForgetAfter)
		}
		if next.IsZero() || at.Before(next) {
			next = at
		}
	}
	return next, !next.IsZero()
}

// Members returns the members that have not left (Alive or Suspect), sorted by ID.
func (t *Table) Members() []Member {
	return t.list(func(m *Member) bool { return m.State != Left })
}

// Snapshot returns every member the table knows, departed ones included,
// sorted by ID: what an agent reports when its uplink comes back.
func (t *Table) Snapshot() []Member {
	return t.list(func(*Member) bool { return true })
}

// Get returns what the table knows of id.
func (t *Table) Get(id string) (Member, bool) {
	m, ok := t.members[id]
	if !ok {
		return Member{}, false
	}
	return *m, true
}

func (t *Table) list(keep func(*Member) bool) []Member {
	out := make([]Member, 0, len(t.members))
	for _, m := range t.members {
		if keep(m) {
			out = append(out, *m)
		}
	}
	slices.SortFunc(out, func(a, b Member) int { return cmp.Compare(a.ID, b.ID) })
	return out
}
