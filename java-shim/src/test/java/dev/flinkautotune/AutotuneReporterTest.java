package dev.flinkautotune;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import org.apache.flink.metrics.Gauge;
import org.apache.flink.metrics.Metric;
import org.apache.flink.metrics.MetricConfig;
import org.apache.flink.metrics.SimpleCounter;
import org.junit.After;
import org.junit.Test;

/** The reporter with the real native library (built by cargo), as Flink drives it. */
public class AutotuneReporterTest {
    private final AutotuneReporter reporter = new AutotuneReporter();

    private static MetricConfig config() {
        MetricConfig config = new MetricConfig();
        config.setProperty(AutotuneReporter.OPTION_NATIVE_LIBRARY, System.getProperty("autotune.nativeLibrary"));
        config.setProperty("interval", "10 SECONDS");
        return config;
    }

    @After
    public void close() {
        reporter.close();
    }

    @Test
    public void tracksWhatTheModelsReadAndIgnoresTheRest() {
        reporter.open(config());
        assertThat(reporter.isEnabled()).isTrue();
        ScopedGroup work0 = ScopedGroup.task("job-1", "vertex-work", "Work", 0);
        Gauge<Double> busy = () -> 1000.0;
        reporter.notifyOfAddedMetric(busy, "busyTimeMsPerSecond", work0);
        reporter.notifyOfAddedMetric(new SimpleCounter(), "numRecordsIn", work0);
        reporter.notifyOfAddedMetric(new SimpleCounter(), "myOwnCounter", work0);
        reporter.notifyOfAddedMetric(new SimpleCounter(), "myOwnCounter",
                new ScopedGroup("taskmanager.job.task.operator.mine", "<tm_id>", "tm-1"));
        assertThat(reporter.trackedMetrics()).isEqualTo(2);

        reporter.report();
        reporter.report();
        reporter.notifyOfRemovedMetric(busy, "busyTimeMsPerSecond", work0);
        reporter.report();
        assertThat(reporter.trackedMetrics()).isEqualTo(1);
        assertThat(reporter.nativeCallFailed()).isFalse();
    }

    @Test
    public void aTaskManagerPublishesItsLiveHeapAndPoolWindow() {
        reporter.open(config());
        ScopedGroup heap = new ScopedGroup(AutotuneReporter.HEAP_GROUP_SCOPE, "<host>", "127.0.0.1", "<tm_id>", "tm-1");
        Map<String, Metric> published = new HashMap<>();
        heap.onAdded = (name, metric) -> {
            published.put(name, metric);
            reporter.notifyOfAddedMetric(metric, name, heap);
        };
        Gauge<Long> used = () -> Runtime.getRuntime().totalMemory() - Runtime.getRuntime().freeMemory();
        reporter.notifyOfAddedMetric(used, "Used", heap);
        assertThat(published).isEmpty(); // not from inside Flink's registration

        reporter.report();
        assertThat(published).containsOnlyKeys(
                AutotuneReporter.AFTER_GC_GAUGE, AutotuneReporter.POOLS_GAUGE, AutotuneReporter.TASKS_GAUGE,
                AutotuneReporter.PROFILES_GAUGE);
        // Nothing sampled yet, no subtask running.
        assertThat(((Gauge<?>) published.get(AutotuneReporter.PROFILES_GAUGE)).getValue()).isEqualTo("");
        assertThat(((Gauge<?>) published.get(AutotuneReporter.TASKS_GAUGE)).getValue()).isEqualTo("");
        // The live heap is read like Flink's own metrics; the window is for the JobManager only.
        assertThat(reporter.trackedMetrics()).isEqualTo(2);
        System.gc();
        assertThat((Double) ((Gauge<?>) published.get(AutotuneReporter.AFTER_GC_GAUGE)).getValue()).isPositive();
        reporter.report();
        reporter.report();
        String window = (String) ((Gauge<?>) published.get(AutotuneReporter.POOLS_GAUGE)).getValue();
        assertThat(window).contains("\"samples\":3").contains("\"heap_used_peak\":").contains("\"heap_after_gc_peak\":");
        reporter.report();
        assertThat(published).hasSize(4); // published once
        assertThat(reporter.nativeCallFailed()).isFalse();
    }

    /** A vertex busy in this TaskManager gets its task thread sampled, and the profile published. */
    @Test
    public void aSaturatedVertexIsSampledOffTheMetricThreadAndPublished() throws Exception {
        MetricConfig config = config();
        config.setProperty("flamegraph-samples", "10");
        config.setProperty("flamegraph-sample-interval", "5 ms");
        reporter.open(config);
        ScopedGroup heap = new ScopedGroup(AutotuneReporter.HEAP_GROUP_SCOPE, "<host>", "127.0.0.1", "<tm_id>", "tm-1");
        Map<String, Metric> published = new HashMap<>();
        heap.onAdded = (name, metric) -> published.put(name, metric);
        reporter.notifyOfAddedMetric((Gauge<Long>) () -> 1L, "Used", heap);
        ScopedGroup task = ScopedGroup.task("job-1", "v-work", "Work", 0);
        reporter.notifyOfAddedMetric((Gauge<Double>) () -> 900.0, "busyTimeMsPerSecond", task);
        ThreadGroup taskThreads = new ThreadGroup(TaskThreadSampler.TASK_THREAD_GROUP);
        Thread work = new Thread(taskThreads, () -> {
            long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
            while (System.nanoTime() < until && !Thread.currentThread().isInterrupted()) {
                Thread.onSpinWait();
            }
        }, "Work (1/1)#0");
        work.setDaemon(true);
        work.start();
        try {
            Gauge<?> profiles = null;
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(15);
            String json = "";
            while (System.nanoTime() < deadline && !json.contains("\"samples\":10")) {
                reporter.report();
                profiles = (Gauge<?>) published.get(AutotuneReporter.PROFILES_GAUGE);
                json = profiles == null ? "" : (String) profiles.getValue();
                Thread.sleep(100);
            }
            assertThat(json).contains("\"vertex_id\":\"v-work\"").contains("\"threads\":1").contains("\"samples\":10");
            // The subtask's load is published beside it, for the coordinator's windows.
            String loads = (String) ((Gauge<?>) published.get(AutotuneReporter.TASKS_GAUGE)).getValue();
            assertThat(loads).contains("{\"job_id\":\"job-1\",\"vertex_id\":\"v-work\",\"subtask\":0,\"busy_ms\":900.0");
            assertThat(reporter.nativeCallFailed()).isFalse();
        } finally {
            work.interrupt();
        }
    }

    @Test
    public void registrationOnTaskThreadsWhileTheMetricThreadReports() throws Exception {
        reporter.open(config());
        ExecutorService tasks = Executors.newFixedThreadPool(4);
        List<Future<?>> running = new ArrayList<>();
        for (int t = 0; t < 4; t++) {
            int thread = t;
            running.add(tasks.submit(() -> {
                for (int round = 0; round < 50; round++) {
                    List<SimpleCounter> counters = new ArrayList<>();
                    ScopedGroup group = ScopedGroup.task("job-" + thread, "v" + thread, "Vertex " + thread, round);
                    for (int i = 0; i < 20; i++) {
                        SimpleCounter c = new SimpleCounter();
                        counters.add(c);
                        reporter.notifyOfAddedMetric(c, i % 2 == 0 ? "numRecordsIn" : "numRecordsOut",
                                new ScopedGroup("taskmanager.job.task", "<tm_id>", "tm", "<job_id>", "job-" + thread,
                                        "<job_name>", "j", "<task_id>", "v" + thread, "<task_name>", "V",
                                        "<subtask_index>", String.valueOf(round * 20 + i)));
                    }
                    for (int i = 0; i < 20; i++) {
                        reporter.notifyOfRemovedMetric(counters.get(i), i % 2 == 0 ? "numRecordsIn" : "numRecordsOut",
                                new ScopedGroup("taskmanager.job.task", "<tm_id>", "tm", "<job_id>", "job-" + thread,
                                        "<job_name>", "j", "<task_id>", "v" + thread, "<task_name>", "V",
                                        "<subtask_index>", String.valueOf(round * 20 + i)));
                    }
                    group.getAllVariables();
                }
            }));
        }
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (running.stream().anyMatch(f -> !f.isDone()) && System.nanoTime() < deadline) {
            reporter.report();
        }
        for (Future<?> f : running) {
            f.get(30, TimeUnit.SECONDS);
        }
        tasks.shutdown();
        reporter.report();
        assertThat(reporter.trackedMetrics()).isZero();
        assertThat(reporter.nativeCallFailed()).isFalse();
    }

    @Test
    public void closingTwiceAndReportingAfterCloseAreHarmless() {
        reporter.open(config());
        reporter.close();
        reporter.close();
        reporter.report();
        reporter.notifyOfAddedMetric(new SimpleCounter(), "numRecordsIn", ScopedGroup.task("j", "v", "V", 0));
        assertThat(reporter.nativeCallFailed()).isFalse();
        assertThat(reporter.isEnabled()).isFalse();
    }
}
