package image

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io/fs"
	"runtime"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// PauseRepo is the repository of the pause image podsup builds itself, so a
// pod can start on a machine that has never reached a registry. Its tag is
// derived from the image's content, so a podsup with a changed pause image
// never mistakes an older one for it.
const PauseRepo = "localhost/podsup/pause"

// PauseImage returns the build of podsup's pause image for this machine's
// architecture: one static binary of a few hundred bytes that ignores SIGCHLD
// (so the kernel reaps the zombies it inherits as PID 1 of a shared PID
// namespace), exits 0 on SIGTERM or SIGINT, and otherwise sleeps in pause(2).
// It holds the pod's namespaces with a resident set of a few KiB.
func PauseImage() (*Build, error) {
	code, machine, ok := pauseCode()
	if !ok {
		return nil, fmt.Errorf("no built-in pause binary for %s; set --pod-infra-container-image", runtime.GOARCH)
	}
	b := &Build{
		Files: []File{
			{Path: "/pause", Mode: 0o755, Data: elf(machine, code)},
			// Mount points: the pause container's root is a read-only
			// snapshot view, in which runc cannot make them.
			{Path: "/proc", Mode: fs.ModeDir | 0o555},
			{Path: "/dev", Mode: fs.ModeDir | 0o755},
			{Path: "/sys", Mode: fs.ModeDir | 0o555},
			{Path: "/run", Mode: fs.ModeDir | 0o755},
		},
		Config: ocispec.ImageConfig{Entrypoint: []string{"/pause"}, StopSignal: "SIGTERM", User: "65535:65535"},
	}
	layer, err := b.layer()
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(layer)
	b.Ref = PauseRepo + ":" + hex.EncodeToString(sum[:6])
	return b, nil
}

// elf wraps position-independent machine code in a minimal static ELF64
// executable: the file header, a loadable segment holding the whole file,
// and a PT_GNU_STACK header so the stack is not executable.
func elf(machine uint16, code []byte) []byte {
	const (
		base      = 0x400000
		ehSize    = 64
		phSize    = 56
		phCount   = 2
		codeStart = ehSize + phSize*phCount
	)
	total := uint64(codeStart + len(code))
	var b bytes.Buffer
	w := func(v any) { _ = binary.Write(&b, binary.LittleEndian, v) }
	b.Write([]byte{0x7f, 'E', 'L', 'F', 2 /* 64-bit */, 1 /* little endian */, 1 /* version */, 0 /* System V ABI */})
	b.Write(make([]byte, 8))
	w(uint16(2)) // ET_EXEC
	w(machine)
	w(uint32(1))                // EV_CURRENT
	w(uint64(base + codeStart)) // entry point
	w(uint64(ehSize))           // program headers follow the file header
	w(uint64(0))                // no section headers
	w(uint32(0))                // flags
	w(uint16(ehSize))
	w(uint16(phSize))
	w(uint16(phCount))
	w(uint16(64)) // section header size
	w(uint16(0))  // section headers
	w(uint16(0))  // section name table index
	// PT_LOAD: the whole file, readable and executable.
	w(uint32(1))
	w(uint32(5))
	w(uint64(0))
	w(uint64(base))
	w(uint64(base))
	w(total)
	w(total)
	w(uint64(0x1000))
	// PT_GNU_STACK: read and write, not execute.
	w(uint32(0x6474e551))
	w(uint32(6))
	for i := 0; i < 5; i++ {
		w(uint64(0))
	}
	w(uint64(16))
	b.Write(code)
	return b.Bytes()
}
