package daemon

import (
	"bufio"
	"net"
	"os"
	goruntime "runtime"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// nodeIP is the IPv4 address of the interface that holds the default route,
// read from /proc/net/route, or the first global address of any interface;
// it is the hostIP of pods and the address of hostNetwork pods.
func nodeIP() string {
	if iface := defaultRouteInterface(); iface != "" {
		if ip := firstAddress(iface); ip != "" {
			return ip
		}
	}
	ifaces, _ := net.Interfaces()
	for _, i := range ifaces {
		if i.Flags&net.FlagLoopback == 0 && i.Flags&net.FlagUp != 0 {
			if ip := firstAddress(i.Name); ip != "" {
				return ip
			}
		}
	}
	return "127.0.0.1"
}

func defaultRouteInterface() string {
	f, err := os.Open("/proc/net/route")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 2 && fields[1] == "00000000" {
			return fields[0]
		}
	}
	return ""
}

func firstAddress(iface string) string {
	i, err := net.InterfaceByName(iface)
	if err != nil {
		return ""
	}
	addrs, _ := i.Addrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && n.IP.IsGlobalUnicast() {
			return n.IP.String()
		}
	}
	return ""
}

// allocatable is what pods may use of this machine: every CPU and all
// memory (podsup reserves nothing yet).
func allocatable() v1.ResourceList {
	list := v1.ResourceList{v1.ResourceCPU: *resource.NewQuantity(int64(goruntime.NumCPU()), resource.DecimalSI)}
	if mem := memTotal(); mem > 0 {
		list[v1.ResourceMemory] = *resource.NewQuantity(mem, resource.BinarySI)
	}
	return list
}

func memTotal() int64 { return meminfo("MemTotal:") }

// memAvailable is the kernel's estimate of memory available without
// swapping.
func memAvailable() int64 { return meminfo("MemAvailable:") }

// meminfo reads one field of /proc/meminfo, in bytes; 0 if it is not there.
func meminfo(field string) int64 {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, field); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				if kb, err := strconv.ParseInt(f[0], 10, 64); err == nil {
					return kb * 1024
				}
			}
		}
	}
	return 0
}
