package dev.flinkautotune;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.Test;

public class NativeLoaderTest {
    @Test
    public void namesPlatformsLikeTheNativeLibsFolder() {
        assertThat(NativeLoader.platform("Linux", "amd64")).isEqualTo("linux-x86_64");
        assertThat(NativeLoader.platform("Linux", "aarch64")).isEqualTo("linux-aarch64");
        assertThat(NativeLoader.platform("Mac OS X", "aarch64")).isEqualTo("darwin-aarch64");
        assertThat(NativeLoader.platform("Mac OS X", "x86_64")).isEqualTo("darwin-x86_64");
        assertThat(NativeLoader.platform("Windows 11", "amd64")).isEqualTo("windows-x86_64");
        assertThat(NativeLoader.platform("SunOS", "sparcv9")).isEqualTo("sunos-sparcv9");
    }

    @Test
    public void theFixNamesTheCause() {
        assertThat(NativeLoader.fixFor("/tmp/x.so: failed to map segment from shared object", "linux-x86_64"))
                .contains("native-tmpdir");
        assertThat(NativeLoader.fixFor("/tmp/x.so: invalid ELF header", "linux-x86_64"))
                .contains("damaged or built for another platform");
        assertThat(NativeLoader.fixFor("/lib/libc.so.6: version `GLIBC_2.39' not found", "linux-x86_64"))
                .contains("newer C library");
        assertThat(NativeLoader.fixFor(null, "linux-x86_64")).contains("built for linux-x86_64");
    }
}
