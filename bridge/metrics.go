package bridge

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the bridge's Prometheus metrics. The portals report through
// the portal.Metrics interface, which this type implements.
type metrics struct {
	registry *prometheus.Registry
	bridged  *prometheus.CounterVec
	failures *prometheus.CounterVec
	handling *prometheus.HistogramVec
}

func newMetrics(b *Bridge) *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		bridged: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mxpp_bridged_total", Help: "Events bridged, by direction and type.",
		}, []string{"direction", "type"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mxpp_failures_total", Help: "Events that failed to cross, by direction and reason.",
		}, []string{"direction", "reason"}),
		handling: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "mxpp_handler_seconds", Help: "Time a portal took to handle an event, by event kind.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"kind"}),
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	count := func(q func(context.Context) (int, error)) func() float64 {
		return func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			n, err := q(ctx)
			if err != nil {
				return -1
			}
			return float64(n)
		}
	}
	m.registry.MustRegister(m.bridged, m.failures, m.handling,
		gauge("mxpp_xmpp_connected", "Whether the component is connected to the XMPP server (1) or not (0).", func() float64 {
			if b.XMPP.Connected() {
				return 1
			}
			return 0
		}),
		gauge("mxpp_queue_depth", "Events waiting in all portal queues.", func() float64 {
			b.mu.Lock()
			defer b.mu.Unlock()
			n := 0
			for _, p := range b.byRoom {
				n += p.QueueLen()
			}
			return float64(n)
		}),
		gauge("mxpp_direct_chats", "Direct chats between Matrix and XMPP users.", count(b.DB.Portal.CountDirect)),
		gauge("mxpp_portals_running", "Portals of every kind (hosted rooms, direct chats, MUCs hosted elsewhere) with a running loop.", func() float64 {
			b.mu.Lock()
			defer b.mu.Unlock()
			return float64(len(b.byRoom))
		}),
		gauge("mxpp_remote_portals", "Portals into MUCs hosted elsewhere.", count(b.DB.Portal.CountRemote)),
		gauge("mxpp_remote_occupants", "Matrix users' occupants of MUCs hosted elsewhere.", count(b.DB.RemoteOccupant.CountActive)),
		gauge("mxpp_puppets", "Puppets of XMPP users.", count(b.DB.Puppet.Count)),
		gauge("mxpp_occupant_sessions", "XMPP sessions joined to bridged rooms.", count(b.DB.Occupant.Count)),
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}),
	)
	return m
}

// Bridged implements portal.Metrics.
func (m *metrics) Bridged(direction, kind string) { m.bridged.WithLabelValues(direction, kind).Inc() }

// Failed implements portal.Metrics.
func (m *metrics) Failed(direction, reason string) {
	m.failures.WithLabelValues(direction, reason).Inc()
}

// Handled implements portal.Metrics.
func (m *metrics) Handled(kind string, d time.Duration) {
	m.handling.WithLabelValues(kind).Observe(d.Seconds())
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}
