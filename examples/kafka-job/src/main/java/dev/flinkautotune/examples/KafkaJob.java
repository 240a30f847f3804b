package dev.flinkautotune.examples;

import java.nio.ByteBuffer;
import java.util.Map;

import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.functions.MapFunction;
import org.apache.flink.api.common.functions.RichMapFunction;
import org.apache.flink.api.common.serialization.DeserializationSchema;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.tuple.Tuple2;
import org.apache.flink.connector.kafka.source.KafkaSource;
import org.apache.flink.connector.kafka.source.KafkaSourceBuilder;
import org.apache.flink.connector.kafka.source.enumerator.initializer.OffsetsInitializer;
import org.apache.flink.runtime.state.FunctionInitializationContext;
import org.apache.flink.runtime.state.FunctionSnapshotContext;
import org.apache.flink.streaming.api.checkpoint.CheckpointedFunction;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink;

/**
 * The sample job on a real Kafka topic: Kafka Source -> keyBy -> Work -> Sink. Work costs
 * {@code --cost-us} per record (the known bottleneck), burnt or waited as {@code --cost-kind}
 * says (see {@link QueueJob}); with {@code --deserialize-cost-us}
 * the source's deserializer burns CPU too, so the source itself can be the bottleneck (the
 * case where busy time understates a Kafka reader, whose fetcher runs in its own thread).
 * Checkpoints every {@code --checkpoint-ms} (10 s; 0: none) keep the read positions, so a
 * rescale in place resumes where the job was, as in production, instead of from the earliest
 * offset.
 *
 * <pre>
 * --bootstrap 127.0.0.1:9092 --topic events --group autotune --cost-us 1500 --cost-kind cpu
 * --deserialize-cost-us 0 --work-parallelism 1 --source-parallelism 1 --keys 1024
 * --checkpoint-ms 10000 [--fetch-bytes 16384] [--fail-at-s 75] [--restore-s 60] --job-name autotune-kafka-job
 * [--properties key=value,key=value] (Kafka client properties, as users set them on the builder)
 * [--autotune.<option> value ...] (the job's own plugin settings, in its global job parameters)
 * </pre>
 */
public final class KafkaJob {

    public static void main(String[] args) throws Exception {
        Map<String, String> opts = QueueJob.parseArgs(args);
        String bootstrap = opts.getOrDefault("bootstrap", "127.0.0.1:9092");
        String topic = opts.getOrDefault("topic", "events");
        long costUs = Long.parseLong(opts.getOrDefault("cost-us", "0"));
        QueueJob.CostKind costKind = QueueJob.costKind(opts.getOrDefault("cost-kind", "cpu"));
        long deserializeCostUs = Long.parseLong(opts.getOrDefault("deserialize-cost-us", "0"));
        int keys = Integer.parseInt(opts.getOrDefault("keys", "1024"));

        KafkaSourceBuilder<Tuple2<Long, Long>> builder = KafkaSource.<Tuple2<Long, Long>>builder()
                .setBootstrapServers(bootstrap)
                .setTopics(topic)
                .setGroupId(opts.getOrDefault("group", "autotune"))
                .setStartingOffsets(OffsetsInitializer.earliest())
                .setValueOnlyDeserializer(new CostlyRecords(deserializeCostUs * 1000, keys))
                // The topic exists before the job starts. The default discovery (every 5 minutes)
                // fails the whole job when it falls while a test has the broker stopped.
                .setProperty("partition.discovery.interval.ms", "0");
        String fetchBytes = opts.get("fetch-bytes");
        if (fetchBytes != null) {
            // Small fetches: the reader buffers little, so it runs dry soon after the broker stops.
            builder.setProperty("max.partition.fetch.bytes", fetchBytes)
                    .setProperty("fetch.max.bytes", fetchBytes);
        }
        for (String pair : opts.getOrDefault("properties", "").split(",")) {
            if (!pair.isEmpty()) {
                String[] kv = pair.split("=", 2);
                builder.setProperty(kv[0], kv[1]);
            }
        }
        KafkaSource<Tuple2<Long, Long>> source = builder.build();

        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        QueueJob.setOwnPluginSettings(env, opts);
        // The offsets live in checkpoints (and are committed to the group on completion).
        long checkpointMs = Long.parseLong(opts.getOrDefault("checkpoint-ms", "10000"));
        if (checkpointMs > 0) {
            env.enableCheckpointing(checkpointMs);
        }
        int workParallelism = Integer.parseInt(opts.getOrDefault("work-parallelism", "1"));
        DataStream<Tuple2<Long, Long>> worked = env.fromSource(source, WatermarkStrategy.noWatermarks(), "Kafka Source")
                .uid("kafka-source")
                .setParallelism(Integer.parseInt(opts.getOrDefault("source-parallelism", "1")))
                .keyBy(new QueueJob.ByKey(), Types.LONG)
                .map(new QueueJob.BusyWork(costUs * 1000, costKind))
                .name("Work")
                .uid("work")
                .setParallelism(workParallelism);
        String failAtS = opts.get("fail-at-s");
        if (failAtS != null) {
            worked = worked.map(new FailOnce(Long.parseLong(failAtS) * 1_000_000_000L))
                    .name("FailOnce")
                    .uid("fail-once")
                    .setParallelism(workParallelism);
        }
        String restoreS = opts.get("restore-s");
        if (restoreS != null) {
            worked = worked.map(new SlowRestore(Long.parseLong(restoreS) * 1000))
                    .name("SlowRestore")
                    .uid("slow-restore")
                    .setParallelism(workParallelism);
        }
        worked.sinkTo(new DiscardingSink<>())
                .name("Sink")
                .uid("sink")
                .setParallelism(workParallelism);
        env.execute(opts.getOrDefault("job-name", "autotune-kafka-job"));
    }

    /**
     * Fails the task once, the given time after its first record (a task failure inside a
     * decision window); the restarted attempt runs on.
     */
    static final class FailOnce extends RichMapFunction<Tuple2<Long, Long>, Tuple2<Long, Long>> {
        private final long afterNanos;
        private transient long firstRecordNanos;

        FailOnce(long afterNanos) {
            this.afterNanos = afterNanos;
        }

        @Override
        public Tuple2<Long, Long> map(Tuple2<Long, Long> value) {
            long now = System.nanoTime();
            if (firstRecordNanos == 0) {
                firstRecordNanos = now;
            }
            boolean firstAttempt = getRuntimeContext().getTaskInfo().getAttemptNumber() == 0;
            if (firstAttempt && now - firstRecordNanos > afterNanos) {
                throw new IllegalStateException("injected task failure (--fail-at-s)");
            }
            return value;
        }
    }

    /**
     * Takes the given time to restore its state, as a job with large state does: every start
     * and every rescale of its vertex waits for it before the vertex runs (a rescale's downtime).
     */
    static final class SlowRestore implements MapFunction<Tuple2<Long, Long>, Tuple2<Long, Long>>, CheckpointedFunction {
        private final long restoreMillis;

        SlowRestore(long restoreMillis) {
            this.restoreMillis = restoreMillis;
        }

        @Override
        public void initializeState(FunctionInitializationContext context) throws InterruptedException {
            Thread.sleep(restoreMillis);
        }

        @Override
        public void snapshotState(FunctionSnapshotContext context) {}

        @Override
        public Tuple2<Long, Long> map(Tuple2<Long, Long> value) {
            return value;
        }
    }

    /** A record's value as (key, value), after burning the given CPU time. */
    static final class CostlyRecords implements DeserializationSchema<Tuple2<Long, Long>> {
        private final long costNanos;
        private final int keys;

        CostlyRecords(long costNanos, int keys) {
            this.costNanos = costNanos;
            this.keys = keys;
        }

        @Override
        public Tuple2<Long, Long> deserialize(byte[] message) {
            long hash = message == null ? 0 : java.util.Arrays.hashCode(message);
            if (message != null && message.length >= 8) {
                hash ^= ByteBuffer.wrap(message).getLong();
            }
            return QueueJob.BusyWork.spin(costNanos, Tuple2.of(Math.floorMod(hash, (long) keys), hash));
        }

        @Override
        public boolean isEndOfStream(Tuple2<Long, Long> next) {
            return false;
        }

        @Override
        public TypeInformation<Tuple2<Long, Long>> getProducedType() {
            return Types.TUPLE(Types.LONG, Types.LONG);
        }
    }
}
