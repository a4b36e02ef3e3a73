package main

import (
	"fmt"
	"sort"
	"strings"
)

// table gathers each measure's rounds by column and prints their medians.
type table struct {
	order  []string                        // measures, first taken first
	values map[string]map[string][]float64 // measure -> column -> rounds
}

func newTable() *table {
	return &table{values: map[string]map[string][]float64{}}
}

func (t *table) add(measure, column string, v float64) {
	if t.values[measure] == nil {
		t.values[measure] = map[string][]float64{}
		t.order = append(t.order, measure)
	}
	t.values[measure][column] = append(t.values[measure][column], v)
}

// print writes the table in Markdown: the medians of the rounds, and
// podsup's over the kubelet's; the start-ups are in seconds.
func (t *table) print() {
	fmt.Println()
	fmt.Println("| measure | kubelet | podsup | podsup / kubelet | floor (containerd client) | floor with the pod network (client + CNI) |")
	fmt.Println("|---|---|---|---|---|---|")
	for _, m := range t.order {
		col := t.values[m]
		k, kok := medianOf(col["kubelet"])
		p, pok := medianOf(col["podsup"])
		cell := func(v float64, ok bool) string {
			switch {
			case !ok:
				return ""
			case strings.Contains(m, "(MiB)"), strings.Contains(m, "%"), strings.Contains(m, "per second"), strings.Contains(m, "(ms)"):
				return fmt.Sprintf("%.1f", v)
			default:
				return fmt.Sprintf("%.2f s", v)
			}
		}
		ratio := ""
		if kok && pok && k > 0 {
			ratio = fmt.Sprintf("%.2f", p/k)
		}
		floor := func(column string) string {
			if f, ok := medianOf(col[column]); ok {
				return fmt.Sprintf("%s (podsup %.2f ×)", cell(f, true), p/f)
			}
			return ""
		}
		fmt.Printf("| %s | %s | %s | %s | %s | %s |\n", m, cell(k, kok), cell(p, pok), ratio, floor("floor"), floor("floor+net"))
	}
}

func medianOf(vs []float64) (float64, bool) {
	if len(vs) == 0 {
		return 0, false
	}
	s := append([]float64(nil), vs...)
	sort.Float64s(s)
	return s[len(s)/2], true
}
