package dev.flinkautotune;

import java.util.HashSet;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

import org.apache.flink.metrics.Gauge;
import org.apache.flink.metrics.MetricGroup;

/**
 * In the JobManager: the coordinator's figures as gauges in each job's own metric group, so
 * every reporter the cluster has exports them (group {@code autotune}, per vertex below
 * {@code vertex=<vertex id>}, findings below {@code severity=<severity>}). A job's group closes
 * with the job, and its gauges with it.
 *
 * <p>The native side hands over what changed once per report; a gauge that Flink reads costs no
 * native call.
 */
final class PublishedFigures {
    static final String GROUP = "autotune";
    /** Scope of the job groups in the JobManager, where the figures go. */
    static final String JOB_SCOPE = "jobmanager.job";
    static final String JOB_ID = "<job_id>";

    /** The value Flink reads; set on the reporter thread. */
    static final class Figure implements Gauge<Double> {
        private volatile double value = Double.NaN;
        private boolean registered;

        @Override
        public Double getValue() {
            return value;
        }
    }

    private final Map<String, MetricGroup> jobGroups = new ConcurrentHashMap<>();
    /** By "job \n group key \n group value \n name". */
    private final Map<String, Figure> figures = new ConcurrentHashMap<>();
    private long version;

    /** A metric of a job's group in the JobManager was registered: that group takes the job's figures. */
    void jobGroupSeen(Map<String, String> variables, MetricGroup group) {
        String jobId = variables.get(JOB_ID);
        if (jobId != null) {
            jobGroups.putIfAbsent(jobId, group);
        }
    }

    /** The job's group is closing: its figures go with it. */
    void jobGroupClosed(Map<String, String> variables) {
        String jobId = variables.get(JOB_ID);
        if (jobId != null && jobGroups.remove(jobId) != null) {
            figures.keySet().removeIf(key -> key.startsWith(jobId + "\n"));
        }
    }

    long version() {
        return version;
    }

    /**
     * The native side's figures ({@code version, then job id, group key, group value, name,
     * value} per figure), each new one registered where its job's group is known. A figure
     * left out is NaN until it is back.
     */
    void update(String[] flat) {
        version = Long.parseLong(flat[0]);
        Set<String> seen = new HashSet<>();
        for (int i = 1; i + 4 < flat.length; i += 5) {
            String key = flat[i] + "\n" + flat[i + 1] + "\n" + flat[i + 2] + "\n" + flat[i + 3];
            seen.add(key);
            figures.computeIfAbsent(key, k -> new Figure()).value = parse(flat[i + 4]);
        }
        for (Map.Entry<String, Figure> f : figures.entrySet()) {
            if (!seen.contains(f.getKey())) {
                f.getValue().value = Double.NaN;
            }
        }
    }

    /**
     * Registers the figures whose job group is known and that are not registered yet. Runs on
     * the reporter thread holding no lock of the reporter's: Flink calls every reporter back.
     */
    void registerNew() {
        for (Map.Entry<String, Figure> f : figures.entrySet()) {
            Figure figure = f.getValue();
            if (figure.registered) {
                continue;
            }
            String[] parts = f.getKey().split("\n", -1);
            MetricGroup job = jobGroups.get(parts[0]);
            if (job == null) {
                continue;
            }
            MetricGroup group = job.addGroup(GROUP);
            if (!parts[1].isEmpty()) {
                group = group.addGroup(parts[1], parts[2]);
            }
            group.gauge(parts[3], figure);
            figure.registered = true;
        }
    }

    /** Figures registered as gauges; for tests. */
    int registered() {
        return (int) figures.values().stream().filter(f -> f.registered).count();
    }

    private static double parse(String value) {
        try {
            return Double.parseDouble(value);
        } catch (NumberFormatException notANumber) {
            return "inf".equals(value) ? Double.POSITIVE_INFINITY
                    : "-inf".equals(value) ? Double.NEGATIVE_INFINITY : Double.NaN;
        }
    }
}
