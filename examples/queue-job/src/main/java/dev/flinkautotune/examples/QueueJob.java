package dev.flinkautotune.examples;

import org.apache.flink.runtime.state.FunctionInitializationContext;
import org.apache.flink.runtime.state.FunctionSnapshotContext;
import org.apache.flink.streaming.api.checkpoint.CheckpointedFunction;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.functions.MapFunction;
import org.apache.flink.api.common.functions.RichMapFunction;
import org.apache.flink.api.common.functions.RuntimeContext;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.functions.KeySelector;
import org.apache.flink.api.java.tuple.Tuple2;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;

import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.locks.LockSupport;

/**
 * Sample job with a known bottleneck: Queue Source -> keyBy -> Work (cost-us per record) -> Sink.
 * Work needs rate * cost-us / 1e6 subtasks' time; anything above its parallelism back-pressures
 * the source and its pendingRecords grows.
 *
 * <p>Arguments: --source-parallelism 1 --work-parallelism 1 --partitions 4 --rate 1000
 * --cost-us 0 --cost-kind cpu --keys 1024 --job-name autotune-queue-job --checkpoint-interval-ms 0
 * --state-bytes-per-key 0 --fail-after-records 0 --fail-message "" --snapshot-ms 0 --work-name Work
 * --ballast-mb 0 --enumerator-direct-mb 0 --codec-from-lib false --state-outside-keyby false --max-writers 0
 *
 * <p>{@code --cost-kind cpu} burns the cost on a core (a computation); {@code --cost-kind wait}
 * waits it out (a blocking call to a service, the commoner bottleneck of a Kafka job). Flink
 * counts both as busy time, so the model sees the same job; a waiting Work leaves the cores to
 * the rest of the machine, which is what tests that check an exact parallelism on a small,
 * shared machine need. {@code cpu} spins for the cost in wall-clock time, so a subtask the
 * machine runs out of cores for still does its records on time; {@code --cost-kind cores} burns
 * the cost in the thread's own CPU time, so subtasks beyond the machine's cores share them and
 * add nothing (a CPU-bound host: the limit outside the vertex that more parallelism cannot lift).
 *
 * <p>With {@code --ballast-mb N}, the job graph carries N MiB more (a function that holds them,
 * as a job does that ships a model or a lookup table inside its code): what the JobManager
 * must hold while it accepts the job. With {@code --enumerator-direct-mb N}, the source's
 * enumerator holds N MiB of direct memory in the JobManager while it runs.
 *
 * <p>With {@code --state-bytes-per-key N}, Work keeps N bytes of keyed state per key (on the
 * heap with Flink's default state backend): keys x N bytes of live heap in all.
 *
 * <p>With {@code --max-writers N}, the sink takes at most N writers (a database with a connection
 * limit): above parallelism N every writer fails on its first record, and the job fails over
 * until it runs at N again. A job's own plugin settings go as {@code --autotune.<option> value}.
 *
 * <p>Two failures on purpose that no Flink setting causes alone: {@code --codec-from-lib true} uses
 * an object of the application class loader as the job's own (a class conflict once the job jar is
 * also in Flink's lib/, see {@link SharedCodec}); {@code --state-outside-keyby true} asks for keyed
 * state after the keyed Work, where the stream is no longer keyed (Flink's own check throws).
 */
public final class QueueJob {

    public static void main(String[] args) throws Exception {
        Map<String, String> opts = parseArgs(args);
        int sourceParallelism = intArg(opts, "source-parallelism", 1);
        int workParallelism = intArg(opts, "work-parallelism", 1);
        int partitions = intArg(opts, "partitions", 4);
        long rate = Long.parseLong(opts.getOrDefault("rate", "1000"));
        long costUs = Long.parseLong(opts.getOrDefault("cost-us", "0"));
        CostKind costKind = costKind(opts.getOrDefault("cost-kind", "cpu"));
        int keys = intArg(opts, "keys", 1024);
        long checkpointMs = Long.parseLong(opts.getOrDefault("checkpoint-interval-ms", "0"));
        String jobName = opts.getOrDefault("job-name", "autotune-queue-job");
        int stateBytesPerKey = intArg(opts, "state-bytes-per-key", 0);
        long failAfter = Long.parseLong(opts.getOrDefault("fail-after-records", "0"));
        long snapshotMs = Long.parseLong(opts.getOrDefault("snapshot-ms", "0"));
        String failMessage = opts.getOrDefault("fail-message", "");
        String workName = opts.getOrDefault("work-name", "Work");
        int ballastMb = intArg(opts, "ballast-mb", 0);
        int enumeratorDirectMb = intArg(opts, "enumerator-direct-mb", 0);
        boolean codecFromLib = Boolean.parseBoolean(opts.getOrDefault("codec-from-lib", "false"));
        boolean stateOutsideKeyBy = Boolean.parseBoolean(opts.getOrDefault("state-outside-keyby", "false"));

        int maxWriters = intArg(opts, "max-writers", 0);

        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        setOwnPluginSettings(env, opts);
        if (checkpointMs > 0) {
            env.enableCheckpointing(checkpointMs);
        }

        DataStream<Tuple2<Long, Long>> worked = env.fromSource(
                        new QueueSource(partitions, rate, keys, enumeratorDirectMb),
                        WatermarkStrategy.noWatermarks(),
                        "Queue Source",
                        Types.TUPLE(Types.LONG, Types.LONG))
                .uid("queue-source")
                .setParallelism(sourceParallelism)
                .keyBy(new ByKey(), Types.LONG)
                .map(stateBytesPerKey > 0
                        ? new StatefulWork(new BusyWork(costUs * 1000, costKind), stateBytesPerKey)
                        : new BusyWork(costUs * 1000, costKind))
                .name(workName)
                .uid("work")
                .setParallelism(workParallelism);
        if (failAfter > 0 || snapshotMs > 0) {
            // Failures on purpose, from the job's own code: what the diagnosis must name.
            worked = worked.map(new Pricing(failAfter, snapshotMs, failMessage))
                    .name("Pricing")
                    .uid("pricing")
                    .setParallelism(workParallelism);
        }
        if (ballastMb > 0) {
            worked = worked.map(new Ballast(ballastMb)).name("Ballast").uid("ballast").setParallelism(workParallelism);
        }
        if (codecFromLib) {
            worked = worked.map(new SharedCodec()).name("Codec").uid("codec").setParallelism(workParallelism);
        }
        if (stateOutsideKeyBy) {
            worked = worked.map(new LastSeen()).name("LastSeen").uid("last-seen").setParallelism(workParallelism);
        }
        if (maxWriters > 0) {
            worked = worked.map(new LimitedWriters(maxWriters)).name("Limited Writer").uid("limited-writer")
                    .setParallelism(workParallelism);
        }
        Discard.into(worked)
                .uid("sink")
                // Same parallelism + forward edge => chained into the Work task.
                .setParallelism(workParallelism);

        env.execute(jobName);
    }

    /**
     * The job's own plugin settings ("--autotune.<option> value"), as a user sets them: in its
     * global job parameters, which the plugin reads over REST.
     */
    static void setOwnPluginSettings(StreamExecutionEnvironment env, Map<String, String> opts) {
        Map<String, String> own = new HashMap<>();
        opts.forEach((key, value) -> {
            if (key.startsWith("autotune.")) {
                own.put(key, value);
            }
        });
        if (!own.isEmpty()) {
            env.getConfig().setGlobalJobParameters(Configuration.fromMap(own));
        }
    }

    /** Accepts "--key value" pairs only; anything else is a usage error. */
    static Map<String, String> parseArgs(String[] args) {
        Map<String, String> opts = new HashMap<>();
        for (int i = 0; i < args.length; i += 2) {
            if (!args[i].startsWith("--") || i + 1 >= args.length) {
                throw new IllegalArgumentException(
                        "Expected '--key value' pairs, got: " + String.join(" ", args));
            }
            opts.put(args[i].substring(2), args[i + 1]);
        }
        return opts;
    }

    /** How Work pays its cost per record (see the class comment). */
    enum CostKind {
        CPU,
        WAIT,
        CORES
    }

    static CostKind costKind(String kind) {
        switch (kind) {
            case "cpu":
                return CostKind.CPU;
            case "wait":
                return CostKind.WAIT;
            case "cores":
                return CostKind.CORES;
            default:
                throw new IllegalArgumentException("--cost-kind is cpu, wait or cores, got: " + kind);
        }
    }

    private static int intArg(Map<String, String> opts, String key, int dflt) {
        return Integer.parseInt(opts.getOrDefault(key, Integer.toString(dflt)));
    }

    static final class ByKey implements KeySelector<Tuple2<Long, Long>, Long> {
        @Override
        public Long getKey(Tuple2<Long, Long> record) {
            return record.f0;
        }
    }

    /** Like {@link BusyWork}, and keeps a state value of a fixed size for every key it sees. */
    static final class StatefulWork extends RichMapFunction<Tuple2<Long, Long>, Tuple2<Long, Long>> {
        private final BusyWork cost;
        private final int bytesPerKey;
        private transient ValueState<byte[]> perKey;

        StatefulWork(BusyWork cost, int bytesPerKey) {
            this.cost = cost;
            this.bytesPerKey = bytesPerKey;
        }

        @Override
        public Tuple2<Long, Long> map(Tuple2<Long, Long> record) throws Exception {
            if (perKey == null) { // not in open(): its signature differs between Flink 1.x and 2.x
                perKey = getRuntimeContext().getState(new ValueStateDescriptor<>("per-key", byte[].class));
            }
            if (perKey.value() == null) {
                byte[] value = new byte[bytesPerKey];
                java.util.Arrays.fill(value, (byte) record.f0.longValue());
                perKey.update(value);
            }
            return cost.map(record);
        }
    }

    /**
     * Throws from the job's own code after {@code failAfter} records (a missing price), and
     * takes {@code snapshotMs} to snapshot its state (a slow checkpoint). A {@code failMessage}
     * replaces the exception's text (a hostile one, in the tests).
     */
    static final class Pricing implements MapFunction<Tuple2<Long, Long>, Tuple2<Long, Long>>, CheckpointedFunction {
        private final long failAfter;
        private final long snapshotMs;
        private final String failMessage;
        private long seen;

        Pricing(long failAfter, long snapshotMs, String failMessage) {
            this.failAfter = failAfter;
            this.snapshotMs = snapshotMs;
            this.failMessage = failMessage;
        }

        @Override
        public Tuple2<Long, Long> map(Tuple2<Long, Long> record) {
            if (failAfter > 0 && ++seen >= failAfter) {
                throw new IllegalStateException(failMessage.isEmpty()
                        ? "no price for order " + record.f1 + " of customer " + record.f0
                        : failMessage);
            }
            return record;
        }

        @Override
        public void snapshotState(FunctionSnapshotContext context) throws Exception {
            if (snapshotMs > 0) {
                Thread.sleep(snapshotMs);
            }
        }

        @Override
        public void initializeState(FunctionInitializationContext context) {}
    }

    /**
     * Takes a codec from the application class loader, as a library in Flink's lib/ hands out its
     * objects (a registry, a service loader), and uses it as the job's own class. With the job
     * jar in lib/ too and child-first class loading (Flink's default), they are two copies of one
     * class from two loaders, and the cast fails; {@code classloader.resolve-order: parent-first}
     * makes them one. Public, with a public constructor: the other loader's copy is built by
     * reflection.
     */
    public static final class SharedCodec implements MapFunction<Tuple2<Long, Long>, Tuple2<Long, Long>> {
        private transient SharedCodec fromLib;

        public SharedCodec() {}

        @Override
        public Tuple2<Long, Long> map(Tuple2<Long, Long> record) throws Exception {
            if (fromLib == null) {
                Object codec = Class.forName(SharedCodec.class.getName(), true, ClassLoader.getSystemClassLoader())
                        .getDeclaredConstructor()
                        .newInstance();
                fromLib = (SharedCodec) codec;
            }
            return record;
        }
    }

    /** Keeps the last order per key, but after the keyed Work, where the stream is not keyed. */
    static final class LastSeen extends RichMapFunction<Tuple2<Long, Long>, Tuple2<Long, Long>> {
        private transient ValueState<Long> last;

        @Override
        public Tuple2<Long, Long> map(Tuple2<Long, Long> record) throws Exception {
            if (last == null) { // not in open(): its signature differs between Flink 1.x and 2.x
                last = getRuntimeContext().getState(new ValueStateDescriptor<>("last", Long.class));
            }
            last.update(record.f1);
            return record;
        }
    }

    /** Passes records through; holds {@code mb} MiB that travel with the job graph. */
    static final class Ballast implements MapFunction<Tuple2<Long, Long>, Tuple2<Long, Long>> {
        private final byte[] payload;

        Ballast(int mb) {
            payload = new byte[mb << 20];
            new java.util.Random(mb).nextBytes(payload);
        }

        @Override
        public Tuple2<Long, Long> map(Tuple2<Long, Long> record) {
            return record;
        }
    }

    /**
     * The writer of a sink that takes at most {@code maxWriters} of them: at a higher
     * parallelism each fails on its first record, as a database refuses one connection too many.
     */
    static final class LimitedWriters extends RichMapFunction<Tuple2<Long, Long>, Tuple2<Long, Long>> {
        private final int maxWriters;
        private transient boolean admitted;

        LimitedWriters(int maxWriters) {
            this.maxWriters = maxWriters;
        }

        @Override
        public Tuple2<Long, Long> map(Tuple2<Long, Long> record) throws Exception {
            if (!admitted) {
                int writers = subtasks(getRuntimeContext());
                if (writers > maxWriters) {
                    throw new IllegalStateException("the sink takes at most " + maxWriters + " writers, "
                            + writers + " tried to connect");
                }
                admitted = true;
            }
            return record;
        }

        /** The vertex's parallelism, on every release: TaskInfo since 1.19, the context before. */
        private static int subtasks(RuntimeContext context) throws ReflectiveOperationException {
            try {
                Object info = RuntimeContext.class.getMethod("getTaskInfo").invoke(context);
                return (Integer) Class.forName("org.apache.flink.api.common.TaskInfo")
                        .getMethod("getNumberOfParallelSubtasks").invoke(info);
            } catch (NoSuchMethodException before119) {
                return (Integer) RuntimeContext.class.getMethod("getNumberOfParallelSubtasks").invoke(context);
            }
        }
    }

    /** Costs each record {@code costNanos}, burnt on a core or waited out (see the class comment). */
    static final class BusyWork implements MapFunction<Tuple2<Long, Long>, Tuple2<Long, Long>> {
        /** Parks shorter than this would mostly measure the timer's slack. */
        private static final long SHORTEST_PARK_NANOS = 1_000_000;
        private final long costNanos;
        private final CostKind kind;
        /** Waiting owed and not yet waited: paid in parks of a millisecond or more. */
        private transient long owedNanos;

        BusyWork(long costNanos) {
            this(costNanos, CostKind.CPU);
        }

        BusyWork(long costNanos, CostKind kind) {
            this.costNanos = costNanos;
            this.kind = kind;
        }

        @Override
        public Tuple2<Long, Long> map(Tuple2<Long, Long> record) {
            switch (kind) {
                case WAIT:
                    return park(record);
                case CORES:
                    return burn(costNanos, record);
                default:
                    return spin(costNanos, record);
            }
        }

        /** The cost in this thread's CPU time: threads beyond the machine's cores wait for one. */
        static Tuple2<Long, Long> burn(long costNanos, Tuple2<Long, Long> record) {
            ThreadMXBean threads = ManagementFactory.getThreadMXBean();
            long end = threads.getCurrentThreadCpuTime() + costNanos;
            while (threads.getCurrentThreadCpuTime() < end) {
                // burn
            }
            return record;
        }

        /** Over- and undershoot of a park count against the next, so the mean is the cost. */
        private Tuple2<Long, Long> park(Tuple2<Long, Long> record) {
            owedNanos += costNanos;
            if (owedNanos >= SHORTEST_PARK_NANOS) {
                long start = System.nanoTime();
                LockSupport.parkNanos(owedNanos);
                owedNanos -= System.nanoTime() - start;
            }
            return record;
        }

        static Tuple2<Long, Long> spin(long costNanos, Tuple2<Long, Long> record) {
            if (costNanos > 0) {
                long end = System.nanoTime() + costNanos;
                while (System.nanoTime() < end) {
                    // spin
                }
            }
            return record;
        }
    }
}
