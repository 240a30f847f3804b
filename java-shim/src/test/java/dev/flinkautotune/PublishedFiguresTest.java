package dev.flinkautotune;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.LinkedHashMap;
import java.util.Map;

import org.apache.flink.metrics.Gauge;
import org.apache.flink.metrics.MetricGroup;
import org.apache.flink.metrics.groups.UnregisteredMetricsGroup;
import org.junit.Test;

public class PublishedFiguresTest {
    /** A job's group that keeps what is registered below it, by path. */
    static final class Recorded extends UnregisteredMetricsGroup {
        final Map<String, Gauge<?>> gauges;
        final String path;

        Recorded(Map<String, Gauge<?>> gauges, String path) {
            this.gauges = gauges;
            this.path = path;
        }

        @Override
        public MetricGroup addGroup(String name) {
            return new Recorded(gauges, path + name + ".");
        }

        @Override
        public MetricGroup addGroup(String key, String value) {
            return new Recorded(gauges, path + key + "=" + value + ".");
        }

        @Override
        public <T, G extends Gauge<T>> G gauge(String name, G gauge) {
            gauges.put(path + name, gauge);
            return gauge;
        }
    }

    private static Map<String, String> job(String id) {
        Map<String, String> variables = new LinkedHashMap<>();
        variables.put("<job_id>", id);
        variables.put("<job_name>", "orders");
        return variables;
    }

    @Test
    public void eachFigureIsAGaugeInItsJobsGroupOnceTheGroupIsKnown() {
        PublishedFigures figures = new PublishedFigures();
        Map<String, Gauge<?>> gauges = new LinkedHashMap<>();
        figures.update(new String[] {"3",
                "j1", "vertex", "v1", "recommendedParallelism", "4",
                "j1", "", "", "rescalesApplied", "1",
                "j1", "severity", "error", "findings", "NaN",
                "j2", "", "", "rescalesApplied", "inf"});
        figures.registerNew();
        assertThat(gauges).isEmpty(); // no job group seen yet
        figures.jobGroupSeen(job("j1"), new Recorded(gauges, ""));
        figures.registerNew();
        figures.registerNew(); // each once
        assertThat(gauges.keySet()).containsExactlyInAnyOrder(
                "autotune.vertex=v1.recommendedParallelism", "autotune.rescalesApplied",
                "autotune.severity=error.findings");
        assertThat(gauges.get("autotune.vertex=v1.recommendedParallelism").getValue()).isEqualTo(4.0);
        assertThat((Double) gauges.get("autotune.severity=error.findings").getValue()).isNaN();
        assertThat(figures.version()).isEqualTo(3);

        // A figure left out is NaN; a value that moved is read at once.
        figures.update(new String[] {"4", "j1", "vertex", "v1", "recommendedParallelism", "2"});
        assertThat(gauges.get("autotune.vertex=v1.recommendedParallelism").getValue()).isEqualTo(2.0);
        assertThat((Double) gauges.get("autotune.rescalesApplied").getValue()).isNaN();

        // The job's group closes: its figures go, and come back only with a new group.
        figures.jobGroupClosed(job("j1"));
        assertThat(figures.registered()).isZero();
    }
}
