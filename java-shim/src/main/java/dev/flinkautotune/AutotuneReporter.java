package dev.flinkautotune;

import java.io.IOException;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.LongFunction;

import org.apache.flink.metrics.CharacterFilter;
import org.apache.flink.metrics.Gauge;
import org.apache.flink.metrics.LogicalScopeProvider;
import org.apache.flink.metrics.Metric;
import org.apache.flink.metrics.MetricConfig;
import org.apache.flink.metrics.MetricGroup;
import org.apache.flink.metrics.reporter.MetricReporter;
import org.apache.flink.metrics.reporter.Scheduled;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The flink-autotune reporter: registers metric identities with the native library once,
 * then hands all tracked values over in one native call per {@link #report()}.
 *
 * <p>It never throws into Flink: a library that cannot load turns it into a logged no-op,
 * and a native error is logged once while reporting goes on.
 */
public class AutotuneReporter implements MetricReporter, Scheduled {
    static final String OPTION_NATIVE_LIBRARY = "native-library";
    static final String OPTION_LOG_FILE = "log-file";
    static final String OPTION_FLINK_VERSION = "flink-version";
    static final String OPTION_NATIVE_TMPDIR = "native-tmpdir";
    /** The TaskManager group the plugin's own gauges join: where Flink's heap metrics are. */
    static final String HEAP_GROUP_SCOPE = "taskmanager.Status.JVM.Memory.Heap";
    static final String AFTER_GC_GAUGE = "AutotuneAfterGc";
    static final String POOLS_GAUGE = "AutotunePools";
    static final String TASKS_GAUGE = "AutotuneTasks";
    static final String PROFILES_GAUGE = "AutotuneProfiles";

    private static final Logger LOG = LoggerFactory.getLogger(AutotuneReporter.class);
    /** The level of this logger (and its children) is the level native code logs at. */
    private static final Logger LEVEL_REFERENCE = LoggerFactory.getLogger("dev.flinkautotune");
    private static final CharacterFilter KEEP = input -> input;

    private final Object nativeLock = new Object();
    private volatile long handle; // written under nativeLock; 0 = disabled or closed
    private final MetricTable table = new MetricTable();
    private final AtomicBoolean nativeFailureLogged = new AtomicBoolean();
    private final AtomicBoolean coordinatorConfigured = new AtomicBoolean();
    private MetricTable.Values values = new MetricTable.Values(new double[0], 0); // metric thread only
    private long lastReadNanos; // metric thread only
    private long lastCostNanos; // metric thread only
    /** A TaskManager heap group seen at registration, waiting for the plugin's gauges. */
    private final AtomicReference<MetricGroup> heapGroupToPublish = new AtomicReference<>();
    private final TaskThreadSampler sampler = new TaskThreadSampler();
    private final PublishedFigures figures = new PublishedFigures();

    @Override
    public void open(MetricConfig config) {
        NativeLog.install(Slf4jSink.INSTANCE);
        NativeLoader.Result loaded =
                NativeLoader.load(config.getString(OPTION_NATIVE_LIBRARY, null), config.getString(OPTION_NATIVE_TMPDIR, null));
        if (!loaded.loaded) {
            if (loaded.firstAttempt) {
                LOG.error("AUTOTUNE DISABLED native library not loaded: {}. Fix: {}. Flink keeps running; "
                        + "this reporter does nothing.", loaded.cause, loaded.fix);
            }
            return;
        }
        List<String> keys = new ArrayList<>();
        List<String> vals = new ArrayList<>();
        for (Map.Entry<Object, Object> option : config.entrySet()) {
            keys.add(String.valueOf(option.getKey()));
            vals.add(String.valueOf(option.getValue()));
        }
        // Keys are spelled for the release that reads them, even when the log's banner is gone.
        String flinkVersion = FlinkConfiguration.flinkVersion();
        if (!config.containsKey(OPTION_FLINK_VERSION) && flinkVersion != null && !flinkVersion.trim().isEmpty()) {
            keys.add(OPTION_FLINK_VERSION);
            vals.add(flinkVersion);
        }
        // The diagnosis follows this process's own log unless told otherwise.
        String ownLog = System.getProperty("log.file");
        if (!config.containsKey(OPTION_LOG_FILE) && ownLog != null && !ownLog.trim().isEmpty()) {
            keys.add(OPTION_LOG_FILE);
            vals.add(ownLog);
        }
        try {
            long opened = AutotuneNative.open(
                    keys.toArray(new String[0]), vals.toArray(new String[0]), pluginVersion(), NativeLoader.platform());
            synchronized (nativeLock) {
                handle = opened;
            }
            LOG.debug("flink-autotune native library from {}", loaded.source);
        } catch (RuntimeException | LinkageError e) {
            LOG.error("AUTOTUNE DISABLED native library failed to start: {}. Flink keeps running; "
                    + "this reporter does nothing.", e.toString());
        }
    }

    @Override
    public void close() {
        sampler.close();
        synchronized (nativeLock) {
            long h = handle;
            handle = 0;
            if (h != 0) {
                try {
                    AutotuneNative.close(h);
                } catch (RuntimeException e) {
                    logNativeFailure("close", e);
                }
            }
        }
    }

    @Override
    public void notifyOfAddedMetric(Metric metric, String metricName, MetricGroup group) {
        int kind = MetricTable.kindOf(metric);
        if (handle == 0 || kind == 0 || metric instanceof PublishedFigures.Figure) {
            return;
        }
        try {
            Map<String, String> variables = group.getAllVariables();
            String[] keys = variables.keySet().toArray(new String[0]);
            String[] vals = new String[keys.length];
            for (int i = 0; i < keys.length; i++) {
                vals[i] = String.valueOf(variables.get(keys[i]));
            }
            String logicalScope = logicalScope(group);
            if (logicalScope != null && logicalScope.startsWith("jobmanager")) {
                configureCoordinator();
            }
            if (PublishedFigures.JOB_SCOPE.equals(logicalScope)) {
                figures.jobGroupSeen(variables, group);
            }
            if (HEAP_GROUP_SCOPE.equals(logicalScope) && "Used".equals(metricName)) {
                // Registering from inside Flink's registration would re-enter it: next round.
                heapGroupToPublish.set(group);
            }
            table.add(metric, group.getMetricIdentifier(metricName), kind, slot -> {
                synchronized (nativeLock) {
                    return handle != 0
                            && AutotuneNative.register(handle, slot, keys, vals, logicalScope, metricName, kind);
                }
            });
        } catch (RuntimeException e) {
            logNativeFailure("registering " + metricName, e);
        }
    }

    @Override
    public void notifyOfRemovedMetric(Metric metric, String metricName, MetricGroup group) {
        if (handle == 0 || metric instanceof PublishedFigures.Figure) {
            return;
        }
        try {
            if (PublishedFigures.JOB_SCOPE.equals(logicalScope(group))) {
                figures.jobGroupClosed(group.getAllVariables());
            }
            table.remove(metric, group.getMetricIdentifier(metricName), slot -> {
                synchronized (nativeLock) {
                    if (handle != 0) {
                        AutotuneNative.unregister(handle, slot);
                    }
                }
            });
        } catch (RuntimeException e) {
            logNativeFailure("removing " + metricName, e);
        }
    }

    @Override
    public void report() {
        if (handle == 0) {
            return;
        }
        publishGauges();
        long start = System.nanoTime();
        try {
            values = table.read(values);
            long read = System.nanoTime() - start;
            String[] toSample = null;
            synchronized (nativeLock) {
                if (handle != 0) {
                    toSample = AutotuneNative.report(
                            handle, values.values, values.count, lastReadNanos, lastCostNanos, logLevel());
                }
            }
            if (toSample != null) {
                sampler.submit(toSample, this::profileSampled);
            }
            lastReadNanos = read;
        } catch (RuntimeException e) {
            logNativeFailure("report", e);
        }
        publishFigures();
        lastCostNanos = System.nanoTime() - start;
    }

    /**
     * In the JobManager: the coordinator's figures that changed, into the gauges of the jobs'
     * groups (registered outside our lock: Flink calls every reporter back).
     */
    private void publishFigures() {
        if (!coordinatorConfigured.get()) {
            return;
        }
        try {
            String[] changed;
            synchronized (nativeLock) {
                changed = handle == 0 ? null : AutotuneNative.figures(handle, figures.version());
            }
            if (changed != null) {
                figures.update(changed);
            }
            figures.registerNew();
        } catch (RuntimeException e) {
            logNativeFailure("publishing the figures", e);
        }
    }

    /**
     * In a TaskManager, once: adds the heap left after collections (which this reporter then
     * reads like any metric), and the pool window, the subtask loads and the profiles the
     * JobManager's coordinator reads over REST.
     * Runs on the reporter thread holding no lock of ours: Flink calls back into
     * {@link #notifyOfAddedMetric} for each.
     */
    private void publishGauges() {
        MetricGroup group = heapGroupToPublish.getAndSet(null);
        if (group == null) {
            return;
        }
        try {
            group.gauge(AFTER_GC_GAUGE, new HeapAfterGc());
            group.gauge(POOLS_GAUGE, (Gauge<String>) () -> nativeJson("poolWindow", AutotuneNative::poolWindow));
            group.gauge(TASKS_GAUGE, (Gauge<String>) () -> nativeJson("taskLoads", AutotuneNative::taskLoads));
            group.gauge(PROFILES_GAUGE, (Gauge<String>) () -> nativeJson("profiles", AutotuneNative::profiles));
        } catch (RuntimeException e) {
            logNativeFailure("publishing the pool gauges", e);
        }
    }

    /**
     * A published gauge's JSON from the native side; empty when there is none (yet) or the
     * plugin is off.
     */
    private String nativeJson(String what, LongFunction<String> call) {
        synchronized (nativeLock) {
            if (handle == 0) {
                return "";
            }
            try {
                String json = call.apply(handle);
                return json == null ? "" : json;
            } catch (RuntimeException e) {
                logNativeFailure(what, e);
                return "";
            }
        }
    }

    /** On the sampler's thread: hands a vertex's samples to the native side. */
    private void profileSampled(String jobId, String vertexId, String vertexName, String[] stacks, int threads,
            long samplingNanos, long samplingMaxNanos) {
        synchronized (nativeLock) {
            if (handle == 0) {
                return;
            }
            try {
                AutotuneNative.profile(handle, jobId, vertexId, vertexName, stacks, threads, samplingNanos,
                        samplingMaxNanos);
            } catch (RuntimeException e) {
                logNativeFailure("profile", e);
            }
        }
    }

    /** In the JobManager, once: tell the native coordinator where the REST API and logs are. */
    private void configureCoordinator() {
        if (!coordinatorConfigured.compareAndSet(false, true)) {
            return;
        }
        String restUrl = FlinkConfiguration.restUrl();
        String outputDir = FlinkConfiguration.outputDir();
        synchronized (nativeLock) {
            if (handle != 0) {
                AutotuneNative.configureCoordinator(handle, restUrl, outputDir);
            }
        }
    }

    /** Metrics currently tracked (the native side reads them); for tests and benchmarks. */
    int trackedMetrics() {
        return table.tracked();
    }

    /** Whether a native call has failed since open (the failure was logged once). */
    boolean nativeCallFailed() {
        return nativeFailureLogged.get();
    }

    boolean isEnabled() {
        return handle != 0;
    }

    private void logNativeFailure(String what, RuntimeException e) {
        // Once: a broken native call would otherwise repeat every interval, forever.
        if (nativeFailureLogged.compareAndSet(false, true)) {
            LOG.error("AUTOTUNE native call failed ({}); reporting goes on, further failures are not logged", what, e);
        }
    }

    private static String logicalScope(MetricGroup group) {
        try {
            return LogicalScopeProvider.castFrom(group).getLogicalScope(KEEP, '.');
        } catch (IllegalStateException notProvided) {
            return null; // the native side falls back to the scope variables
        }
    }

    static int logLevel() {
        if (LEVEL_REFERENCE.isTraceEnabled()) {
            return AutotuneNative.LEVEL_TRACE;
        }
        if (LEVEL_REFERENCE.isDebugEnabled()) {
            return AutotuneNative.LEVEL_DEBUG;
        }
        if (LEVEL_REFERENCE.isInfoEnabled()) {
            return AutotuneNative.LEVEL_INFO;
        }
        if (LEVEL_REFERENCE.isWarnEnabled()) {
            return AutotuneNative.LEVEL_WARN;
        }
        return LEVEL_REFERENCE.isErrorEnabled() ? AutotuneNative.LEVEL_ERROR : AutotuneNative.LEVEL_OFF;
    }

    static String pluginVersion() {
        try (InputStream in = AutotuneReporter.class.getResourceAsStream("version.properties")) {
            Properties p = new Properties();
            if (in != null) {
                p.load(in);
            }
            return p.getProperty("version", "unknown");
        } catch (IOException e) {
            return "unknown";
        }
    }

    /** Forwards native log records to SLF4J loggers named after the Rust module. */
    enum Slf4jSink implements NativeLog.Sink {
        INSTANCE;

        private final Map<String, Logger> loggers = new ConcurrentHashMap<>();

        @Override
        public void log(int level, String target, String message) {
            Logger logger = loggers.computeIfAbsent(target, Slf4jSink::loggerName);
            switch (level) {
                case AutotuneNative.LEVEL_ERROR:
                    logger.error(message);
                    break;
                case AutotuneNative.LEVEL_WARN:
                    logger.warn(message);
                    break;
                case AutotuneNative.LEVEL_INFO:
                    logger.info(message);
                    break;
                case AutotuneNative.LEVEL_DEBUG:
                    logger.debug(message);
                    break;
                default:
                    logger.trace(message);
            }
        }

        /** {@code flink_autotune::reporter} becomes {@code dev.flinkautotune.native.reporter}. */
        private static Logger loggerName(String target) {
            int sep = target.indexOf("::");
            String module = sep < 0 ? "" : "." + target.substring(sep + 2).replace("::", ".");
            return LoggerFactory.getLogger("dev.flinkautotune.native" + module);
        }
    }
}
