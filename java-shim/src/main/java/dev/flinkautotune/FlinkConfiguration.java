package dev.flinkautotune;

import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.Map;

/**
 * What the coordinator needs from the Flink configuration of the JobManager it runs in. Read
 * through reflection, so the plugin compiles against flink-metrics-core alone; anything that
 * goes wrong means "unknown", never an error.
 */
final class FlinkConfiguration {
    private FlinkConfiguration() {}

    /** {@code http://<rest bind address or 127.0.0.1>:<rest.port>}, or null if unknown. */
    static String restUrl() {
        try {
            Class<?> global = Class.forName("org.apache.flink.configuration.GlobalConfiguration");
            Object configuration = global.getMethod("loadConfiguration").invoke(null);
            @SuppressWarnings("unchecked")
            Map<String, String> values = (Map<String, String>) configuration.getClass().getMethod("toMap").invoke(configuration);
            return restUrl(values);
        } catch (ReflectiveOperationException | RuntimeException | LinkageError e) {
            return null;
        }
    }

    static String restUrl(Map<String, String> values) {
        String port = values.getOrDefault("rest.port", "8081").trim();
        String bindPort = values.get("rest.bind-port");
        if (bindPort != null && bindPort.trim().matches("\\d+")) {
            port = bindPort.trim(); // the server listens there; a range leaves rest.port as the best guess
        }
        String bind = values.get("rest.bind-address");
        String host = bind == null || bind.trim().isEmpty() || bind.trim().equals("0.0.0.0") || bind.trim().equals("::")
                ? "127.0.0.1"
                : bind.trim();
        if (host.contains(":") && !host.startsWith("[")) {
            host = "[" + host + "]";
        }
        return "http://" + host + ":" + port;
    }

    /** The running Flink release ({@code EnvironmentInformation.getVersion()}), or null if unknown. */
    static String flinkVersion() {
        try {
            Class<?> info = Class.forName("org.apache.flink.runtime.util.EnvironmentInformation");
            Object version = info.getMethod("getVersion").invoke(null);
            return version == null ? null : version.toString();
        } catch (ReflectiveOperationException | RuntimeException | LinkageError e) {
            return null;
        }
    }

    /** {@code <folder of the Flink log file>/autotune}, or null when Flink logs elsewhere. */
    static String outputDir() {
        String logFile = System.getProperty("log.file");
        if (logFile == null || logFile.trim().isEmpty()) {
            return null;
        }
        Path parent = Paths.get(logFile).toAbsolutePath().getParent();
        return parent == null ? null : parent.resolve("autotune").toString();
    }
}
