package dev.flinkautotune;

import java.lang.management.ManagementFactory;
import java.lang.management.ThreadInfo;
import java.lang.management.ThreadMXBean;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Samples the stacks of a vertex's task threads, the way Flink's own flame graphs do
 * ({@link ThreadMXBean#getThreadInfo(long[], int)} on the threads of the group "Flink Task
 * Threads"), on one daemon thread of its own: never on Flink's metric thread, one request at a
 * time, and a request that comes while one runs is dropped (the next decision asks again).
 *
 * <p>What to sample and how often is decided by the native side; this class only reads stacks,
 * which only the JVM can do, and hands them over folded ({@code root;...;leaf}).
 */
final class TaskThreadSampler {
    private static final Logger LOG = LoggerFactory.getLogger(TaskThreadSampler.class);
    static final String TASK_THREAD_GROUP = "Flink Task Threads";
    /** At most 15 characters: what the kernel keeps of a thread's name. */
    static final String THREAD_NAME = "autotune-sample";

    /** Receives one vertex's samples. */
    interface Sink {
        void sampled(String jobId, String vertexId, String vertexName, String[] stacks, int threads,
                long samplingNanos, long samplingMaxNanos);
    }

    private final ThreadMXBean threads = ManagementFactory.getThreadMXBean();
    /** One thread, started at the first request and then parked between them (its CPU time is
     * what the benchmark reads, under the name {@value #THREAD_NAME}). */
    private final ThreadPoolExecutor executor = new ThreadPoolExecutor(
            1, 1, 0, TimeUnit.SECONDS, new ArrayBlockingQueue<>(1), runnable -> {
                Thread t = new Thread(runnable, THREAD_NAME);
                t.setDaemon(true);
                return t;
            }, new ThreadPoolExecutor.DiscardPolicy());
    private volatile boolean closed;
    private boolean failureLogged; // sampler thread only

    /** Samples what {@code request} names (see {@link AutotuneNative#report}), in the background. */
    void submit(String[] request, Sink sink) {
        if (closed || request.length < 7) {
            return;
        }
        executor.execute(() -> run(request, sink));
    }

    /** Stops sampling; a round in progress ends at its next sample. */
    void close() {
        closed = true;
        executor.shutdownNow();
    }

    private void run(String[] request, Sink sink) {
        try {
            int samples = Integer.parseInt(request[0]);
            long pauseMillis = Long.parseLong(request[1]);
            int maxDepth = Integer.parseInt(request[2]);
            for (int i = 3; i + 3 < request.length && !closed; i += 4) {
                sampleVertex(request[i], request[i + 1], request[i + 2], request[i + 3], samples, pauseMillis,
                        maxDepth, sink);
            }
        } catch (RuntimeException e) {
            // Never into the TaskManager's stdout through the executor: once in the log.
            if (!failureLogged) {
                failureLogged = true;
                LOG.warn("AUTOTUNE FLAMEGRAPH sampling failed; it is tried again at the next decision", e);
            }
        }
    }

    private void sampleVertex(String jobId, String vertexId, String vertexName, String threadPrefix, int samples,
            long pauseMillis, int maxDepth, Sink sink) {
        long[] ids = taskThreads(threadPrefix);
        List<String> stacks = new ArrayList<>(ids.length * samples);
        long total = 0;
        long longest = 0;
        for (int s = 0; s < samples && ids.length > 0 && !closed; s++) {
            long start = System.nanoTime();
            ThreadInfo[] infos = threads.getThreadInfo(ids, maxDepth);
            long took = System.nanoTime() - start;
            total += took;
            longest = Math.max(longest, took);
            for (ThreadInfo info : infos) {
                // A subtask that finished since is null.
                if (info != null && info.getStackTrace().length > 0) {
                    stacks.add(folded(info.getStackTrace()));
                }
            }
            if (!pause(pauseMillis)) {
                return;
            }
        }
        sink.sampled(jobId, vertexId, vertexName, stacks.toArray(new String[0]), ids.length, total, longest);
    }

    /** The ids of the task threads whose name starts with {@code prefix}. */
    private static long[] taskThreads(String prefix) {
        ThreadGroup root = Thread.currentThread().getThreadGroup();
        while (root.getParent() != null) {
            root = root.getParent();
        }
        Thread[] all = new Thread[root.activeCount() + 16];
        int n = root.enumerate(all, true);
        List<Long> ids = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            Thread t = all[i];
            ThreadGroup group = t.getThreadGroup();
            if (group != null && TASK_THREAD_GROUP.equals(group.getName()) && t.getName().startsWith(prefix)) {
                ids.add(t.getId());
            }
        }
        long[] result = new long[ids.size()];
        for (int i = 0; i < result.length; i++) {
            result[i] = ids.get(i);
        }
        return result;
    }

    /** A stack root first, as {@code package.Class.method} frames joined by ';'. */
    static String folded(StackTraceElement[] stack) {
        StringBuilder line = new StringBuilder(stack.length * 48);
        for (int i = stack.length - 1; i >= 0; i--) {
            line.append(stack[i].getClassName()).append('.').append(stack[i].getMethodName());
            if (i > 0) {
                line.append(';');
            }
        }
        return line.toString();
    }

    private boolean pause(long millis) {
        try {
            Thread.sleep(millis);
            return !closed;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return false;
        }
    }
}
