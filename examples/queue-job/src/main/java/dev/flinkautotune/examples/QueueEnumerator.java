package dev.flinkautotune.examples;

import org.apache.flink.api.connector.source.SplitEnumerator;
import org.apache.flink.api.connector.source.SplitEnumeratorContext;
import org.apache.flink.core.io.SimpleVersionedSerializer;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;

/**
 * Assigns each partition to reader {@code partition % parallelism} (round-robin, like Kafka's
 * default). Splits whose reader has not registered yet, or that came back after a failure, wait
 * in {@code unassigned}, which is also the checkpoint state.
 */
final class QueueEnumerator implements SplitEnumerator<QueueSplit, List<QueueSplit>> {
    private final SplitEnumeratorContext<QueueSplit> context;
    private final List<QueueSplit> unassigned;
    private final int directMb;
    /** Off-heap buffers held while the enumerator runs (a client's direct memory). */
    private final List<java.nio.ByteBuffer> direct = new ArrayList<>();

    QueueEnumerator(SplitEnumeratorContext<QueueSplit> context, List<QueueSplit> unassigned, int directMb) {
        this.context = context;
        this.unassigned = new ArrayList<>(unassigned);
        this.directMb = directMb;
    }

    @Override
    public void start() {
        for (int i = 0; i < directMb; i++) {
            direct.add(java.nio.ByteBuffer.allocateDirect(1 << 20));
        }
        assignPending();
    }

    @Override
    public void handleSplitRequest(int subtaskId, String requesterHostname) {
        // Push-based assignment; readers never ask.
    }

    @Override
    public void addSplitsBack(List<QueueSplit> splits, int subtaskId) {
        // The failed reader's splits return; they go out again once it re-registers.
        unassigned.addAll(splits);
        assignPending();
    }

    @Override
    public void addReader(int subtaskId) {
        assignPending();
    }

    private void assignPending() {
        int parallelism = context.currentParallelism();
        Iterator<QueueSplit> it = unassigned.iterator();
        while (it.hasNext()) {
            QueueSplit split = it.next();
            int owner = split.partition % parallelism;
            if (context.registeredReaders().containsKey(owner)) {
                context.assignSplit(split, owner);
                it.remove();
            }
        }
    }

    @Override
    public List<QueueSplit> snapshotState(long checkpointId) {
        return new ArrayList<>(unassigned);
    }

    @Override
    public void close() {}

    /** Enumerator checkpoint: the unassigned splits. */
    static final class CheckpointSerializer implements SimpleVersionedSerializer<List<QueueSplit>> {
        @Override
        public int getVersion() {
            return 1;
        }

        @Override
        public byte[] serialize(List<QueueSplit> splits) throws IOException {
            ByteArrayOutputStream bytes = new ByteArrayOutputStream();
            try (DataOutputStream out = new DataOutputStream(bytes)) {
                out.writeInt(splits.size());
                for (QueueSplit split : splits) {
                    split.writeTo(out);
                }
            }
            return bytes.toByteArray();
        }

        @Override
        public List<QueueSplit> deserialize(int version, byte[] serialized) throws IOException {
            if (version != 1) {
                throw new IOException("Unknown enumerator checkpoint version " + version);
            }
            try (DataInputStream in = new DataInputStream(new ByteArrayInputStream(serialized))) {
                int n = in.readInt();
                List<QueueSplit> splits = new ArrayList<>(n);
                for (int i = 0; i < n; i++) {
                    splits.add(QueueSplit.readFrom(in));
                }
                return splits;
            }
        }
    }
}
