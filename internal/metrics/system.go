package metrics

import (
	"runtime"
	runtimemetrics "runtime/metrics"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// runtime/metrics samples read at every scrape. Unlike
// runtime.ReadMemStats they do not stop the world.
const (
	sampleHeapUsed    = "/memory/classes/heap/objects:bytes" // MemStats.HeapAlloc
	sampleHeapObjects = "/gc/heap/objects:objects"           // MemStats.HeapObjects
	sampleStackInUse  = "/memory/classes/heap/stacks:bytes"  // MemStats.StackInuse
	sampleStackOS     = "/memory/classes/os-stacks:bytes"    // StackSys - StackInuse
)

// systemCollector samples the kes_system_* gauges when the registry is
// gathered.
type systemCollector struct {
	start time.Time
	now   func() time.Time

	upTime, numCPU, numCPUUsed, numThreads *prometheus.Desc
	heapUsed, heapObjects, stackUsed       *prometheus.Desc
}

func newSystemCollector(start time.Time, now func() time.Time) *systemCollector {
	desc := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, nil, nil)
	}
	return &systemCollector{
		start:       start,
		now:         now,
		upTime:      desc("kes_system_up_time", "The time the server has been up and running in seconds."),
		numCPU:      desc("kes_system_num_cpu", "The number of logical CPUs available on the system."),
		numCPUUsed:  desc("kes_system_num_cpu_used", "The number of logical CPUs usable by the server (GOMAXPROCS)."),
		numThreads:  desc("kes_system_num_threads", "The number of goroutines that currently exist."),
		heapUsed:    desc("kes_system_mem_heap_used", "The number of bytes of allocated heap objects."),
		heapObjects: desc("kes_system_mem_heap_objects", "The number of allocated heap objects."),
		stackUsed:   desc("kes_system_mem_stack_used", "The number of bytes of stack memory obtained from the OS."),
	}
}

// Describe implements prometheus.Collector.
func (c *systemCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.upTime, c.numCPU, c.numCPUUsed, c.numThreads, c.heapUsed, c.heapObjects, c.stackUsed,
	} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *systemCollector) Collect(ch chan<- prometheus.Metric) {
	samples := []runtimemetrics.Sample{
		{Name: sampleHeapUsed}, {Name: sampleHeapObjects}, {Name: sampleStackInUse}, {Name: sampleStackOS},
	}
	runtimemetrics.Read(samples)

	upTime := c.now().Sub(c.start).Truncate(10 * time.Millisecond)
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	gauge(c.upTime, upTime.Seconds())
	gauge(c.numCPU, float64(runtime.NumCPU()))
	gauge(c.numCPUUsed, float64(runtime.GOMAXPROCS(0)))
	gauge(c.numThreads, float64(runtime.NumGoroutine()))
	gauge(c.heapUsed, uint64Value(samples[0]))
	gauge(c.heapObjects, uint64Value(samples[1]))
	gauge(c.stackUsed, uint64Value(samples[2])+uint64Value(samples[3]))
}

// uint64Value returns the value of s, or 0 if this runtime does not
// support the sample.
func uint64Value(s runtimemetrics.Sample) float64 {
	if s.Value.Kind() != runtimemetrics.KindUint64 {
		return 0
	}
	return float64(s.Value.Uint64())
}
