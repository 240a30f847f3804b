package dev.flinkautotune;

import java.util.Properties;

import org.apache.flink.metrics.reporter.MetricReporter;
import org.apache.flink.metrics.reporter.MetricReporterFactory;

/**
 * Entry point named in the Flink configuration:
 * {@code metrics.reporter.autotune.factory.class: dev.flinkautotune.AutotuneReporterFactory}.
 */
public class AutotuneReporterFactory implements MetricReporterFactory {
    @Override
    public MetricReporter createMetricReporter(Properties properties) {
        return new AutotuneReporter();
    }
}
