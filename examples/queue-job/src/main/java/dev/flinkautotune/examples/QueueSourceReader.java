package dev.flinkautotune.examples;

import org.apache.flink.api.connector.source.ReaderOutput;
import org.apache.flink.api.connector.source.SourceReader;
import org.apache.flink.api.connector.source.SourceReaderContext;
import org.apache.flink.api.java.tuple.Tuple2;
import org.apache.flink.core.io.InputStatus;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;

/**
 * Simulates consuming a queue: records of each partition "arrive" at a fixed wall-clock rate from
 * the moment the split was assigned, and are emitted as fast as downstream accepts. When
 * downstream is slow Flink stops calling pollNext, so arrivals pile up as a backlog that is
 * published as the standard pendingRecords metric.
 */
final class QueueSourceReader implements SourceReader<Tuple2<Long, Long>, QueueSplit> {
    /** Bounded per pollNext so the task mailbox (checkpoints, timers) stays responsive. */
    private static final int BATCH = 64;
    private static final long MAX_IDLE_WAIT_NANOS = TimeUnit.MILLISECONDS.toNanos(5);

    /** Live progress of one assigned partition. */
    private static final class Partition {
        final int id;
        final long arrivedBase;
        final long assignedNanos;
        // Written by the task thread only; volatile because the metric reporter reads it.
        volatile long emitted;

        Partition(QueueSplit split, long now) {
            this.id = split.partition;
            this.arrivedBase = split.arrived;
            this.assignedNanos = now;
            this.emitted = split.emitted;
        }
    }

    private final SourceReaderContext context;
    private final double ratePerPartitionPerNano;
    private final int keys;
    private final SplittableRandom random = new SplittableRandom();
    // Copy-on-write: the pendingRecords gauge iterates it from the metrics thread.
    private final List<Partition> partitions = new CopyOnWriteArrayList<>();
    private final ScheduledExecutorService timer;
    private CompletableFuture<Void> available = new CompletableFuture<>();
    private int next;

    QueueSourceReader(SourceReaderContext context, long totalRate, int numPartitions, int keys) {
        this.context = context;
        this.ratePerPartitionPerNano = (double) totalRate / numPartitions / 1e9;
        this.keys = keys;
        this.timer =
                Executors.newSingleThreadScheduledExecutor(
                        r -> {
                            Thread t = new Thread(r, "queue-source-timer");
                            t.setDaemon(true);
                            return t;
                        });
    }

    @Override
    public void start() {
        context.metricGroup().setPendingRecordsGauge(this::backlog);
    }

    private long arrived(Partition p, long now) {
        return p.arrivedBase + (long) ((now - p.assignedNanos) * ratePerPartitionPerNano);
    }

    /** Arrived but not yet emitted, over all partitions of this reader. */
    private long backlog() {
        long now = System.nanoTime();
        long sum = 0;
        for (Partition p : partitions) {
            sum += Math.max(0, arrived(p, now) - p.emitted);
        }
        return sum;
    }

    @Override
    public InputStatus pollNext(ReaderOutput<Tuple2<Long, Long>> output) {
        int n = partitions.size();
        if (n == 0) {
            return waitForData(Long.MAX_VALUE);
        }
        long now = System.nanoTime();
        int budget = BATCH;
        // Rotate the start partition so one partition's backlog cannot starve the others.
        for (int i = 0; i < n && budget > 0; i++) {
            Partition p = partitions.get((next + i) % n);
            long count = Math.min(budget, arrived(p, now) - p.emitted);
            for (long c = 0; c < count; c++) {
                long offset = p.emitted;
                output.collect(Tuple2.of((long) random.nextInt(keys), offset));
                p.emitted = offset + 1;
            }
            budget -= (int) Math.max(0, count);
        }
        next = (next + 1) % n;
        if (budget < BATCH) {
            return InputStatus.MORE_AVAILABLE;
        }
        // Caught up: wake up when the next record is due, but at most a few ms from now.
        double nanosPerRecord = 1 / (ratePerPartitionPerNano * n);
        return waitForData((long) Math.min(nanosPerRecord, MAX_IDLE_WAIT_NANOS));
    }

    private InputStatus waitForData(long delayNanos) {
        if (available.isDone()) {
            available = new CompletableFuture<>();
        }
        if (delayNanos != Long.MAX_VALUE) {
            CompletableFuture<Void> f = available;
            timer.schedule(() -> f.complete(null), Math.max(delayNanos, 100_000), TimeUnit.NANOSECONDS);
        }
        return InputStatus.NOTHING_AVAILABLE;
    }

    @Override
    public CompletableFuture<Void> isAvailable() {
        return available;
    }

    @Override
    public void addSplits(List<QueueSplit> splits) {
        long now = System.nanoTime();
        for (QueueSplit split : splits) {
            partitions.add(new Partition(split, now));
        }
        available.complete(null);
    }

    @Override
    public List<QueueSplit> snapshotState(long checkpointId) {
        long now = System.nanoTime();
        List<QueueSplit> state = new ArrayList<>(partitions.size());
        for (Partition p : partitions) {
            state.add(new QueueSplit(p.id, p.emitted, arrived(p, now)));
        }
        return state;
    }

    @Override
    public void notifyNoMoreSplits() {}

    @Override
    public void close() {
        timer.shutdownNow();
    }
}
