package dev.flinkautotune.examples;

import org.apache.flink.api.connector.source.Boundedness;
import org.apache.flink.api.connector.source.Source;
import org.apache.flink.api.connector.source.SourceReader;
import org.apache.flink.api.connector.source.SourceReaderContext;
import org.apache.flink.api.connector.source.SplitEnumerator;
import org.apache.flink.api.connector.source.SplitEnumeratorContext;
import org.apache.flink.api.java.tuple.Tuple2;
import org.apache.flink.core.io.SimpleVersionedSerializer;

import java.util.ArrayList;
import java.util.List;

/** Unbounded Kafka-like source: (key, offset) records from a fixed number of partitions. */
public final class QueueSource implements Source<Tuple2<Long, Long>, QueueSplit, List<QueueSplit>> {
    private static final long serialVersionUID = 1L;

    private final int partitions;
    private final long rate;
    private final int keys;
    /** MiB of direct memory the enumerator (in the JobManager) holds, as a connector's client may. */
    private final int enumeratorDirectMb;

    public QueueSource(int partitions, long rate, int keys) {
        this(partitions, rate, keys, 0);
    }

    public QueueSource(int partitions, long rate, int keys, int enumeratorDirectMb) {
        if (partitions < 1 || rate < 1 || keys < 1) {
            throw new IllegalArgumentException("partitions, rate and keys must be positive");
        }
        this.partitions = partitions;
        this.rate = rate;
        this.keys = keys;
        this.enumeratorDirectMb = enumeratorDirectMb;
    }

    @Override
    public Boundedness getBoundedness() {
        return Boundedness.CONTINUOUS_UNBOUNDED;
    }

    @Override
    public SourceReader<Tuple2<Long, Long>, QueueSplit> createReader(SourceReaderContext context) {
        return new QueueSourceReader(context, rate, partitions, keys);
    }

    @Override
    public SplitEnumerator<QueueSplit, List<QueueSplit>> createEnumerator(
            SplitEnumeratorContext<QueueSplit> context) {
        List<QueueSplit> splits = new ArrayList<>(partitions);
        for (int p = 0; p < partitions; p++) {
            splits.add(new QueueSplit(p, 0, 0));
        }
        return new QueueEnumerator(context, splits, enumeratorDirectMb);
    }

    @Override
    public SplitEnumerator<QueueSplit, List<QueueSplit>> restoreEnumerator(
            SplitEnumeratorContext<QueueSplit> context, List<QueueSplit> checkpoint) {
        return new QueueEnumerator(context, checkpoint, enumeratorDirectMb);
    }

    @Override
    public SimpleVersionedSerializer<QueueSplit> getSplitSerializer() {
        return new QueueSplit.Serializer();
    }

    @Override
    public SimpleVersionedSerializer<List<QueueSplit>> getEnumeratorCheckpointSerializer() {
        return new QueueEnumerator.CheckpointSerializer();
    }
}
