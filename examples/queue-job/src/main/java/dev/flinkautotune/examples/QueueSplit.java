package dev.flinkautotune.examples;

import org.apache.flink.api.connector.source.SourceSplit;
import org.apache.flink.core.io.SimpleVersionedSerializer;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;

/**
 * One partition of the simulated queue. Immutable checkpoint form: the live progress is kept by
 * {@link QueueSourceReader}, which creates a fresh QueueSplit when snapshotting.
 */
public final class QueueSplit implements SourceSplit {
    final int partition;
    /** Records of this partition emitted so far (the "committed offset"). */
    final long emitted;
    /** Records that had arrived before the current assignment, so a restore keeps the backlog. */
    final long arrived;

    QueueSplit(int partition, long emitted, long arrived) {
        this.partition = partition;
        this.emitted = emitted;
        this.arrived = arrived;
    }

    @Override
    public String splitId() {
        return "partition-" + partition;
    }

    @Override
    public String toString() {
        return splitId() + "{emitted=" + emitted + ", arrived=" + arrived + "}";
    }

    void writeTo(DataOutputStream out) throws IOException {
        out.writeInt(partition);
        out.writeLong(emitted);
        out.writeLong(arrived);
    }

    static QueueSplit readFrom(DataInputStream in) throws IOException {
        return new QueueSplit(in.readInt(), in.readLong(), in.readLong());
    }

    /** Split serializer; also used for the splits inside the enumerator checkpoint. */
    static final class Serializer implements SimpleVersionedSerializer<QueueSplit> {
        @Override
        public int getVersion() {
            return 1;
        }

        @Override
        public byte[] serialize(QueueSplit split) throws IOException {
            ByteArrayOutputStream bytes = new ByteArrayOutputStream(20);
            try (DataOutputStream out = new DataOutputStream(bytes)) {
                split.writeTo(out);
            }
            return bytes.toByteArray();
        }

        @Override
        public QueueSplit deserialize(int version, byte[] serialized) throws IOException {
            if (version != 1) {
                throw new IOException("Unknown QueueSplit version " + version);
            }
            try (DataInputStream in = new DataInputStream(new ByteArrayInputStream(serialized))) {
                return readFrom(in);
            }
        }
    }
}
