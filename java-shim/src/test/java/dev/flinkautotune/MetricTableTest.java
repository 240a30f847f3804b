package dev.flinkautotune;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.List;

import org.apache.flink.metrics.Gauge;
import org.apache.flink.metrics.MeterView;
import org.apache.flink.metrics.SimpleCounter;
import org.apache.flink.metrics.Histogram;
import org.apache.flink.metrics.HistogramStatistics;
import org.junit.Test;

public class MetricTableTest {
    private final List<String> nativeCalls = new ArrayList<>();

    private boolean add(MetricTable table, org.apache.flink.metrics.Metric metric, String id, boolean tracked) {
        return table.add(metric, id, MetricTable.kindOf(metric), slot -> {
            nativeCalls.add("register " + slot);
            return tracked;
        });
    }

    @Test
    public void readsEveryKindOfValueAsADouble() {
        MetricTable table = new MetricTable();
        SimpleCounter counter = new SimpleCounter();
        counter.inc(41);
        counter.inc();
        MeterView meter = new MeterView(new SimpleCounter(), 60);
        Gauge<Integer> number = () -> 7;
        Gauge<Boolean> flag = () -> true;
        Gauge<String> text = () -> "not a number";
        Gauge<Long> nothing = () -> null;
        Gauge<Long> broken = () -> {
            throw new IllegalStateException("gauge bug");
        };
        for (Object[] m : new Object[][] {{counter, "c"}, {meter, "m"}, {number, "n"}, {flag, "f"}, {text, "t"}, {nothing, "z"}, {broken, "b"}}) {
            assertThat(add(table, (org.apache.flink.metrics.Metric) m[0], (String) m[1], true)).isTrue();
        }
        MetricTable.Values values = table.read(new MetricTable.Values(new double[0], 0));
        assertThat(values.count).isEqualTo(7);
        assertThat(values.values[0]).isEqualTo(42.0);
        assertThat(values.values[1]).isEqualTo(0.0);
        assertThat(values.values[2]).isEqualTo(7.0);
        assertThat(values.values[3]).isEqualTo(1.0);
        assertThat(values.values[4]).isNaN();
        assertThat(values.values[5]).isNaN();
        assertThat(values.values[6]).isNaN();
    }

    @Test
    public void histogramsAreNotForwarded() {
        Histogram histogram = new Histogram() {
            @Override
            public void update(long value) {}

            @Override
            public long getCount() {
                return 0;
            }

            @Override
            public HistogramStatistics getStatistics() {
                throw new UnsupportedOperationException("never read by the reporter");
            }
        };
        assertThat(MetricTable.kindOf(histogram)).isZero();
    }

    @Test
    public void untrackedMetricsGiveTheirSlotBackAtOnce() {
        MetricTable table = new MetricTable();
        assertThat(add(table, new SimpleCounter(), "ignored", false)).isFalse();
        assertThat(add(table, new SimpleCounter(), "tracked", true)).isTrue();
        assertThat(nativeCalls).containsExactly("register 0", "register 0");
        assertThat(table.tracked()).isEqualTo(1);
    }

    @Test
    public void aRemovedSlotIsReusedOnlyAfterTheNextRead() {
        MetricTable table = new MetricTable();
        SimpleCounter first = new SimpleCounter();
        add(table, first, "first", true);
        add(table, new SimpleCounter(), "second", true);
        List<Integer> unregistered = new ArrayList<>();
        table.remove(first, "first", unregistered::add);
        assertThat(unregistered).containsExactly(0);

        // Before a read has started, a new metric must not take slot 0: a value read for the
        // old metric could be attributed to it.
        add(table, new SimpleCounter(), "third", true);
        table.read(new MetricTable.Values(new double[0], 0));
        add(table, new SimpleCounter(), "fourth", true);
        assertThat(nativeCalls).containsExactly("register 0", "register 1", "register 2", "register 0");
    }

    @Test
    public void theSameMetricTwiceIsTrackedOnce() {
        MetricTable table = new MetricTable();
        SimpleCounter counter = new SimpleCounter();
        assertThat(add(table, counter, "x", true)).isTrue();
        assertThat(add(table, counter, "x", true)).isFalse();
        table.remove(counter, "unknown", slot -> nativeCalls.add("unregister " + slot));
        assertThat(nativeCalls).containsExactly("register 0");
    }

    @Test
    public void readsReuseTheArrayAndGrowIt() {
        MetricTable table = new MetricTable();
        for (int i = 0; i < 100; i++) {
            add(table, new SimpleCounter(), "c" + i, true);
        }
        MetricTable.Values first = table.read(new MetricTable.Values(new double[0], 0));
        assertThat(first.values.length).isGreaterThanOrEqualTo(100);
        MetricTable.Values second = table.read(first);
        assertThat(second.values).isSameAs(first.values);
    }
}
