package dev.flinkautotune;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Files;
import java.nio.file.Path;

import org.apache.flink.metrics.MetricConfig;
import org.apache.flink.metrics.SimpleCounter;
import org.junit.Test;

/** Runs in its own JVM (Gradle forks per test class): the first load attempt decides for a class loader. */
public class BrokenLibraryTest {
    @Test
    public void aCorruptLibraryTurnsTheReporterIntoANoOp() throws Exception {
        Path corrupt = Files.createTempFile("libflink_autotune", ".so");
        Files.write(corrupt, new byte[] {1, 2, 3, 4, 5, 6, 7, 8});
        MetricConfig config = new MetricConfig();
        config.setProperty(AutotuneReporter.OPTION_NATIVE_LIBRARY, corrupt.toString());

        NativeLoader.Result result = NativeLoader.load(corrupt.toString(), null);
        assertThat(result.loaded).isFalse();
        assertThat(result.cause).contains(corrupt.toString());
        assertThat(result.fix).contains("damaged or built for another platform");

        AutotuneReporter reporter = new AutotuneReporter();
        reporter.open(config);
        assertThat(reporter.isEnabled()).isFalse();
        reporter.notifyOfAddedMetric(new SimpleCounter(), "numRecordsIn", ScopedGroup.task("j", "v", "V", 0));
        reporter.report();
        reporter.close();
        assertThat(reporter.trackedMetrics()).isZero();
        // The second attempt in this class loader reuses the verdict and does not log again.
        assertThat(NativeLoader.load(corrupt.toString(), null).firstAttempt).isFalse();
        Files.delete(corrupt);
    }
}
