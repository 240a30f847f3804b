package dev.flinkautotune;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.File;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;

import org.junit.Test;

/**
 * Two plugin class loaders in one JVM, as Flink makes when two reporters are configured or
 * a plugin is reloaded: each extracts and loads its own copy of the library from the jar.
 */
public class ClassLoaderIsolationTest {
    @Test
    public void eachClassLoaderLoadsItsOwnCopyFromTheJar() throws Exception {
        Path jar = Paths.get(System.getProperty("autotune.pluginJar"));
        List<URL> urls = new ArrayList<>();
        urls.add(jar.toUri().toURL());
        for (String entry : System.getProperty("java.class.path").split(File.pathSeparator)) {
            if (entry.contains("flink-metrics-core") || entry.contains("slf4j-api") || entry.contains("flink-dist")) {
                urls.add(Paths.get(entry).toUri().toURL());
            }
        }
        for (int i = 0; i < 2; i++) {
            try (URLClassLoader plugin = new URLClassLoader(urls.toArray(new URL[0]), ClassLoader.getPlatformClassLoader())) {
                Class<?> factoryClass = plugin.loadClass("dev.flinkautotune.AutotuneReporterFactory");
                Object factory = factoryClass.getConstructor().newInstance();
                Object reporter = factoryClass.getMethod("createMetricReporter", Properties.class).invoke(factory, new Properties());
                Class<?> configClass = plugin.loadClass("org.apache.flink.metrics.MetricConfig");
                Object config = configClass.getConstructor().newInstance();
                reporter.getClass().getMethod("open", configClass).invoke(reporter, config);
                java.lang.reflect.Method enabled = reporter.getClass().getDeclaredMethod("isEnabled");
                enabled.setAccessible(true);
                assertThat((Boolean) enabled.invoke(reporter)).as("reporter in class loader %d", i).isTrue();
                reporter.getClass().getMethod("report").invoke(reporter);
                reporter.getClass().getMethod("close").invoke(reporter);
            }
        }
    }
}
