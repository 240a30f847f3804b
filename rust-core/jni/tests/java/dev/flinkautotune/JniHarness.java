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

    /**
     * Drives every entry point with what only Java can make (lone UTF-16 surrogates, NULs) and
     * with sizes and values no caller should send: empty, 1 MiB strings, NaN and infinities,
     * arrays shorter than the count. A native error may come back as AutotuneNativeException;
     * anything else escapes and fails the test. Returns the calls made.
     */
    public static int hostileCalls() {
        String huge = "x".repeat(1 << 20);
        String[] hostile = {"", "\0", "\uD800", "\uDFFFlone", "a\u0000b", "\uD83D\uDE00", huge, "../../\n\"", "<task_id>"};
        int calls = 0;
        long handle = AutotuneNative.open(hostile, hostile, "\uD800", huge);
        calls++;
        try {
            for (int slot = 0; slot < hostile.length; slot++) {
                String[] keys = {"<job_id>", "<task_id>", "<task_name>", "<subtask_index>", hostile[slot]};
                String[] values = {hostile[slot], hostile[(slot + 1) % hostile.length], hostile[slot], "0", huge};
                for (String scope : new String[] {null, "taskmanager.job.task", hostile[slot]}) {
                    try {
                        AutotuneNative.register(handle, slot, keys, values, scope, hostile[slot], 1 + slot % 3);
                    } catch (AutotuneNativeException expected) {
                        // refused with a reason: fine
                    }
                    calls++;
                }
            }
            double[][] rounds = {{}, {Double.NaN, Double.POSITIVE_INFINITY, Double.NEGATIVE_INFINITY, -0.0, 1e308},
                    new double[1000]};
            for (double[] values : rounds) {
                for (int count : new int[] {0, values.length, values.length + 5}) {
                    try {
                        AutotuneNative.report(handle, values, count, -1, Long.MAX_VALUE, 3);
                    } catch (AutotuneNativeException | ArrayIndexOutOfBoundsException expected) {
                        // a count beyond the array is refused
                    }
                    calls++;
                }
            }
            AutotuneNative.profile(handle, hostile[2], hostile[3], huge, hostile, 1, -5, Long.MIN_VALUE);
            AutotuneNative.profiles(handle);
            AutotuneNative.poolWindow(handle);
            AutotuneNative.taskLoads(handle);
            AutotuneNative.configureCoordinator(handle, hostile[2], hostile[1]);
            calls += 5;
        } finally {
            AutotuneNative.close(handle);
        }
        return calls;
    }

    /** Reaches the package-private test entry point. */
    public static void panic(String message) {
        AutotuneNative.panicForTesting(message);
    }

    /**
     * The stack trace of a native panic's exception, as SLF4J prints it under the shim's
     * {@code AUTOTUNE native call failed} ERROR line.
     */
    public static String panicTrace(String message) {
        try {
            AutotuneNative.panicForTesting(message);
        } catch (AutotuneNativeException e) {
            java.io.StringWriter out = new java.io.StringWriter();
            e.printStackTrace(new java.io.PrintWriter(out, true));
            return out.toString();
        }
        throw new AssertionError("no exception");
    }
}
