package dev.flinkautotune;

import java.lang.management.GarbageCollectorMXBean;
import java.lang.management.ManagementFactory;
import java.lang.management.MemoryPoolMXBean;
import java.lang.management.MemoryType;
import java.lang.management.MemoryUsage;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

import com.sun.management.GcInfo;
import org.apache.flink.metrics.Gauge;

/**
 * Heap used right after the most recent collection, in bytes: the live data plus what the
 * collection left behind. Flink's {@code Heap.Used} is read at random points of the GC cycle
 * and says more about the young generation's size than about what the job keeps.
 *
 * <p>The JVM's last-GC record is read only when the collection count has changed, so a read
 * between collections costs a few counter reads. NaN before the first collection, and on JVMs
 * without {@code com.sun.management}.
 */
final class HeapAfterGc implements Gauge<Double> {
    private final List<com.sun.management.GarbageCollectorMXBean> collectors = new ArrayList<>();
    private final Set<String> heapPools = new HashSet<>();
    private long seenCollections = -1;
    private double afterGc = Double.NaN;

    HeapAfterGc() {
        for (GarbageCollectorMXBean bean : ManagementFactory.getGarbageCollectorMXBeans()) {
            if (bean instanceof com.sun.management.GarbageCollectorMXBean) {
                collectors.add((com.sun.management.GarbageCollectorMXBean) bean);
            }
        }
        for (MemoryPoolMXBean pool : ManagementFactory.getMemoryPoolMXBeans()) {
            if (pool.getType() == MemoryType.HEAP) {
                heapPools.add(pool.getName());
            }
        }
    }

    @Override
    public synchronized Double getValue() {
        long collections = 0;
        for (com.sun.management.GarbageCollectorMXBean c : collectors) {
            collections += Math.max(0, c.getCollectionCount());
        }
        if (collections != seenCollections) {
            seenCollections = collections;
            afterGc = afterLatestCollection();
        }
        return afterGc;
    }

    private double afterLatestCollection() {
        GcInfo latest = null;
        for (com.sun.management.GarbageCollectorMXBean c : collectors) {
            GcInfo info = c.getLastGcInfo();
            if (info != null && (latest == null || info.getEndTime() > latest.getEndTime())) {
                latest = info;
            }
        }
        if (latest == null) {
            return Double.NaN;
        }
        long used = 0;
        for (Map.Entry<String, MemoryUsage> pool : latest.getMemoryUsageAfterGc().entrySet()) {
            if (heapPools.contains(pool.getKey())) {
                used += pool.getValue().getUsed();
            }
        }
        return used;
    }
}
