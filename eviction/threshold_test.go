package eviction

import (
	"strings"
	"testing"
	"time"
)

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name                              string
		hard, soft, softGrace, minReclaim string
		err                               string // empty: valid
		check                             func(t *testing.T, ts []Threshold)
	}{
		{name: "the kubelet's default", hard: DefaultHard, check: func(t *testing.T, ts []Threshold) {
			if len(ts) != 4 || ts[0].Signal != MemoryAvailable || ts[0].Value.Quantity.String() != "100Mi" ||
				ts[1].Value.Percentage != 0.10 || ts[3].Signal != ImageFsAvailable || ts[3].Soft {
				t.Errorf("%+v", ts)
			}
		}},
		{name: "soft with grace and minimum reclaim", hard: "memory.available<1Gi", soft: "nodefs.available<20%",
			softGrace: "nodefs.available=1m30s", minReclaim: "nodefs.available=500Mi, memory.available=5%",
			check: func(t *testing.T, ts []Threshold) {
				if !ts[1].Soft || ts[1].GracePeriod != 90*time.Second || ts[1].MinReclaim.Quantity.String() != "500Mi" ||
					ts[0].MinReclaim.Percentage != 0.05 {
					t.Errorf("%+v", ts)
				}
			}},
		{name: "empty", check: func(t *testing.T, ts []Threshold) {
			if len(ts) != 0 {
				t.Errorf("%+v", ts)
			}
		}},
		{name: "unknown signal", hard: "memory.free<1Gi", err: `--eviction-hard "memory.free<1Gi": unknown signal "memory.free"`},
		{name: "other operator", hard: "memory.available>1Gi", err: "want SIGNAL<VALUE"},
		{name: "bad quantity", hard: "memory.available<lots", err: `quantity "lots"`},
		{name: "negative quantity", hard: "memory.available<-1Gi", err: "must not be negative"},
		{name: "percentage over 100", hard: "nodefs.available<150%", err: "at most 100%"},
		{name: "zero percentage", hard: "nodefs.available<0%", err: "more than 0%"},
		{name: "twice", hard: "nodefs.available<10%,nodefs.available<5%", err: "nodefs.available given twice"},
		{name: "soft without grace", soft: "memory.available<1Gi", err: "--eviction-soft memory.available<1Gi: no grace period"},
		{name: "grace without soft", softGrace: "memory.available=1m", err: "--eviction-soft-grace-period memory.available: no soft threshold"},
		{name: "bad grace", soft: "memory.available<1Gi", softGrace: "memory.available=soon", err: "want a duration"},
		{name: "reclaim without threshold", hard: "memory.available<1Gi", minReclaim: "pid.available=10", err: "--eviction-minimum-reclaim pid.available: no threshold"},
		{name: "bad reclaim", hard: "memory.available<1Gi", minReclaim: "memory.available=much", err: `--eviction-minimum-reclaim memory.available=much`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts, err := ParseConfig(tc.hard, tc.soft, tc.softGrace, tc.minReclaim)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, ts)
		})
	}
}

func TestMet(t *testing.T) {
	ts, err := ParseConfig("nodefs.available<10%", "", "", "nodefs.available=5%")
	if err != nil {
		t.Fatal(err)
	}
	th := ts[0]
	capacity := uint64(1000)
	tests := []struct {
		available uint64
		wasMet    bool
		want      bool
	}{
		{available: 101, want: false},
		{available: 99, want: true},
		{available: 120, wasMet: true, want: true}, // under 10% + 5% once started
		{available: 151, wasMet: true, want: false},
	}
	for _, tc := range tests {
		if got := met(th, Amount{Available: tc.available, Capacity: capacity}, tc.wasMet); got != tc.want {
			t.Errorf("available %d (was met: %v): met %v, want %v", tc.available, tc.wasMet, got, tc.want)
		}
	}
}
