package dev.flinkautotune;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.function.BiConsumer;

import org.apache.flink.metrics.CharacterFilter;
import org.apache.flink.metrics.Gauge;
import org.apache.flink.metrics.Metric;
import org.apache.flink.metrics.LogicalScopeProvider;
import org.apache.flink.metrics.MetricGroup;
import org.apache.flink.metrics.groups.UnregisteredMetricsGroup;

/** A metric group that tells a reporter what Flink's own groups tell it: variables and a logical scope. */
final class ScopedGroup extends UnregisteredMetricsGroup implements LogicalScopeProvider {
    private final Map<String, String> variables = new LinkedHashMap<>();
    private final String logicalScope;
    /** Where metrics added to this group go, as Flink's registry hands them to reporters. */
    BiConsumer<String, Metric> onAdded = (name, metric) -> {};

    ScopedGroup(String logicalScope, String... keyValues) {
        this.logicalScope = logicalScope;
        for (int i = 0; i + 1 < keyValues.length; i += 2) {
            variables.put(keyValues[i], keyValues[i + 1]);
        }
    }

    static ScopedGroup task(String jobId, String vertexId, String vertexName, int subtask) {
        return new ScopedGroup("taskmanager.job.task",
                "<host>", "127.0.0.1", "<tm_id>", "tm-1", "<job_id>", jobId, "<job_name>", "unit-job",
                "<task_id>", vertexId, "<task_name>", vertexName, "<subtask_index>", String.valueOf(subtask));
    }

    @Override
    public <T, G extends Gauge<T>> G gauge(String name, G gauge) {
        onAdded.accept(name, gauge);
        return gauge;
    }

    @Override
    public Map<String, String> getAllVariables() {
        return variables;
    }

    @Override
    public String getMetricIdentifier(String metricName) {
        return variables.values() + "." + logicalScope + "." + metricName;
    }

    @Override
    public String getMetricIdentifier(String metricName, CharacterFilter filter) {
        return filter.filterCharacters(getMetricIdentifier(metricName));
    }

    @Override
    public String getLogicalScope(CharacterFilter filter) {
        return logicalScope;
    }

    @Override
    public String getLogicalScope(CharacterFilter filter, char delimiter) {
        return logicalScope;
    }

    @Override
    public MetricGroup getWrappedMetricGroup() {
        return this;
    }
}
