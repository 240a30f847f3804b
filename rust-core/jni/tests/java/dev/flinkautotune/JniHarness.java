package dev.flinkautotune;

import java.util.ArrayList;
import java.util.List;

/** Test support for the Rust JNI tests: loads the library like the shim and records its logs. */
public final class JniHarness {
    private static final List<String> LINES = new ArrayList<>();

    private JniHarness() {}

    /** Loads the library from a Java frame, so it belongs to this class loader like in Flink. */
    public static void load(String path) {
        NativeLog.install((level, target, message) -> {
            synchronized (LINES) {
                LINES.add(level + " " + target + " " + message);
            }
        });
        System.load(path);
    }

    public static String logs() {
        synchronized (LINES) {
            return String.join("\n", LINES);
        }
    }

    /** Reaches the package-private test entry point. */
    public static void panic(String message) {
        AutotuneNative.panicForTesting(message);
    }
}
