package image

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// PullPhase is where a pull stands.
type PullPhase string

// The phases of a pull.
const (
	// PullWaiting is a pull waiting for a slot (--serialize-image-pulls,
	// --max-parallel-image-pulls).
	PullWaiting PullPhase = "Waiting"
	PullRunning PullPhase = "Pulling"
	PullDone    PullPhase = "Pulled"
	PullFailed  PullPhase = "Failed"
)

// PullProgress is the state of one pull, as reported to whoever waits for
// it and listed by Puller.Pulls.
type PullProgress struct {
	Image string    `json:"image"`
	Phase PullPhase `json:"phase"`
	// Done and Total are bytes; Total grows as manifests are read, and
	// blobs already present count as done.
	Done    int64         `json:"bytesDone"`
	Total   int64         `json:"bytesTotal"`
	Started time.Time     `json:"started"`
	Elapsed time.Duration `json:"elapsed"`
	// Waiters is how many container starts wait for this pull.
	Waiters int `json:"waiters"`
	// Credentials names where the credentials being tried come from
	// ("none" for an anonymous pull); never the credentials themselves.
	Credentials string `json:"credentials"`
	// Err is set in phase PullFailed.
	Err error `json:"-"`
}

// Bytes describes the bytes done, such as "12.0 MiB of 48.0 MiB (25%)".
func (p PullProgress) Bytes() string {
	if p.Total <= 0 {
		return HumanBytes(p.Done)
	}
	return fmt.Sprintf("%s of %s (%d%%)", HumanBytes(p.Done), HumanBytes(p.Total), p.Done*100/p.Total)
}

// HumanBytes prints a size in binary units: 512 B, 1.5 KiB, 48.0 MiB.
func HumanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// tracker counts the bytes of one pull attempt: it sees every descriptor
// the pull handles (a wrapper around containerd's fetch handlers) and reads
// the progress of the blobs being written from the content store.
type tracker struct {
	store contentStatuser // nil: only finished blobs count

	mu     sync.Mutex
	sizes  map[digest.Digest]int64  // every descriptor known
	done   map[digest.Digest]bool   // fetched, or present already
	active map[digest.Digest]string // being fetched: their ingest refs
}

// contentStatuser is the part of containerd's content store that tells how
// far the writing of a blob has got.
type contentStatuser interface {
	Status(ctx context.Context, ref string) (content.Status, error)
}

func newTracker(store contentStatuser) *tracker {
	return &tracker{store: store, sizes: map[digest.Digest]int64{}, done: map[digest.Digest]bool{}, active: map[digest.Digest]string{}}
}

// wrap is a containerd image handler wrapper: it marks a descriptor active
// while its fetch runs, and counts its children (a manifest's layers) as
// soon as they are known, so the total is right before their fetches start.
func (t *tracker) wrap(h images.Handler) images.Handler {
	return images.HandlerFunc(func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		t.mu.Lock()
		t.sizes[desc.Digest] = desc.Size
		t.active[desc.Digest] = remotes.MakeRefKey(ctx, desc)
		t.mu.Unlock()
		children, err := h.Handle(ctx, desc)
		t.mu.Lock()
		delete(t.active, desc.Digest)
		if err == nil {
			t.done[desc.Digest] = true
			for _, c := range children {
				t.sizes[c.Digest] = c.Size
			}
		}
		t.mu.Unlock()
		return children, err
	})
}

// add counts a descriptor as known and, if done, as fetched; for tests and
// for callers without containerd's handlers.
func (t *tracker) add(d digest.Digest, size int64, done bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sizes[d] = size
	if done {
		t.done[d] = true
	}
}

// bytes returns the bytes fetched (finished blobs and the written part of
// active ones) and the bytes known in all.
func (t *tracker) bytes(ctx context.Context) (done, total int64) {
	t.mu.Lock()
	refs := make([]string, 0, len(t.active))
	for _, ref := range t.active {
		refs = append(refs, ref)
	}
	for d, size := range t.sizes {
		total += size
		if t.done[d] {
			done += size
		}
	}
	t.mu.Unlock()
	if t.store != nil {
		for _, ref := range refs {
			if st, err := t.store.Status(ctx, ref); err == nil {
				done += st.Offset
			}
		}
	}
	return min(done, total), total
}
