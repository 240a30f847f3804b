package dev.flinkautotune;

/**
 * Every native method of the plugin, in one place. The implementations live in the Rust
 * library ({@code rust-core/jni}); each one throws {@link AutotuneNativeException} instead of
 * crashing, and leaves any Java exception that was already pending in place.
 */
public final class AutotuneNative {
    /** Metric kinds, numbered as in {@code MetricKind::from_code} on the Rust side. */
    public static final int KIND_COUNTER = 1;
    public static final int KIND_METER = 2;
    public static final int KIND_GAUGE = 3;

    /** Log levels, numbered as in {@code logging::set_level} on the Rust side. */
    public static final int LEVEL_OFF = 0;
    public static final int LEVEL_ERROR = 1;
    public static final int LEVEL_WARN = 2;
    public static final int LEVEL_INFO = 3;
    public static final int LEVEL_DEBUG = 4;
    public static final int LEVEL_TRACE = 5;

    private AutotuneNative() {}

    /** Version of the native core. */
    public static native String nativeVersion();

    /** Bytes the native library holds on its heap, for all reporters of this class loader. */
    public static native long nativeHeapBytes();

    /** Creates one reporter's native state; returns its handle (never 0). */
    public static native long open(String[] optionKeys, String[] optionValues, String pluginVersion, String platform);

    /**
     * Describes the metric in {@code slot}, once, when Flink registers it.
     *
     * @param logicalScope may be null when the group has no logical scope
     * @return whether a model reads it; when false the caller forgets the metric
     */
    public static native boolean register(
            long handle, int slot, String[] variableKeys, String[] variableValues, String logicalScope, String name, int kind);

    public static native void unregister(long handle, int slot);

    /**
     * One report round: {@code values[i]} for {@code i < count} is slot i's value (NaN: none).
     *
     * @param lastReadNanos what reading the metrics cost in the previous round (Flink's gauges run here)
     * @param lastCostNanos what the whole previous round cost, read plus native call
     * @param logLevel the SLF4J level in force, one of the LEVEL_* constants
     * @return null, or the task threads to sample now: {@code [samples, pause ms, max depth]}
     *     followed by {@code job id, vertex id, vertex name, thread-name prefix} per vertex
     */
    public static native String[] report(
            long handle, double[] values, int count, long lastReadNanos, long lastCostNanos, int logLevel);

    /**
     * What sampling one vertex's task threads gave: one folded stack ({@code root;...;leaf}) per
     * thread sample, the threads found (0: none, which is said once), and what the sampling calls
     * took in total and at most.
     */
    public static native void profile(
            long handle, String jobId, String vertexId, String vertexName, String[] stacks, int threads,
            long samplingNanos, long samplingMaxNanos);

    /** The profiles this TaskManager sampled last, as JSON; null when there are none. */
    public static native String profiles(long handle);

    /**
     * This TaskManager's memory pools over its window, as JSON (peaks, live heap, GC time);
     * null when the process has no TaskManager metrics. Read when Flink reads the published gauge.
     */
    public static native String poolWindow(long handle);

    /**
     * Every subtask's latest busy and back-pressured time in this TaskManager, as JSON; null
     * when it runs none. Read when Flink reads the published gauge.
     */
    public static native String taskLoads(long handle);

    /**
     * In the JobManager: the coordinator's figures when they changed since {@code version}:
     * the version now, then {@code job id, group key, group value, name, value} per figure (the
     * group empty for the job's own); null when unchanged or there is no coordinator.
     */
    public static native String[] figures(long handle, long version);

    /** In the JobManager: its REST address and the folder for decisions (either may be null). */
    public static native void configureCoordinator(long handle, String restUrl, String outputDir);

    /** Frees the handle; it must not be used afterwards. */
    public static native void close(long handle);

    /** Panics inside the native library; used by tests to prove panics surface as exceptions. */
    static native void panicForTesting(String message);
}
