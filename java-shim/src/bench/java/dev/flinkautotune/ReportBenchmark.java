package dev.flinkautotune;

import java.lang.reflect.Constructor;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import org.apache.flink.metrics.Counter;
import org.apache.flink.metrics.Gauge;
import org.apache.flink.metrics.Meter;
import org.apache.flink.metrics.MeterView;
import org.apache.flink.metrics.Metric;
import org.apache.flink.metrics.MetricConfig;
import org.apache.flink.metrics.MetricGroup;
import org.apache.flink.metrics.SimpleCounter;
import org.apache.flink.metrics.reporter.MetricReporter;
import org.apache.flink.metrics.reporter.Scheduled;

/**
 * Cost of one {@code report()} per registered metric, for three subjects in the same run:
 * a Java loop that only reads the values (the floor any reporter pays), the autotune reporter
 * (read + one native call), and Flink's own Slf4jReporter. Prints figures; never fails on timing.
 *
 * <p>Run with {@code scripts/bench.sh}.
 */
public final class ReportBenchmark {
    private static final String[][] TASK_METRICS = {
        {"busyTimeMsPerSecond", "gauge"}, {"backPressuredTimeMsPerSecond", "gauge"}, {"idleTimeMsPerSecond", "gauge"},
        {"numRecordsIn", "counter"}, {"numRecordsOut", "counter"}, {"numRecordsInPerSecond", "meter"},
        {"numRecordsOutPerSecond", "meter"}, {"numBytesInPerSecond", "meter"}, {"numBytesOutPerSecond", "meter"},
        {"checkpointStartDelayNanos", "gauge"},
    };

    private ReportBenchmark() {}

    /** A Flink-like metric: the object, its name and its group. */
    private static final class Registered {
        final Metric metric;
        final String name;
        final MetricGroup group;

        Registered(Metric metric, String name, MetricGroup group) {
            this.metric = metric;
            this.name = name;
            this.group = group;
        }
    }

    public static void main(String[] args) throws Exception {
        int[] sizes = args.length > 0 ? Arrays.stream(args[0].split(",")).mapToInt(Integer::parseInt).toArray()
                : new int[] {1_000, 10_000, 50_000};
        String library = System.getProperty("autotune.nativeLibrary");
        System.out.printf("%-8s %14s %16s %14s %12s %13s %14s%n",
                "metrics", "floor ns/m", "autotune ns/m", "slf4j ns/m", "at/floor", "slf4j/at", "native B/m");
        for (int size : sizes) {
            List<Registered> metrics = metrics(size);

            Runnable floor = floorReader(metrics);

            AutotuneReporter autotune = new AutotuneReporter();
            MetricConfig config = new MetricConfig();
            if (library != null) {
                config.setProperty(AutotuneReporter.OPTION_NATIVE_LIBRARY, library);
            }
            autotune.open(config);
            if (!autotune.isEnabled()) {
                throw new IllegalStateException("the native library did not load; see the log above");
            }
            long heapBefore = AutotuneNative.nativeHeapBytes();
            for (Registered r : metrics) {
                autotune.notifyOfAddedMetric(r.metric, r.name, r.group);
            }
            autotune.report(); // sizes the windows
            double nativeBytesPerMetric = (AutotuneNative.nativeHeapBytes() - heapBefore) / (double) size;
            if (autotune.trackedMetrics() != size) {
                throw new IllegalStateException("tracked " + autotune.trackedMetrics() + " of " + size);
            }

            MetricReporter slf4j = slf4jReporter();
            slf4j.open(new MetricConfig());
            for (Registered r : metrics) {
                slf4j.notifyOfAddedMetric(r.metric, r.name, r.group);
            }

            Runnable[] subjects = {floor, autotune::report, ((Scheduled) slf4j)::report};
            int rounds = Math.max(3, 2_000_000 / size);
            for (Runnable s : subjects) {
                for (int i = 0; i < rounds * 3; i++) {
                    s.run();
                }
            }
            int repetitions = 21;
            double[][] nsPerMetric = new double[subjects.length][repetitions];
            // Interleaved, so a noisy moment hurts every subject alike; medians below.
            for (int rep = 0; rep < repetitions; rep++) {
                for (int s = 0; s < subjects.length; s++) {
                    long start = System.nanoTime();
                    for (int i = 0; i < rounds; i++) {
                        subjects[s].run();
                    }
                    nsPerMetric[s][rep] = (System.nanoTime() - start) / (double) rounds / size;
                }
            }
            // Ratios are taken within each repetition (the subjects ran back to back), then the
            // median: a machine-wide slowdown during one repetition cancels out.
            double[] autotuneOverFloor = new double[repetitions];
            double[] slf4jOverAutotune = new double[repetitions];
            for (int rep = 0; rep < repetitions; rep++) {
                autotuneOverFloor[rep] = nsPerMetric[1][rep] / nsPerMetric[0][rep];
                slf4jOverAutotune[rep] = nsPerMetric[2][rep] / nsPerMetric[1][rep];
            }
            System.out.printf("%-8d %14.2f %16.2f %14.2f %11.2fx %12.1fx %14.0f%n", size, median(nsPerMetric[0]),
                    median(nsPerMetric[1]), median(nsPerMetric[2]), median(autotuneOverFloor),
                    median(slf4jOverAutotune), nativeBytesPerMetric);
            autotune.close();
            slf4j.close();
        }
    }

    private static double median(double[] values) {
        double[] sorted = values.clone();
        Arrays.sort(sorted);
        return sorted[sorted.length / 2];
    }

    /**
     * What every reporter must do at least: read each value, in registration order. The type
     * of each metric is resolved beforehand, so the loop pays no type check or cast at all.
     */
    private static Runnable floorReader(List<Registered> metrics) {
        int n = metrics.size();
        Gauge<?>[] gauges = new Gauge<?>[n];
        Counter[] counters = new Counter[n];
        Meter[] meters = new Meter[n];
        byte[] kinds = new byte[n];
        for (int i = 0; i < n; i++) {
            Metric metric = metrics.get(i).metric;
            if (metric instanceof Gauge) {
                gauges[i] = (Gauge<?>) metric;
            } else if (metric instanceof Counter) {
                counters[i] = (Counter) metric;
                kinds[i] = 1;
            } else {
                meters[i] = (Meter) metric;
                kinds[i] = 2;
            }
        }
        double[] out = new double[n];
        return () -> {
            for (int i = 0; i < n; i++) {
                switch (kinds[i]) {
                    case 1:
                        out[i] = counters[i].getCount();
                        break;
                    case 2:
                        out[i] = meters[i].getRate();
                        break;
                    default:
                        Object v = gauges[i].getValue();
                        out[i] = v instanceof Number ? ((Number) v).doubleValue() : Double.NaN;
                }
            }
        };
    }

    /** Task metrics of many subtasks, as a big TaskManager registers them. */
    private static List<Registered> metrics(int size) {
        List<Registered> out = new ArrayList<>(size);
        int subtask = 0;
        while (out.size() < size) {
            int vertex = subtask / 100;
            ScopedGroup group = ScopedGroup.task("4f0e5c2d9a8b7c6d5e4f3a2b1c0d9e8f",
                    String.format("%032x", vertex), "Vertex " + vertex, subtask % 100);
            for (String[] m : TASK_METRICS) {
                if (out.size() == size) {
                    break;
                }
                long seed = out.size();
                Metric metric;
                switch (m[1]) {
                    case "counter":
                        SimpleCounter c = new SimpleCounter();
                        c.inc(seed);
                        metric = c;
                        break;
                    case "meter":
                        metric = new MeterView(new SimpleCounter(), 60);
                        break;
                    default:
                        metric = (Gauge<Double>) () -> (double) (seed % 1000);
                }
                out.add(new Registered(metric, m[0], group));
            }
            subtask++;
        }
        return out;
    }

    private static MetricReporter slf4jReporter() throws Exception {
        Class<?> type = Class.forName("org.apache.flink.metrics.slf4j.Slf4jReporter");
        Constructor<?> constructor = type.getConstructor();
        return (MetricReporter) constructor.newInstance();
    }
}
