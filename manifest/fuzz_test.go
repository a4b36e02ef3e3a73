package manifest

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/podsup/podsup/internal/hostile"
)

// FuzzParse feeds arbitrary bytes to the manifest parser. It must never
// panic or hang, every failure must be a manifest error, and every pod it
// accepts must carry a valid static identity and pass validation again.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*/*")
	for _, s := range seeds {
		if data, err := os.ReadFile(s); err == nil {
			f.Add(data)
		}
	}
	for _, in := range hostile.Light(MaxManifestBytes) {
		if len(in.Data) <= 64<<10 {
			f.Add(in.Data)
		}
	}
	f.Add([]byte("apiVersion: v1\nkind: List\nitems: [{apiVersion: v1, kind: Pod, metadata: {name: a}, spec: {containers: [{name: a, image: b}]}}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		objs, err := Parse("fuzz.yaml", data, testStatic)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error is not a manifest error: %T %v", err, err)
			}
			if !strings.HasPrefix(err.Error(), "fuzz.yaml") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		for _, pod := range objs.Pods {
			if !strings.HasSuffix(pod.Name, "-node1") || pod.UID == "" || pod.Namespace == "" {
				t.Fatalf("accepted pod without static identity: %s/%s uid %q", pod.Namespace, pod.Name, pod.UID)
			}
			if errs, _ := ValidatePod("fuzz.yaml", pod); len(errs) > 0 {
				t.Fatalf("accepted pod fails validation: %v", errs)
			}
		}
	})
}
