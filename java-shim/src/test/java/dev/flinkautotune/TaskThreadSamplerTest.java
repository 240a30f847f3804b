package dev.flinkautotune;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import org.junit.Test;

/** The sampler on real threads named and grouped as Flink names its task threads. */
public class TaskThreadSamplerTest {

    /** What one sampled vertex came back as. */
    private static final class Result {
        String vertexId;
        String[] stacks;
        int threads;
        long samplingNanos;
        long samplingMaxNanos;
    }

    private static volatile boolean spinning = true;

    static long spinInUserCode() {
        long x = 0;
        while (spinning) {
            x += System.nanoTime() % 7;
        }
        return x;
    }

    private static Result sample(String[] request) throws Exception {
        TaskThreadSampler sampler = new TaskThreadSampler();
        CompletableFuture<Result> done = new CompletableFuture<>();
        sampler.submit(request, (job, vertex, name, stacks, threads, nanos, maxNanos) -> {
            Result r = new Result();
            r.vertexId = vertex;
            r.stacks = stacks;
            r.threads = threads;
            r.samplingNanos = nanos;
            r.samplingMaxNanos = maxNanos;
            done.complete(r);
        });
        try {
            return done.get(30, TimeUnit.SECONDS);
        } finally {
            sampler.close();
        }
    }

    @Test
    public void samplesTheTaskThreadsOfTheVertexOnly() throws Exception {
        spinning = true;
        ThreadGroup tasks = new ThreadGroup(TaskThreadSampler.TASK_THREAD_GROUP);
        Thread work = new Thread(tasks, TaskThreadSamplerTest::spinInUserCode, "Work -> Sink (1/2)#0");
        // Same prefix of another vertex's name, and the right name outside the task group.
        Thread other = new Thread(tasks, TaskThreadSamplerTest::spinInUserCode, "Work2 (1/1)#0");
        Thread outside = new Thread(TaskThreadSamplerTest::spinInUserCode, "Work -> Sink (2/2)#0");
        for (Thread t : new Thread[] {work, other, outside}) {
            t.setDaemon(true);
            t.start();
        }
        try {
            Result r = sample(new String[] {"20", "5", "256", "job", "v-work", "Work -> Sink", "Work -> Sink ("});
            assertThat(r.vertexId).isEqualTo("v-work");
            assertThat(r.threads).isEqualTo(1);
            assertThat(r.stacks).hasSize(20);
            // Root first, the user's frame near the leaf.
            assertThat(r.stacks[0]).startsWith("java.lang.Thread.run;");
            assertThat(r.stacks).allMatch(s -> s.contains("dev.flinkautotune.TaskThreadSamplerTest.spinInUserCode"));
            assertThat(r.samplingMaxNanos).isPositive().isLessThanOrEqualTo(r.samplingNanos);
        } finally {
            spinning = false;
        }
    }

    @Test
    public void aVertexWithoutTaskThreadsComesBackEmpty() throws Exception {
        Result r = sample(new String[] {"10", "5", "256", "job", "v-gone", "Gone", "Gone ("});
        assertThat(r.threads).isZero();
        assertThat(r.stacks).isEmpty();
    }

    @Test
    public void foldedStacksAreRootFirst() {
        StackTraceElement[] stack = {
            new StackTraceElement("a.Leaf", "spin", "Leaf.java", 1),
            new StackTraceElement("a.Root", "run", "Root.java", 2),
        };
        assertThat(TaskThreadSampler.folded(stack)).isEqualTo("a.Root.run;a.Leaf.spin");
    }
}
