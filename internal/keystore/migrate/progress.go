package migrate

import (
	"fmt"
	"strings"
	"time"
)

// progress shows how far a phase got: upstream's "Migrated %6d keys ..."
// line every second on a pipe, a counter or bar redrawn in place on a
// terminal. A progress with a nil tick never draws.
type progress struct {
	m        *Migrator
	label    string
	tick     <-chan time.Time
	stopTick func()
	n, total int // total 0: unknown, draw a counter
	spin     int
}

// startProgress starts the progress of the copy phase. An empty label
// means no progress at all (dry run).
func (m *Migrator) startProgress(label string) *progress {
	p := &progress{m: m, label: label}
	switch {
	case label == "":
	case m.Live != nil:
		p.tick, p.stopTick = m.ticker(100 * time.Millisecond)
	default:
		p.tick, p.stopTick = m.ticker(time.Second)
	}
	return p
}

// startVerifyProgress starts the progress of the verification phase,
// which only a terminal shows.
func (m *Migrator) startVerifyProgress(total int) *progress {
	p := &progress{m: m, label: "Verifying keys:", total: total}
	if m.Live != nil && total > 0 {
		p.tick, p.stopTick = m.ticker(100 * time.Millisecond)
	}
	return p
}

func (m *Migrator) ticker(d time.Duration) (<-chan time.Time, func()) {
	if m.NewTicker != nil {
		return m.NewTicker(d)
	}
	t := time.NewTicker(d)
	return t.C, t.Stop
}

func (p *progress) set(n, total int) { p.n, p.total = n, max(total, p.total) }

func (p *progress) draw() {
	if p.m.Live == nil {
		fmt.Fprintf(p.m.Out, "Migrated %6d keys ...\n", p.n)
		return
	}
	p.spin++
	if p.total <= 0 {
		fmt.Fprintf(p.m.Live, "\r\033[K%s %c %d keys migrated", p.label, `|/-\`[p.spin%4], p.n)
		return
	}
	const width = 30
	fill := width * p.n / p.total
	bar := strings.Repeat("=", fill) + strings.Repeat(" ", width-fill)
	fmt.Fprintf(p.m.Live, "\r\033[K%s [%s] %d/%d", p.label, bar, p.n, p.total)
}

// stop stops the ticker; on a terminal it draws the final state and ends
// the line.
func (p *progress) stop() {
	if p.tick == nil {
		return
	}
	p.stopTick()
	if p.m.Live != nil {
		p.draw()
		fmt.Fprintln(p.m.Live)
	}
	p.tick = nil
}
