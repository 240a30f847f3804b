package dev.flinkautotune;

/**
 * Where the native library's log records arrive. The native side calls {@link #log} (cached
 * at load time); the reporter installs a sink that forwards to SLF4J. Kept free of any
 * dependency so the Rust tests can load it into a bare JVM.
 */
public final class NativeLog {
    /** Receives native log records. Levels are {@code AutotuneNative.LEVEL_*}. */
    public interface Sink {
        void log(int level, String target, String message);
    }

    private static volatile Sink sink = (level, target, message) -> {};

    private NativeLog() {}

    public static void install(Sink newSink) {
        sink = newSink;
    }

    /** Called from native code only; must never throw back into it. */
    static void log(int level, String target, String message) {
        try {
            sink.log(level, target, message);
        } catch (Throwable ignored) {
            // Logging must not break the caller; the sink's own logger reports its failures.
        }
    }
}
