package mirror

import (
	"bufio"
	"os"
	goruntime "runtime"
	"strings"

	v1 "k8s.io/api/core/v1"
)

// HostInfo is what the Node reports of this machine, read as the kubelet
// reads it: kernel, OS image, machine and boot IDs, OS and architecture.
// What cannot be read stays empty.
func HostInfo() v1.NodeSystemInfo {
	return v1.NodeSystemInfo{
		MachineID:       readTrimmed("/etc/machine-id"),
		SystemUUID:      strings.ToUpper(readTrimmed("/sys/class/dmi/id/product_uuid")),
		BootID:          readTrimmed("/proc/sys/kernel/random/boot_id"),
		KernelVersion:   readTrimmed("/proc/sys/kernel/osrelease"),
		OSImage:         osImage("/etc/os-release"),
		OperatingSystem: goruntime.GOOS,
		Architecture:    goruntime.GOARCH,
	}
}

func readTrimmed(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(data))
}

// osImage is PRETTY_NAME of an os-release file, or "Linux".
func osImage(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return "Linux"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "PRETTY_NAME="); ok {
			return strings.Trim(v, `"'`)
		}
	}
	return "Linux"
}
