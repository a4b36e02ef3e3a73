package image

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	clocktesting "k8s.io/utils/clock/testing"
)

const mib = 1 << 20

// fakeStore is an image store on a fake filesystem: removing an image
// frees its size.
type fakeStore struct {
	fs      *FSUsage
	images  []GCImage
	removed []string
	fail    map[string]error
}

func (s *fakeStore) Images(context.Context) ([]GCImage, error) {
	return append([]GCImage(nil), s.images...), nil
}

func (s *fakeStore) Remove(_ context.Context, name string) error {
	if err := s.fail[name]; err != nil {
		return err
	}
	for i, im := range s.images {
		if im.Name == name {
			s.images = append(s.images[:i], s.images[i+1:]...)
			s.fs.Available += im.Size
			s.removed = append(s.removed, name)
			return nil
		}
	}
	return errdefs.ErrNotFound
}

func (s *fakeStore) usage() (FSUsage, error) { return *s.fs, nil }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestGCPolicyValidate(t *testing.T) {
	tests := []struct {
		p   GCPolicy
		err string
	}{
		{DefaultGCPolicy, ""},
		{GCPolicy{HighThreshold: 100, LowThreshold: 100}, ""}, // disabled
		{GCPolicy{HighThreshold: 101, LowThreshold: 80}, "must be between 0 and 100"},
		{GCPolicy{HighThreshold: 85, LowThreshold: -1}, "must be between 0 and 100"},
		{GCPolicy{HighThreshold: 80, LowThreshold: 80}, "must be below the high threshold"},
		{GCPolicy{HighThreshold: 85, LowThreshold: 80, MinAge: -time.Second}, "must not be negative"},
	}
	for _, tt := range tests {
		err := tt.p.Validate()
		if (err == nil) != (tt.err == "") || (err != nil && !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("%+v: error %v, want %q", tt.p, err, tt.err)
		}
	}
}

func TestFSUsagePercent(t *testing.T) {
	for _, tt := range []struct {
		u    FSUsage
		want int
	}{
		{FSUsage{100, 100}, 0},
		{FSUsage{100, 15}, 85},
		{FSUsage{1000, 151}, 85}, // 84.9% in use rounds up, as the kubelet's
		{FSUsage{0, 0}, 0},
	} {
		if got := tt.u.Percent(); got != tt.want {
			t.Errorf("%+v: %d%%, want %d%%", tt.u, got, tt.want)
		}
	}
}

// TestGCCollect drives one collection on a fake filesystem of 100 MiB with
// the default policy (85% high, 80% low, 2 minutes) and an injected clock.
func TestGCCollect(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	hour := func(h int) time.Time { return now.Add(-time.Duration(h) * time.Hour) }
	base := []GCImage{
		{Name: "localhost/podsup/pause:0123456789ab", Size: 1 * mib, Created: hour(100)},
		{Name: "registry.k8s.io/pause:3.9", Size: 1 * mib, Created: hour(100)},
		{Name: "docker.io/library/busybox:latest", Size: 5 * mib, Created: hour(50)},
		{Name: "docker.io/library/running:1", Size: 5 * mib, Created: hour(50), InUse: true},
		{Name: "docker.io/library/fresh:1", Size: 5 * mib, Created: now.Add(-time.Minute)},
		{Name: "docker.io/library/used-an-hour-ago:1", Size: 4 * mib, Created: hour(40), LastUsed: hour(1)},
		{Name: "docker.io/library/used-a-day-ago:1", Size: 4 * mib, Created: hour(40), LastUsed: hour(24)},
		{Name: "docker.io/library/never-used-old:1", Size: 4 * mib, Created: hour(30)},
		{Name: "docker.io/library/never-used-new:1", Size: 4 * mib, Created: hour(3)},
	}
	desired := []string{"busybox", "docker.io/library/failed-pod-image:2"}
	tests := []struct {
		name      string
		available int64
		known     bool
		fail      map[string]error
		removed   []string
		after     int // percent in use afterwards
		kept      map[string]string
	}{
		{
			name: "under the high threshold nothing is removed", available: 16 * mib, known: true, after: 84,
		},
		{
			name: "over the high threshold until the low one, least recently used first", available: 12 * mib, known: true,
			// 88% in use: 20 MiB must be free, so 8 MiB go.
			removed: []string{"docker.io/library/never-used-old:1", "docker.io/library/never-used-new:1"},
			after:   80,
			kept: map[string]string{
				"localhost/podsup/pause:0123456789ab": "pause image",
				"registry.k8s.io/pause:3.9":           "pause image",
				"docker.io/library/busybox:latest":    "named by a desired pod",
				"docker.io/library/running:1":         "used by a container",
				"docker.io/library/fresh:1":           "pulled or imported 1m0s ago, within the minimum age 2m0s",
			},
		},
		{
			name: "further over: used images go too, the oldest use first", available: 5 * mib, known: true,
			removed: []string{"docker.io/library/never-used-old:1", "docker.io/library/never-used-new:1",
				"docker.io/library/used-a-day-ago:1", "docker.io/library/used-an-hour-ago:1"},
			after: 79,
		},
		{
			name: "a failed removal is skipped", available: 12 * mib, known: true,
			fail:    map[string]error{"docker.io/library/never-used-old:1": errors.New("boom")},
			removed: []string{"docker.io/library/never-used-new:1", "docker.io/library/used-a-day-ago:1"},
			after:   80,
		},
		{
			name: "nothing before every manifest source has reported", available: 1 * mib, known: false, after: 99,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := &FSUsage{Capacity: 100 * mib, Available: tt.available}
			store := &fakeStore{fs: fs, images: append([]GCImage(nil), base...), fail: tt.fail}
			clk := clocktesting.NewFakePassiveClock(now)
			gc, err := NewGC(store, store.usage, func() ([]string, bool) { return desired, tt.known },
				WithProtected("registry.k8s.io/pause:3.9"), WithGCClock(clk), WithGCLogger(quiet))
			if err != nil {
				t.Fatal(err)
			}
			res, err := gc.Collect(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(store.removed, " ") != strings.Join(tt.removed, " ") {
				t.Errorf("removed %v, want %v", store.removed, tt.removed)
			}
			if len(res.Removed) != len(tt.removed) {
				t.Errorf("result lists %d removed, want %d", len(res.Removed), len(tt.removed))
			}
			for name, why := range tt.kept {
				if res.Kept[name] != why {
					t.Errorf("%s kept because %q, want %q", name, res.Kept[name], why)
				}
			}
			if res.After.Percent() != tt.after {
				t.Errorf("usage %d%% after collection, want %d%%", res.After.Percent(), tt.after)
			}
		})
	}
}

// TestGCMinimumAge shows an image becoming removable once it is older than
// the minimum age, on the injected clock.
func TestGCMinimumAge(t *testing.T) {
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	clk := clocktesting.NewFakePassiveClock(start)
	fs := &FSUsage{Capacity: 100 * mib, Available: 10 * mib}
	store := &fakeStore{fs: fs, images: []GCImage{{Name: "docker.io/library/new:1", Size: 20 * mib, Created: start}}}
	gc, err := NewGC(store, store.usage, func() ([]string, bool) { return nil, true }, WithGCClock(clk), WithGCLogger(quiet),
		WithGCPolicy(GCPolicy{HighThreshold: 85, LowThreshold: 80, MinAge: 2 * time.Minute}))
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		after   time.Duration
		removed int
	}{{0, 0}, {119 * time.Second, 0}, {time.Second, 1}} {
		clk.SetTime(clk.Now().Add(step.after))
		if _, err := gc.Collect(context.Background()); err != nil {
			t.Fatal(err)
		}
		if len(store.removed) != step.removed {
			t.Fatalf("at %s: %d removed, want %d", clk.Now().Sub(start), len(store.removed), step.removed)
		}
	}
}

func TestGCDisabled(t *testing.T) {
	fs := &FSUsage{Capacity: 100 * mib, Available: 0}
	store := &fakeStore{fs: fs, images: []GCImage{{Name: "docker.io/library/x:1", Size: mib}}}
	gc, err := NewGC(store, store.usage, func() ([]string, bool) { return nil, true }, WithGCLogger(quiet),
		WithGCPolicy(GCPolicy{HighThreshold: 100, LowThreshold: 90}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gc.Collect(context.Background()); err != nil || len(store.removed) != 0 {
		t.Errorf("a disabled collector removed %v (%v)", store.removed, err)
	}
}

// TestGCRemoveUnused is the eviction manager's reclaim: every image that
// may go goes, even under the thresholds; what a desired pod names, the
// pause image, images in use and young images stay.
func TestGCRemoveUnused(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	fs := &FSUsage{Capacity: 100 * mib, Available: 90 * mib}
	store := &fakeStore{fs: fs, images: []GCImage{
		{Name: "registry.k8s.io/pause:3.9", Size: mib, Created: now.Add(-time.Hour)},
		{Name: "docker.io/library/etcd:3", Size: mib, Created: now.Add(-time.Hour)},
		{Name: "docker.io/library/running:1", Size: mib, Created: now.Add(-time.Hour), InUse: true},
		{Name: "docker.io/library/fresh:1", Size: mib, Created: now},
		{Name: "docker.io/library/old:1", Size: mib, Created: now.Add(-time.Hour)},
		{Name: "docker.io/library/older:1", Size: mib, Created: now.Add(-2 * time.Hour)},
	}}
	gc, err := NewGC(store, store.usage, func() ([]string, bool) { return []string{"docker.io/library/etcd:3"}, true },
		WithProtected("registry.k8s.io/pause:3.9"), WithGCClock(clocktesting.NewFakePassiveClock(now)), WithGCLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	res, err := gc.RemoveUnused(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(store.removed, " "); got != "docker.io/library/older:1 docker.io/library/old:1" {
		t.Errorf("removed %q, want the two unused old images, older first", got)
	}
	if res.After.Available != 92*mib {
		t.Errorf("available after: %d MiB, want 92", res.After.Available/mib)
	}
}
