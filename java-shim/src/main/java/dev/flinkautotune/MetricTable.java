package dev.flinkautotune;

import java.util.ArrayDeque;
import java.util.HashMap;
import java.util.Map;

import org.apache.flink.metrics.Counter;
import org.apache.flink.metrics.Gauge;
import org.apache.flink.metrics.Meter;
import org.apache.flink.metrics.Metric;

/**
 * The tracked metrics by slot, shared by the task threads that register metrics and the
 * metric thread that reads them.
 *
 * <p>Registration and removal take a short lock; reading does not hold it while it calls
 * into metrics (gauges run user code). A freed slot is reused only after the next read
 * has started, so a value read for the old metric can never be attributed to a new one.
 */
final class MetricTable {
    /** Registers a new slot with the native side; returns whether the metric is tracked. */
    interface Registrar {
        boolean register(int slot);
    }

    /** Tells the native side a slot is gone. */
    interface Unregistrar {
        void unregister(int slot);
    }

    private final Object lock = new Object();
    /** Per slot: its kind and the metric in the array of that kind, so reads need no casts. */
    private Columns columns = new Columns(64); // guarded by lock; replaced when grown, never shrunk
    private int size; // guarded by lock: highest slot in use + 1
    private int tracked; // guarded by lock
    private final Map<Key, Integer> slots = new HashMap<>(); // guarded by lock
    private final ArrayDeque<Integer> free = new ArrayDeque<>(); // guarded by lock
    private final ArrayDeque<Integer> quarantined = new ArrayDeque<>(); // guarded by lock

    /** Kind code of a metric the native side can use, or 0 (histograms and others). */
    static int kindOf(Metric metric) {
        if (metric instanceof Counter) {
            return AutotuneNative.KIND_COUNTER;
        }
        if (metric instanceof Meter) {
            return AutotuneNative.KIND_METER;
        }
        if (metric instanceof Gauge) {
            return AutotuneNative.KIND_GAUGE;
        }
        return 0;
    }

    /** Adds a metric; the registrar runs under the lock so slots and native state agree. */
    boolean add(Metric metric, String identifier, int kind, Registrar registrar) {
        Key key = new Key(metric, identifier);
        synchronized (lock) {
            if (slots.containsKey(key)) {
                return false;
            }
            int slot = free.isEmpty() ? size : free.pop();
            if (!registrar.register(slot)) {
                if (slot < size) {
                    free.push(slot);
                }
                return false;
            }
            if (slot >= columns.kinds.length) {
                columns = columns.grow(Math.max(slot + 1, columns.kinds.length * 2));
            }
            columns.put(slot, metric, kind); // published after the native side knows the slot
            size = Math.max(size, slot + 1);
            slots.put(key, slot);
            tracked++;
            return true;
        }
    }

    void remove(Metric metric, String identifier, Unregistrar unregistrar) {
        synchronized (lock) {
            Integer slot = slots.remove(new Key(metric, identifier));
            if (slot == null) {
                return;
            }
            columns.clear(slot);
            tracked--;
            quarantined.push(slot);
            unregistrar.unregister(slot);
        }
    }

    int tracked() {
        synchronized (lock) {
            return tracked;
        }
    }

    /**
     * Reads every slot's value into {@code out} (grown if needed) and returns the array and the
     * count. Only the metric thread calls this.
     */
    Values read(Values out) {
        Columns snapshot;
        int count;
        synchronized (lock) {
            snapshot = columns;
            count = size;
            // Slots freed before this read may be reused from now on: every value read from
            // now on is read after their removal.
            while (!quarantined.isEmpty()) {
                free.push(quarantined.pop());
            }
        }
        double[] values = out.values.length >= count ? out.values : new double[Math.max(count, out.values.length * 2)];
        snapshot.read(values, count);
        return new Values(values, count);
    }

    /** Slot-indexed columns; a removed slot has kind 0 and reads as NaN. */
    private static final class Columns {
        final byte[] kinds;
        final Counter[] counters;
        final Meter[] meters;
        final Gauge<?>[] gauges;

        Columns(int capacity) {
            kinds = new byte[capacity];
            counters = new Counter[capacity];
            meters = new Meter[capacity];
            gauges = new Gauge<?>[capacity];
        }

        Columns grow(int capacity) {
            Columns grown = new Columns(capacity);
            System.arraycopy(kinds, 0, grown.kinds, 0, kinds.length);
            System.arraycopy(counters, 0, grown.counters, 0, counters.length);
            System.arraycopy(meters, 0, grown.meters, 0, meters.length);
            System.arraycopy(gauges, 0, grown.gauges, 0, gauges.length);
            return grown;
        }

        void put(int slot, Metric metric, int kind) {
            switch (kind) {
                case AutotuneNative.KIND_COUNTER:
                    counters[slot] = (Counter) metric;
                    break;
                case AutotuneNative.KIND_METER:
                    meters[slot] = (Meter) metric;
                    break;
                default:
                    gauges[slot] = (Gauge<?>) metric;
            }
            kinds[slot] = (byte) kind;
        }

        void clear(int slot) {
            kinds[slot] = 0;
            counters[slot] = null;
            meters[slot] = null;
            gauges[slot] = null;
        }

        void read(double[] out, int count) {
            for (int i = 0; i < count; i++) {
                out[i] = valueAt(i);
            }
        }

        private double valueAt(int slot) {
            // Read each column once: a concurrent clear() turns the slot into NaN, never an NPE.
            try {
                switch (kinds[slot]) {
                    case AutotuneNative.KIND_COUNTER:
                        return counters[slot].getCount();
                    case AutotuneNative.KIND_METER:
                        return meters[slot].getRate();
                    case AutotuneNative.KIND_GAUGE:
                        return gaugeValue(gauges[slot].getValue());
                    default:
                        return Double.NaN;
                }
            } catch (RuntimeException e) {
                return Double.NaN; // a gauge's own bug (or a slot cleared under us) must not stop the round
            }
        }
    }

    static double gaugeValue(Object value) {
        if (value instanceof Number) {
            return ((Number) value).doubleValue();
        }
        if (value instanceof Boolean) {
            return ((Boolean) value) ? 1.0 : 0.0;
        }
        return Double.NaN; // null or not a number: "no value this round"
    }

    /** A reusable values array and how much of it the last read filled. */
    static final class Values {
        final double[] values;
        final int count;

        Values(double[] values, int count) {
            this.values = values;
            this.count = count;
        }
    }

    /** Metrics are keyed by object identity and identifier: Flink may register one object twice. */
    private static final class Key {
        private final Metric metric;
        private final String identifier;

        Key(Metric metric, String identifier) {
            this.metric = metric;
            this.identifier = identifier;
        }

        @Override
        public boolean equals(Object o) {
            if (!(o instanceof Key)) {
                return false;
            }
            Key other = (Key) o;
            return metric == other.metric && identifier.equals(other.identifier);
        }

        @Override
        public int hashCode() {
            return System.identityHashCode(metric) * 31 + identifier.hashCode();
        }
    }
}
